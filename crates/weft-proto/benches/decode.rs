//! Decode throughput: MB/s per core through [`ConnectionDecoder`], against
//! copying the same bytes (memcpy into a reused buffer) in the same run.
//!
//! ```sh
//! cargo bench -p weft-proto --bench decode                 # every mix
//! cargo bench -p weft-proto --bench decode -- h2-headers   # mixes whose name contains this
//! WEFT_BENCH_SCALE=0.02 WEFT_BENCH_ROUNDS=1 valgrind --tool=callgrind \
//!     target/release/deps/decode-*[^.d] h2-headers          # where the time goes
//! ```
//!
//! Mixes (bytes fed as TLS-record-sized pieces, at most 16 KiB, per
//! direction, as weft's capture delivers them):
//!
//! * `h1-headers`: browser-like HTTP/1.1 keep-alive GETs (17 request and 12
//!   response header fields, cookies, 100-byte bodies).
//! * `h1-bodies`: 64 KiB responses, Content-Length and chunked (16 KiB chunks).
//! * `h2-headers`: the same header sets over HTTP/2 (HPACK with Huffman and
//!   the dynamic table, 10 concurrent streams), 100-byte bodies.
//! * `h2-bodies`: 64 KiB responses in 16 KiB DATA frames.
//! * `recorded`: every session in `tests/fixtures/http/` (curl, nghttp,
//!   h2load, node, python against nginx; gzip/br/zstd bodies decoded).
//!
//! Each round times the copy, then the decoding, of the whole mix; the
//! median of the rounds is reported; `decode/copy` is decoding's throughput
//! as a fraction of copying's. No assertions on time anywhere.

#[path = "../tests/common/h2.rs"]
#[allow(dead_code)]
mod h2;

use std::hint::black_box;
use std::time::Instant;

use weft_proto::{ConnectionDecoder, Direction, Event, Limits};

use Direction::{ClientToServer as C2S, ServerToClient as S2C};

type Conn = Vec<(Direction, Vec<u8>)>;
type Builder = Box<dyn Fn() -> Mix>;

struct Mix {
    name: &'static str,
    conns: Vec<Conn>,
}

impl Mix {
    fn bytes(&self) -> u64 {
        self.conns
            .iter()
            .flat_map(|c| c.iter())
            .map(|(_, b)| b.len() as u64)
            .sum()
    }
}

const RECORD: usize = 16 * 1024;

/// Appends `bytes` as records of at most 16 KiB.
fn push(conn: &mut Conn, dir: Direction, bytes: &[u8]) {
    for c in bytes.chunks(RECORD) {
        conn.push((dir, c.to_vec()));
    }
}

fn scale(n: usize) -> usize {
    let s: f64 = std::env::var("WEFT_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * s) as usize).max(1)
}

fn request_headers(i: usize) -> Vec<(String, String)> {
    [
        (":method", "GET".to_string()),
        (":scheme", "https".to_string()),
        (":authority", "shop.example.com".to_string()),
        (
            ":path",
            format!("/api/v2/products/{}?lang=en&page={}", i % 500, i % 7),
        ),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".into(),
        ),
        ("accept", "application/json, text/plain, */*".into()),
        ("accept-language", "en-US,en;q=0.5".into()),
        ("accept-encoding", "gzip, deflate, br, zstd".into()),
        ("referer", "https://shop.example.com/catalog/shoes".into()),
        (
            "cookie",
            format!("session=8f2a9c{:08x}e1; theme=dark; consent=1", i / 50),
        ),
        (
            "authorization",
            "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0In0.sig".into(),
        ),
        (
            "x-request-id",
            format!("{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        ),
        ("sec-fetch-dest", "empty".into()),
        ("sec-fetch-mode", "cors".into()),
        ("sec-fetch-site", "same-origin".into()),
        ("dnt", "1".into()),
        ("te", "trailers".into()),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v))
    .collect()
}

fn response_headers(i: usize, len: usize) -> Vec<(String, String)> {
    [
        (":status", "200".to_string()),
        ("server", "nginx/1.22.1".into()),
        (
            "date",
            format!("Fri, 27 Nov 2026 22:{:02}:{:02} GMT", i / 60 % 60, i % 60),
        ),
        ("content-type", "application/json; charset=utf-8".into()),
        ("content-length", len.to_string()),
        (
            "cache-control",
            "private, max-age=0, must-revalidate".into(),
        ),
        ("etag", format!("W/\"{:x}-{len:x}\"", i % 500)),
        ("vary", "Accept-Encoding, Origin".into()),
        ("x-content-type-options", "nosniff".into()),
        (
            "strict-transport-security",
            "max-age=63072000; includeSubDomains".into(),
        ),
        (
            "access-control-allow-origin",
            "https://shop.example.com".into(),
        ),
        (
            "x-trace-id",
            format!("{:032x}", (i as u128).wrapping_mul(0x1234_5678_9abc_def1)),
        ),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v))
    .collect()
}

