//! Test-only HTTP/2 builders: a small HPACK encoder and frame constructors.

use weft_proto::hpack::huffman_encode;

/// RFC 7541 static table (names and values), for the test encoder.
const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// A simple HPACK encoder: exact static/dynamic matches are indexed, the
/// rest is inserted with incremental indexing (or sent never-indexed for
/// names in `sensitive`), strings Huffman-coded when `huffman`.
pub struct Encoder {
    table: Vec<(String, String)>, // newest first
    size: usize,
    max: usize,
    pub huffman: bool,
    pending_size_update: Option<usize>,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            table: Vec::new(),
            size: 0,
            max: 4096,
            huffman: true,
            pending_size_update: None,
        }
    }
}

fn int(out: &mut Vec<u8>, first: u8, prefix: u8, mut v: usize) {
    let max = (1usize << prefix) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

impl Encoder {
    pub fn new(huffman: bool) -> Self {
        Encoder {
            huffman,
            ..Encoder::default()
        }
    }

    /// Changes the table size; signalled at the start of the next block.
    pub fn set_max_size(&mut self, max: usize) {
        self.max = max;
        self.evict(0);
        self.pending_size_update = Some(max);
    }

    fn evict(&mut self, room: usize) {
        while self.size + room > self.max {
            let Some((n, v)) = self.table.pop() else {
                break;
            };
            self.size -= n.len() + v.len() + 32;
        }
    }

    fn string(&self, out: &mut Vec<u8>, s: &str) {
        if self.huffman {
            let mut h = Vec::new();
            huffman_encode(s.as_bytes(), &mut h);
            int(out, 0x80, 7, h.len());
            out.extend_from_slice(&h);
        } else {
            int(out, 0, 7, s.len());
            out.extend_from_slice(s.as_bytes());
        }
    }

    pub fn encode(&mut self, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(size) = self.pending_size_update.take() {
            int(&mut out, 0x20, 5, size);
        }
        for &(name, value) in headers {
            if let Some(i) = STATIC.iter().position(|&(n, v)| n == name && v == value) {
                int(&mut out, 0x80, 7, i + 1);
                continue;
            }
            if let Some(i) = self.table.iter().position(|(n, v)| n == name && v == value) {
                int(&mut out, 0x80, 7, i + 62);
                continue;
            }
            let name_idx = STATIC
                .iter()
                .position(|&(n, _)| n == name)
                .map(|i| i + 1)
                .or_else(|| {
                    self.table
                        .iter()
                        .position(|(n, _)| n == name)
                        .map(|i| i + 62)
                });
            let sensitive = name == "authorization" || name == "cookie";
            let (first, prefix) = if sensitive { (0x10, 4) } else { (0x40, 6) };
            match name_idx {
                Some(i) => int(&mut out, first, prefix, i),
                None => {
                    out.push(first);
                    self.string(&mut out, name);
                }
            }
            self.string(&mut out, value);
            if !sensitive {
                let size = name.len() + value.len() + 32;
                if size > self.max {
                    self.table.clear();
                    self.size = 0;
                } else {
                    self.evict(size);
                    self.table.insert(0, (name.to_string(), value.to_string()));
                    self.size += size;
                }
            }
        }
        out
    }
}

pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const PRIORITY: u8 = 2;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const PUSH_PROMISE: u8 = 5;
pub const PING: u8 = 6;
pub const GOAWAY: u8 = 7;
pub const WINDOW_UPDATE: u8 = 8;
pub const CONTINUATION: u8 = 9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

/// One frame: 9-byte header + payload.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn settings(params: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for &(id, v) in params {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &p)
}

pub fn headers(stream: u32, block: &[u8], end_stream: bool) -> Vec<u8> {
    frame(
        HEADERS,
        END_HEADERS | if end_stream { END_STREAM } else { 0 },
        stream,
        block,
    )
}

pub fn data(stream: u32, bytes: &[u8], end_stream: bool) -> Vec<u8> {
    frame(DATA, if end_stream { END_STREAM } else { 0 }, stream, bytes)
}

pub fn rst(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

pub fn goaway(last: u32, code: u32) -> Vec<u8> {
    let mut p = last.to_be_bytes().to_vec();
    p.extend_from_slice(&code.to_be_bytes());
    frame(GOAWAY, 0, 0, &p)
}

pub fn push_promise(stream: u32, promised: u32, block: &[u8]) -> Vec<u8> {
    let mut p = promised.to_be_bytes().to_vec();
    p.extend_from_slice(block);
    frame(PUSH_PROMISE, END_HEADERS, stream, &p)
}

pub fn window_update(stream: u32, inc: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &inc.to_be_bytes())
}

pub fn ping(ack: bool) -> Vec<u8> {
    frame(
        PING,
        if ack { ACK } else { 0 },
        0,
        &[1, 2, 3, 4, 5, 6, 7, 8],
    )
}

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An RFC 8441 WebSocket over HTTP/2 on stream 1, as far as the response
/// head with `status`: the client's bytes (preface, SETTINGS, the extended
/// CONNECT) and the server's (SETTINGS, the response HEADERS).
#[allow(dead_code)]
pub fn ws_connect(status: &str) -> (Vec<u8>, Vec<u8>) {
    let req = Encoder::new(true).encode(&[
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "https"),
        (":path", "/chat"),
        (":authority", "a"),
    ]);
    let resp = Encoder::new(false).encode(&[(":status", status)]);
    let mut client = PREFACE.to_vec();
    client.extend(settings(&[]));
    client.extend(headers(1, &req, false));
    let mut server = settings(&[]);
    server.extend(headers(1, &resp, false));
    (client, server)
}
