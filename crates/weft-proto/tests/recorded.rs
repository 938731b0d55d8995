//! Sessions of real clients and servers recorded by
//! `tests/fixtures/http_record.py` (curl, nghttp, h2load, node, python
//! against nginx and python's http.server, through a recording relay).
//! Ground truth is what the peers said (`http/<name>.json`: nginx's access
//! log or the script's own requests and bodies, and the files served), never
//! what the decoders report.

mod common;

use common::ws::read_records;
use serde_json::Value;
use weft_proto::{ConnectionDecoder, Counters, Direction, Event, Limits, Transaction};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn truth(name: &str) -> Value {
    let path = format!("{FIXTURES}/http/{name}.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture(rel: &str) -> Vec<u8> {
    let path = format!("{FIXTURES}/{rel}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Decodes every connection of a scenario, feeding each record whole or in
/// `piece`-byte slices.
fn decode(name: &str, piece: Option<usize>) -> (Vec<Transaction>, Counters) {
    let t = truth(name);
    let n = t["connections"].as_u64().expect("connections");
    let mut txs = Vec::new();
    let mut counters = Counters::default();
    for i in 0..n {
        let recs = read_records(&format!("http/{name}.{i}.rec"));
        assert!(!recs.is_empty(), "{name}.{i}.rec is empty");
        let mut dec = ConnectionDecoder::new(&Limits::default(), None);
        let mut out = Vec::new();
        for (dir, bytes) in &recs {
            match piece {
                None => dec.feed(*dir, bytes, &mut out),
                Some(p) => bytes.chunks(p).for_each(|c| dec.feed(*dir, c, &mut out)),
            }
        }
        dec.finish(&mut out);
        counters.add(&dec.take_counters());
        for e in out {
            match e {
                Event::Transaction(tx) => txs.push(*tx),
                other => panic!("{name}: unexpected event {other:?}"),
            }
        }
    }
    (txs, counters)
}

fn s(b: Option<&[u8]>) -> String {
    String::from_utf8_lossy(b.unwrap_or_default()).into_owned()
}

/// The version nginx (or the script) logged, as ECS spells it.
fn ecs_version(logged: &str) -> &'static str {
    match logged {
        "HTTP/2.0" => "2",
        "HTTP/1.0" => "1.0",
        "HTTP/1.1" => "1.1",
        other => panic!("unexpected version {other}"),
    }
}

/// Checks a scenario against its ground truth; returns the transactions in
/// decoding order.
fn check(name: &str) -> Vec<Transaction> {
    let t = truth(name);
    let (txs, c) = decode(name, None);
    let requests = t["requests"].as_array().expect("requests");
    assert_eq!(txs.len(), requests.len(), "{name}: transactions");
    // Same requests, in any order (HTTP/2 streams end in any order).
    let mut want: Vec<_> = requests
        .iter()
        .map(|r| {
            (
                r["method"].as_str().expect("fixture").to_string(),
                r["path"].as_str().expect("fixture").to_string(),
                r["status"].as_u64().expect("fixture") as u16,
                ecs_version(r["version"].as_str().expect("fixture")),
            )
        })
        .collect();
    let mut got: Vec<_> = txs
        .iter()
        .map(|tx| {
            (
                s(tx.method()),
                s(tx.path()),
                tx.status().unwrap_or(0),
                tx.version(),
            )
        })
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "{name}: (method, path, status, version)");

    let files = t["files"].as_object().expect("files");
    let bodies = t.get("bodies").and_then(Value::as_object);
    let req_bodies = t.get("request_bodies").and_then(Value::as_object);
    for tx in &txs {
        assert!(tx.is_complete(), "{name}: incomplete {tx:?}");
        let path = s(tx.path());
        let resp = &tx.response.body;
        let head = tx.method() == Some(b"HEAD");
        if head || tx.status() != Some(200) {
            if head {
                assert_eq!(resp.size, 0, "{name}: HEAD {path} has no body");
            }
        } else if let Some(f) = files.get(&path) {
            let want = fixture(f.as_str().expect("fixture"));
            assert!(
                resp.content() == want.as_slice(),
                "{name}: {path}: decoded body ({} bytes, coding {:?}) != {f} ({} bytes)",
                resp.content().len(),
                tx.response.headers.get(b"content-encoding").map(s_),
                want.len()
            );
        } else if let Some(b) = bodies.and_then(|b| b.get(&path)) {
            assert_eq!(
                s(Some(resp.content())),
                b.as_str().expect("fixture"),
                "{name}: {path}"
            );
        }
        // The body size on the wire is what the server says it sent (nginx:
        // $body_bytes_sent; HTTP/2 and Content-Length bodies only: chunk
        // framing is not body).
        let logged = requests
            .iter()
            .find(|r| r["path"] == path.as_str() && r["method"] == s(tx.method()).as_str());
        if let Some(r) = logged
            && !head
            && (tx.protocol == weft_proto::Protocol::Http2
                || tx.response.headers.get(b"content-length").is_some()
                || bodies.is_some())
        {
            assert_eq!(
                resp.size,
                r["body_bytes_sent"].as_u64().expect("fixture"),
                "{name}: {path}: body size"
            );
        }
        if let Some(b) = req_bodies.and_then(|b| b.get(&path)) {
            let want = match (b.get("file"), b.get("text")) {
                (Some(f), _) => fixture(f.as_str().expect("fixture")),
                (_, Some(t)) => t.as_str().expect("fixture").as_bytes().to_vec(),
                _ => panic!("bad request_bodies entry"),
            };
            assert!(
                tx.request.body.content() == want.as_slice(),
                "{name}: {path}: request body"
            );
        }
    }
    assert_eq!(c.transactions, requests.len() as u64);
    for (what, v) in [
        ("transactions_incomplete", c.transactions_incomplete),
        ("desyncs", c.desyncs),
        ("dropped_bytes", c.dropped_bytes),
        ("undecoded_bytes", c.undecoded_bytes),
        ("frame_errors", c.frame_errors),
        ("hpack_errors", c.hpack_errors),
        ("hpack_unknown_references", c.hpack_unknown_references),
        ("h1_parse_errors", c.h1_parse_errors),
        ("body_decode_errors", c.body_decode_errors),
        ("bodies_truncated", c.bodies_truncated),
    ] {
        assert_eq!(v, 0, "{name}: counter {what}");
    }
    // Reassembly: the same bytes in 7-byte and 1-byte pieces decode the same.
    for piece in [7, 1] {
        let (split, _) = decode(name, Some(piece));
        assert_eq!(split, txs, "{name}: fed in {piece}-byte pieces");
    }
    txs
}

fn s_(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn curl_http2_prior_knowledge_against_nginx() {
    // index.html and data.json gzipped by nginx, body.txt precompressed with
    // br, zstd and "gzip, br", a 404.
    let txs = check("curl_h2c");
    let codings: Vec<_> = txs
        .iter()
        .filter_map(|t| t.response.headers.get(b"content-encoding").map(s_))
        .collect();
    for c in ["gzip", "br", "zstd", "gzip, br"] {
        assert!(codings.iter().any(|x| x == c), "{c} in {codings:?}");
    }
}

#[test]
fn nghttp_concurrent_streams_against_nginx() {
    let txs = check("nghttp_h2c");
    // All four on one connection, on distinct client streams.
    let mut ids: Vec<_> = txs.iter().map(|t| t.stream_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    assert!(ids.iter().all(|i| i % 2 == 1));
}

#[test]
fn h2load_forty_requests_ten_at_a_time() {
    let t = truth("h2load_h2c");
    assert!(
        t["client"]
            .as_str()
            .expect("fixture")
            .contains("40 succeeded"),
        "{}",
        t["client"]
    );
    let txs = check("h2load_h2c");
    assert_eq!(txs.len(), 40);
}

#[test]
fn node_http2_client_against_nginx() {
    check("node_h2c");
}

#[test]
fn curl_http1_chunked_response_and_chunked_request() {
    let txs = check("curl_h1_chunked");
    let gz = txs
        .iter()
        .find(|t| t.path() == Some(b"/http/data.json"))
        .expect("fixture");
    assert_eq!(
        gz.response.headers.get(b"transfer-encoding"),
        Some(&b"chunked"[..])
    );
    let post = txs
        .iter()
        .find(|t| t.path() == Some(b"/echo"))
        .expect("fixture");
    assert_eq!(
        post.request.headers.get(b"transfer-encoding"),
        Some(&b"chunked"[..])
    );
}

#[test]
fn python_http_client_keep_alive() {
    check("python_h1");
}

#[test]
fn pipelined_requests_pair_in_order() {
    let t = truth("pipelined_h1");
    let txs = check("pipelined_h1");
    // One write carried all four requests; responses pair in request order.
    let recs = read_records("http/pipelined_h1.0.rec");
    let first = &recs[0];
    assert_eq!(first.0, Direction::ClientToServer);
    assert_eq!(first.1.windows(9).filter(|w| w == b"HTTP/1.1\r").count(), 4);
    let logged: Vec<_> = t["requests"]
        .as_array()
        .expect("fixture")
        .iter()
        .map(|r| r["path"].as_str().expect("fixture").to_string())
        .collect();
    let got: Vec<_> = txs.iter().map(|t| s(t.path())).collect();
    assert_eq!(got, logged);
}

#[test]
fn node_http1_keep_alive() {
    check("node_h1");
}

#[test]
fn http10_keep_alive_request_answered_by_http11_server() {
    let txs = check("curl_h10_keepalive");
    // nginx answered "HTTP/1.1 200" with keep-alive: still an HTTP/1.0 exchange.
    for t in &txs {
        assert_eq!(t.version(), "1.0");
        assert_eq!(
            t.response.headers.get(b"connection"),
            Some(&b"keep-alive"[..])
        );
    }
}

#[test]
fn http10_server_content_length_and_close_delimited() {
    let txs = check("python_h10");
    let close = txs
        .iter()
        .find(|t| t.path() == Some(b"/close"))
        .expect("fixture");
    assert!(close.response.headers.get(b"content-length").is_none());
}