fn h1_head(start: &str, fields: &[(String, String)], skip_pseudo_host: bool) -> Vec<u8> {
    let mut h = format!("{start}\r\n");
    for (n, v) in fields {
        if n.starts_with(':') {
            if skip_pseudo_host && n == ":authority" {
                h.push_str(&format!("Host: {v}\r\n"));
            }
            continue;
        }
        h.push_str(&format!("{n}: {v}\r\n"));
    }
    h.push_str("\r\n");
    h.into_bytes()
}

fn body(len: usize, i: usize) -> Vec<u8> {
    let unit = format!(
        "{{\"id\":{i},\"name\":\"product {i}\",\"price\":{}.99}},",
        i % 100
    );
    unit.bytes().cycle().take(len).collect()
}

fn h1_mix(name: &'static str, conns: usize, per_conn: usize, body_len: usize) -> Mix {
    let mut out = Vec::new();
    for c in 0..conns {
        let mut conn = Conn::new();
        for j in 0..per_conn {
            let i = c * per_conn + j;
            let req = request_headers(i);
            let path = &req[3].1;
            push(
                &mut conn,
                C2S,
                &h1_head(&format!("GET {path} HTTP/1.1"), &req, true),
            );
            let b = body(body_len, i);
            let chunked = body_len > RECORD && j % 2 == 1;
            let mut resp = response_headers(i, body_len);
            if chunked {
                resp[4] = ("transfer-encoding".into(), "chunked".into());
            }
            let mut r = h1_head("HTTP/1.1 200 OK", &resp, false);
            if chunked {
                for piece in b.chunks(RECORD) {
                    r.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    r.extend_from_slice(piece);
                    r.extend_from_slice(b"\r\n");
                }
                r.extend_from_slice(b"0\r\n\r\n");
            } else {
                r.extend_from_slice(&b);
            }
            push(&mut conn, S2C, &r);
        }
        out.push(conn);
    }
    Mix { name, conns: out }
}

fn h2_mix(name: &'static str, conns: usize, per_conn: usize, body_len: usize) -> Mix {
    let mut out = Vec::new();
    for c in 0..conns {
        let mut conn = Conn::new();
        let mut first = h2::PREFACE.to_vec();
        first.extend(h2::settings(&[(3, 100)]));
        conn.push((C2S, first));
        conn.push((S2C, h2::settings(&[(3, 128)])));
        let mut client = h2::Encoder::new(true);
        let mut server = h2::Encoder::new(true);
        // 10 streams in flight: 10 requests, then their responses.
        for batch in (0..per_conn).collect::<Vec<_>>().chunks(10) {
            let mut reqs = Vec::new();
            for &j in batch {
                let i = c * per_conn + j;
                let id = 2 * j as u32 + 1;
                let h = request_headers(i);
                let refs: Vec<(&str, &str)> =
                    h.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                reqs.extend(h2::headers(id, &client.encode(&refs), true));
            }
            push(&mut conn, C2S, &reqs);
            for &j in batch {
                let i = c * per_conn + j;
                let id = 2 * j as u32 + 1;
                let h = response_headers(i, body_len);
                let refs: Vec<(&str, &str)> =
                    h.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                let mut r = h2::headers(id, &server.encode(&refs), false);
                let b = body(body_len, i);
                let pieces: Vec<&[u8]> = b.chunks(RECORD).collect();
                for (k, piece) in pieces.iter().enumerate() {
                    r.extend(h2::data(id, piece, k + 1 == pieces.len()));
                }
                push(&mut conn, S2C, &r);
            }
        }
        out.push(conn);
    }
    Mix { name, conns: out }
}

