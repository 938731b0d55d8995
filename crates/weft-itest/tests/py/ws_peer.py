"""A WebSocket-over-TLS echo server and client for weft's tests, standard
library only (RFC 6455 framing, RFC 7692 permessage-deflate with context
takeover, done with zlib by hand).

server PORT CERT KEY         accept one connection, echo every message back
                             (compressed when negotiated); prints "listening".
client PORT PATH MSG...      upgrade, send each MSG as a text message, read
                             each echo, send a close (code 1000); prints the
                             echoes, one per line, then "done".
"""
import base64
import hashlib
import os
import socket
import ssl
import struct
import sys
import zlib

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TAIL = b"\x00\x00\xff\xff"


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        c = s.recv(n - len(buf))
        if not c:
            raise EOFError
        buf += c
    return buf


def read_head(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        c = s.recv(1)
        if not c:
            raise EOFError
        buf += c
    return buf.decode()


class Deflate:
    def __init__(self):
        self.c = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        self.d = zlib.decompressobj(-15)

    def compress(self, data):
        out = self.c.compress(data) + self.c.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(TAIL)
        return out[:-4]

    def decompress(self, data):
        return self.d.decompress(data + TAIL)


def send_frame(s, opcode, payload, mask, rsv1=False):
    b0 = 0x80 | opcode | (0x40 if rsv1 else 0)
    n = len(payload)
    head = bytes([b0])
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack(">H", n)
    else:
        head += bytes([m | 127]) + struct.pack(">Q", n)
    if mask:
        key = os.urandom(4)
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        head += key
    s.sendall(head + payload)


def recv_frame(s):
    b0, b1 = read_exact(s, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", read_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack(">Q", read_exact(s, 8))[0]
    key = read_exact(s, 4) if b1 & 0x80 else None
    data = read_exact(s, n)
    if key:
        data = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    return b0 & 0x0F, bool(b0 & 0x40), data


def server(port, cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(4)
    print("listening", flush=True)
    raw, _ = ls.accept()
    s = ctx.wrap_socket(raw, server_side=True)
    head = read_head(s)
    wskey = [l.split(":", 1)[1].strip() for l in head.split("\r\n") if l.lower().startswith("sec-websocket-key:")][0]
    deflate = "permessage-deflate" in head.lower()
    accept = base64.b64encode(hashlib.sha1(wskey.encode() + GUID).digest()).decode()
    resp = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: %s\r\n" % accept)
    if deflate:
        resp += "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    s.sendall((resp + "\r\n").encode())
    z = Deflate()
    while True:
        op, rsv1, data = recv_frame(s)
        if op == 8:
            send_frame(s, 8, data[:2], mask=False)
            break
        if rsv1:
            data = z.decompress(data)
        if deflate:
            send_frame(s, op, z.compress(data), mask=False, rsv1=True)
        else:
            send_frame(s, op, data, mask=False)
    s.close()


def client(port, path, msgs):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n" % (path, port, key)).encode())
    head = read_head(s)
    assert head.startswith("HTTP/1.1 101"), head
    deflate = "permessage-deflate" in head.lower()
    z = Deflate()
    for m in msgs:
        data = m.encode()
        if deflate:
            send_frame(s, 1, z.compress(data), mask=True, rsv1=True)
        else:
            send_frame(s, 1, data, mask=True)
        op, rsv1, echo = recv_frame(s)
        if rsv1:
            echo = z.decompress(echo)
        print(echo.decode(), flush=True)
    send_frame(s, 8, struct.pack(">H", 1000) + b"bye", mask=True)
    recv_frame(s)
    s.close()
    print("done", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        client(int(sys.argv[2]), sys.argv[3], sys.argv[4:])
