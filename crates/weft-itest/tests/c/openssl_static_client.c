/* A minimal HTTPS client with OpenSSL linked statically, for weft's tests:
 * its SSL_* functions are in the executable's .symtab but not exported
 * (.dynsym), the case of programs that embed OpenSSL. GET PATH from
 * 127.0.0.1:PORT after waiting DELAY_MS (weft probes a new executable when
 * it starts: the wait keeps the test about finding the functions, not about
 * how fast) and print the response to stdout.
 * Build: gcc openssl_static_client.c -o c -Wl,-Bstatic -lssl -lcrypto -Wl,-Bdynamic -ldl -pthread */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s PORT PATH DELAY_MS\n", argv[0]);
		return 2;
	}
	long ms = atol(argv[3]);
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])) };
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("connect");
		return 1;
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1) {
		ERR_print_errors_fp(stderr);
		return 1;
	}
	char req[512];
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", argv[2]);
	if (SSL_write(ssl, req, n) != n)
		return 1;
	char buf[4096];
	int r;
	while ((r = SSL_read(ssl, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, r, stdout);
	SSL_shutdown(ssl);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	return 0;
}