fn recorded_mix(copies: usize) -> Mix {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/http");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rec"))
        .collect();
    names.sort();
    let mut one = Vec::new();
    for p in names {
        let data = std::fs::read(&p).expect("read");
        let mut conn = Conn::new();
        let mut rest = &data[..];
        while rest.len() >= 5 {
            let dir = if rest[0] == 0 { C2S } else { S2C };
            let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            conn.push((dir, rest[5..5 + len].to_vec()));
            rest = &rest[5 + len..];
        }
        one.push(conn);
    }
    let conns = (0..copies).flat_map(|_| one.iter().cloned()).collect();
    Mix {
        name: "recorded",
        conns,
    }
}

#[inline(never)]
fn copy(mix: &Mix, buf: &mut Vec<u8>) -> u64 {
    let mut n = 0u64;
    for conn in &mix.conns {
        for (_, b) in conn {
            buf.clear();
            buf.extend_from_slice(black_box(b));
            n += black_box(buf.as_slice()).len() as u64;
        }
    }
    n
}

#[inline(never)]
fn decode(mix: &Mix, limits: &Limits) -> u64 {
    let mut txs = 0u64;
    let mut out: Vec<Event> = Vec::with_capacity(16);
    for conn in &mix.conns {
        let mut dec = ConnectionDecoder::new(limits, None);
        for (dir, b) in conn {
            dec.feed(*dir, black_box(b), &mut out);
            txs += out.len() as u64;
            black_box(&out);
            out.clear();
        }
        dec.finish(&mut out);
        txs += out.len() as u64;
        out.clear();
    }
    txs
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rounds: usize = std::env::var("WEFT_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let builders: Vec<(&str, Builder)> = vec![
        (
            "h1-headers",
            Box::new(|| h1_mix("h1-headers", 10, scale(2000), 100)),
        ),
        (
            "h1-bodies",
            Box::new(|| h1_mix("h1-bodies", 4, scale(100), 64 * 1024)),
        ),
        (
            "h2-headers",
            Box::new(|| h2_mix("h2-headers", 10, scale(2000), 100)),
        ),
        (
            "h2-bodies",
            Box::new(|| h2_mix("h2-bodies", 4, scale(100), 64 * 1024)),
        ),
        ("recorded", Box::new(|| recorded_mix(scale(200)))),
    ];
    let limits = Limits::default();
    println!(
        "{:<11} {:>8} {:>9} {:>11} {:>11} {:>13} {:>9}",
        "mix", "MB", "tx", "decode MB/s", "copy MB/s", "decode/copy", "k tx/s"
    );
    let mut buf = Vec::with_capacity(RECORD);
    for (name, build) in builders {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let mix = build();
        let bytes = mix.bytes();
        let (mut copy_s, mut dec_s) = (Vec::new(), Vec::new());
        let mut txs = 0;
        for _ in 0..rounds {
            let t = Instant::now();
            black_box(copy(&mix, &mut buf));
            copy_s.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            txs = decode(&mix, &limits);
            dec_s.push(t.elapsed().as_secs_f64());
        }
        let (c, d) = (median(copy_s), median(dec_s));
        let mb = bytes as f64 / 1e6;
        println!(
            "{:<11} {:>8.1} {:>9} {:>11.0} {:>11.0} {:>13.4} {:>9.0}",
            mix.name,
            mb,
            txs,
            mb / d,
            mb / c,
            c / d,
            txs as f64 / d / 1e3
        );
    }
}
