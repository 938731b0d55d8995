"""A TLS peer for weft's tests: exact-size writes, pre-existing connections.

server PORT CERT KEY            accept connections; for each line "N" the
                                client announces, read exactly N bytes and
                                answer b"ok:N". Prints "listening" when ready.
client PORT [--wait] SIZE...    connect (prints "connected LOCAL_PORT"); with
                                --wait, block until a line arrives on stdin;
                                then for each SIZE write one header record and
                                the payload in ONE SSL write call, read the
                                answer. Prints "done" at the end.
unix                            TLS over an AF_UNIX socketpair, both ends in
                                this process; prints "done".
The payload of size N is pattern(N) below: the test computes the same bytes.
"""
import socket
import ssl
import sys
import threading


def pattern(n):
    return bytes((i * 31 + n * 7 + (i >> 8)) % 256 for i in range(n))


def read_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(1 << 20, n - len(buf)))
        if not chunk:
            raise EOFError("peer closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def read_line(s):
    buf = bytearray()
    while not buf.endswith(b"\n"):
        c = s.recv(1)
        if not c:
            raise EOFError("peer closed")
        buf += c
    return buf.decode().strip()


def serve_conn(conn):
    try:
        while True:
            try:
                line = read_line(conn)
            except EOFError:
                return
            n = int(line)
            data = read_exact(conn, n)
            assert data == pattern(n), "payload of size %d differs" % n
            conn.sendall(b"ok:%d\n" % n)
    finally:
        conn.close()


def server(port, cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(16)
    print("listening", flush=True)
    while True:
        raw, _ = ls.accept()
        conn = ctx.wrap_socket(raw, server_side=True)
        threading.Thread(target=serve_conn, args=(conn,), daemon=True).start()


def client_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def exchange(s, sizes):
    for n in sizes:
        s.sendall(b"%d\n" % n)
        data = pattern(n)
        # One SSL_write_ex call carries the whole payload (blocking socket,
        # no partial writes); a zero-byte write is still one library call.
        written = s.write(data)
        assert written == n, (written, n)
        answer = read_line(s)
        assert answer == "ok:%d" % n, answer


def client(port, wait, sizes):
    s = client_ctx().wrap_socket(socket.create_connection(("127.0.0.1", port)))
    print("connected %d" % s.getsockname()[1], flush=True)
    if wait:
        sys.stdin.readline()
    exchange(s, sizes)
    s.close()
    print("done", flush=True)


def unix():
    import tempfile, os, subprocess
    d = tempfile.mkdtemp()
    cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    result = {}

    def srv():
        conn = sctx.wrap_socket(b, server_side=True)
        serve_conn(conn)
        result["ok"] = True

    t = threading.Thread(target=srv)
    t.start()
    c = client_ctx().wrap_socket(a, server_hostname="localhost")
    exchange(c, [5, 1000])
    c.close()
    t.join(10)
    print("done", flush=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "server":
        server(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif mode == "client":
        args = sys.argv[3:]
        wait = "--wait" in args
        sizes = [int(a) for a in args if a != "--wait"]
        client(int(sys.argv[2]), wait, sizes)
    elif mode == "unix":
        unix()
    else:
        sys.exit("unknown mode " + mode)
