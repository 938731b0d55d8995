#!/usr/bin/env python3
"""Independent JA4 / JA4S reference for weft's tests (not weft's code).

Reads hex TCP payloads on stdin, one per line, as `tshark -T fields -e
tcp.payload` prints them for packets starting with a TLS handshake record.
Prints `ja4 <fingerprint>` for each ClientHello and `ja4s <fingerprint>` for
each ServerHello, following FoxIO's JA4.md / JA4S.md.
"""
import hashlib
import sys


def grease(v):
    return (v & 0x0F0F) == 0x0A0A and (v >> 8) == (v & 0xFF)


VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10",
            0x0300: "s3", 0x0002: "s2", 0xFEFF: "d1", 0xFEFD: "d2", 0xFEFC: "d3"}


def h12(s):
    return hashlib.sha256(s.encode()).hexdigest()[:12] if s else "0" * 12


def alpn_chars(v):
    if not v:
        return "00"
    a, b = chr(v[0]), chr(v[-1])
    if a.isascii() and a.isalnum() and b.isascii() and b.isalnum():
        return a + b
    return ("%02x" % v[0])[0] + ("%02x" % v[-1])[1]


def u16s(b):
    return [int.from_bytes(b[i:i + 2], "big") for i in range(0, len(b) - 1, 2)]


def extensions(b, off):
    out = []
    if off >= len(b):
        return out
    total = int.from_bytes(b[off:off + 2], "big")
    off += 2
    end = off + total
    while off < end:
        t = int.from_bytes(b[off:off + 2], "big")
        n = int.from_bytes(b[off + 2:off + 4], "big")
        out.append((t, b[off + 4:off + 4 + n]))
        off += 4 + n
    return out


def first_alpn(data):
    # u16 list length, then u8-prefixed names
    if len(data) < 3:
        return b""
    n = data[2]
    return data[3:3 + n]


def client(m):
    version = int.from_bytes(m[0:2], "big")
    off = 2 + 32
    off += 1 + m[off]
    n = int.from_bytes(m[off:off + 2], "big")
    ciphers = [c for c in u16s(m[off + 2:off + 2 + n]) if not grease(c)]
    off += 2 + n
    off += 1 + m[off]
    exts = [(t, d) for t, d in extensions(m, off) if not grease(t)]
    types = [t for t, _ in exts]
    sni = "d" if 0 in types else "i"
    alpn = b""
    sigs = []
    for t, d in exts:
        if t == 0x002B:
            vs = [v for v in u16s(d[1:1 + d[0]]) if not grease(v)]
            if vs:
                version = max(vs)
        if t == 0x0010:
            alpn = first_alpn(d)
        if t == 0x000D:
            sigs = [s for s in u16s(d[2:2 + int.from_bytes(d[0:2], "big")]) if not grease(s)]
    a = "t%s%s%02d%02d%s" % (VERSIONS.get(version, "00"), sni, min(len(ciphers), 99),
                              min(len(types), 99), alpn_chars(alpn))
    b = h12(",".join("%04x" % c for c in sorted(ciphers)))
    ext_list = ",".join("%04x" % t for t in sorted(t for t in types if t not in (0, 0x10)))
    if not ext_list:
        c = "0" * 12
    elif sigs:
        c = h12(ext_list + "_" + ",".join("%04x" % s for s in sigs))
    else:
        c = h12(ext_list)
    return "%s_%s_%s" % (a, b, c)


def server(m):
    version = int.from_bytes(m[0:2], "big")
    off = 2 + 32
    off += 1 + m[off]
    cipher = int.from_bytes(m[off:off + 2], "big")
    off += 3
    exts = [(t, d) for t, d in extensions(m, off) if not grease(t)]
    alpn = b""
    for t, d in exts:
        if t == 0x002B and len(d) == 2:
            version = int.from_bytes(d, "big")
        if t == 0x0010:
            alpn = first_alpn(d)
    a = "t%s%02d%s" % (VERSIONS.get(version, "00"), min(len(exts), 99), alpn_chars(alpn))
    return "%s_%04x_%s" % (a, cipher, h12(",".join("%04x" % t for t, _ in exts)))


for line in sys.stdin:
    line = line.strip().split(",")[0].replace(":", "")
    if not line:
        continue
    rec = bytes.fromhex(line)
    if len(rec) < 9 or rec[0] != 0x16:
        continue
    body = rec[5:5 + int.from_bytes(rec[3:5], "big")]
    ht, n = body[0], int.from_bytes(body[1:4], "big")
    msg = body[4:4 + n]
    if ht == 1:
        print("ja4", client(msg))
    elif ht == 2:
        print("ja4s", server(msg))
