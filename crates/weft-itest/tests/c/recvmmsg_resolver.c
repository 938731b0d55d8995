/* A tiny DNS client for crates/weft-itest/tests/dns.rs: sends one A query
 * per NAME (sendto, unconnected UDP socket) to DNS_ADDR:53, waits until
 * every answer is queued, then reads them in ONE recvmmsg call (the path
 * under test) and prints, per message received, "answer ID LEN PEER".
 * The first line is "got N" (messages the recvmmsg call returned).
 *
 * Usage: recvmmsg_resolver DNS_ADDR NAME...   (at most 4 names)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXN 4

static size_t query(unsigned char *b, unsigned id, const char *name)
{
	size_t n = 0;
	unsigned char hdr[12] = {id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
	memcpy(b, hdr, 12);
	n = 12;
	const char *p = name;
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		b[n++] = (unsigned char)l;
		memcpy(b + n, p, l);
		n += l;
		p += l;
		if (*p == '.')
			p++;
	}
	b[n++] = 0;
	unsigned char tail[4] = {0, 1, 0, 1}; /* A, IN */
	memcpy(b + n, tail, 4);
	return n + 4;
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc - 2 > MAXN) {
		fprintf(stderr, "usage: %s DNS_ADDR NAME... (1-%d names)\n", argv[0], MAXN);
		return 2;
	}
	int names = argc - 2;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(53)};
	if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) {
		fprintf(stderr, "bad address %s\n", argv[1]);
		return 2;
	}
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	for (int i = 0; i < names; i++) {
		unsigned char q[512];
		size_t n = query(q, (unsigned)(rand() & 0xffff), argv[2 + i]);
		if (sendto(fd, q, n, 0, (struct sockaddr *)&to, sizeof(to)) != (ssize_t)n) {
			perror("sendto");
			return 1;
		}
	}
	/* The first answer (bounded: 5 s), then a moment for the others (the
	 * server answers in order, within milliseconds): one recvmmsg should
	 * return them all; the test checks what it did return. */
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	if (poll(&pfd, 1, 5000) != 1) {
		fprintf(stderr, "no answer within 5 s\n");
		return 1;
	}
	usleep(300 * 1000);
	unsigned char bufs[MAXN][1500];
	struct iovec iov[MAXN];
	struct sockaddr_in from[MAXN];
	struct mmsghdr msgs[MAXN];
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < MAXN; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = sizeof(bufs[i]);
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
		msgs[i].msg_hdr.msg_name = &from[i];
		msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
	}
	struct timespec tmo = {.tv_sec = 5};
	int got = recvmmsg(fd, msgs, MAXN, MSG_WAITFORONE, &tmo);
	if (got < 0) {
		perror("recvmmsg");
		return 1;
	}
	printf("got %d\n", got);
	for (int i = 0; i < got; i++) {
		char peer[INET_ADDRSTRLEN] = "";
		inet_ntop(AF_INET, &from[i].sin_addr, peer, sizeof(peer));
		unsigned id = msgs[i].msg_len >= 2 ? (bufs[i][0] << 8 | bufs[i][1]) : 0;
		printf("answer %u %u %s\n", id, msgs[i].msg_len, peer);
	}
	close(fd);
	return 0;
}
