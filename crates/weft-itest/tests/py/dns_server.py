#!/usr/bin/env python3
"""A tiny DNS resolver and HTTP server for crates/weft-itest/tests/dns.rs.

Usage: dns_server.py DNS_ADDR ANSWER_IP HTTP_PORT

Logs every query as "query ID NAME QTYPE", answers every A query on
DNS_ADDR:53 (UDP) with ANSWER_IP (TTL 300) and logs "answered ID NAME
ANSWER_IP" on stdout (other types: no answer records), over UDP and over
TCP (DNS_ADDR:53, 2-byte length prefix); serves HTTP/1.1 on
ANSWER_IP:HTTP_PORT (body "dns-body PATH\\n") and logs "http PATH".
Prints "ready" once both listen. Stops when stdin closes.
"""
import socket
import struct
import sys
import threading


def qname(msg, off):
    labels = []
    while msg[off]:
        n = msg[off]
        labels.append(msg[off + 1:off + 1 + n].decode())
        off += 1 + n
    return ".".join(labels), off + 1


def reply_for(msg, ip):
    """The answer to query `msg`, logging the query and the answer."""
    qid, flags, qd = struct.unpack(">HHH", msg[:6])
    name, end = qname(msg, 12)
    qtype, qclass = struct.unpack(">HH", msg[end:end + 4])
    question = msg[12:end + 4]
    print(f"query {qid} {name} {qtype}", flush=True)
    if qtype == 1:
        answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 300, 4) + socket.inet_aton(ip)
        an = 1
    else:
        answer, an = b"", 0
    reply = struct.pack(">HHHHHH", qid, 0x8180 | (flags & 0x0100), 1, an, 0, 0) + question + answer
    if an:
        print(f"answered {qid} {name} {ip}", flush=True)
    return reply


def dns(sock, ip):
    while True:
        msg, peer = sock.recvfrom(4096)
        sock.sendto(reply_for(msg, ip), peer)


def recv_exact(c, n):
    b = b""
    while len(b) < n:
        more = c.recv(n - len(b))
        if not more:
            return None
        b += more
    return b


def dns_tcp(lsock, ip):
    while True:
        c, _ = lsock.accept()
        with c:
            while True:
                head = recv_exact(c, 2)
                if head is None:
                    break
                msg = recv_exact(c, struct.unpack(">H", head)[0])
                if msg is None:
                    break
                reply = reply_for(msg, ip)
                c.sendall(struct.pack(">H", len(reply)) + reply)


def http(lsock):
    while True:
        c, _ = lsock.accept()
        with c:
            req = b""
            while b"\r\n\r\n" not in req:
                b = c.recv(4096)
                if not b:
                    break
                req += b
            if not req:
                continue
            path = req.split(b" ")[1].decode()
            body = f"dns-body {path}\n".encode()
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                      + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            print(f"http {path}", flush=True)


def main():
    dns_addr, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((dns_addr, 53))
    d = socket.socket()
    d.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    d.bind((dns_addr, 53))
    d.listen(16)
    t = socket.socket()
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((ip, port))
    t.listen(16)
    threading.Thread(target=dns, args=(u, ip), daemon=True).start()
    threading.Thread(target=dns_tcp, args=(d, ip), daemon=True).start()
    threading.Thread(target=http, args=(t,), daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()


main()
