//! Rough throughput check (not a benchmark harness):
//! `cargo run --release -p weft-proto --example throughput`
//!
//! Decodes a synthetic HTTP/2 connection (small GET requests and responses,
//! Huffman-coded, dynamic table in use) and the raw HPACK blocks of it, and
//! prints records and transactions per second on one core.

use std::time::Instant;

use weft_proto::hpack::{self, huffman_encode};
use weft_proto::http2::Http2Decoder;
use weft_proto::{Direction, Headers, Limits};

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Literal with incremental indexing, new name, Huffman strings.
fn literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0x40);
    for s in [name, value] {
        let mut h = Vec::new();
        huffman_encode(s.as_bytes(), &mut h);
        assert!(h.len() < 127);
        out.push(0x80 | h.len() as u8);
        out.extend_from_slice(&h);
    }
}

fn main() {
    let n: u32 = 200_000;
    let mut records: Vec<(Direction, Vec<u8>)> = Vec::new();
    let mut first = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    first.extend(frame(4, 0, 0, &[]));
    records.push((Direction::ClientToServer, first));
    records.push((Direction::ServerToClient, frame(4, 0, 0, &[])));
    let mut blocks = Vec::new();
    for i in 0..n {
        let id = 2 * i + 1;
        // :method GET, :scheme https, :authority (literal once, then indexed), :path literal.
        let mut req = vec![0x82, 0x87];
        if i == 0 {
            literal(&mut req, ":authority", "api.example.com");
            literal(&mut req, "user-agent", "weft-bench/1.0");
        } else {
            req.extend_from_slice(&[0x80 | 63, 0x80 | 62]); // indices shift as paths get inserted
        }
        req.push(0x04); // :path without indexing, static name 4
        let path = format!("/v1/items/{}", i % 1000);
        let mut h = Vec::new();
        huffman_encode(path.as_bytes(), &mut h);
        req.push(0x80 | h.len() as u8);
        req.extend_from_slice(&h);
        blocks.push(req.clone());
        records.push((Direction::ClientToServer, frame(1, 0x5, id, &req)));
        let resp = vec![0x88];
        records.push((Direction::ServerToClient, frame(1, 0x4, id, &resp)));
        records.push((
            Direction::ServerToClient,
            frame(0, 0x1, id, b"{\"ok\":true}"),
        ));
    }

    let limits = Limits::default();
    let t = Instant::now();
    let mut dec = Http2Decoder::new(&limits);
    let mut out = Vec::with_capacity(16);
    let mut txs = 0u64;
    for (dir, bytes) in &records {
        dec.feed(*dir, bytes, &mut out);
        txs += out.len() as u64;
        out.clear();
    }
    let el = t.elapsed().as_secs_f64();
    println!(
        "http2: {} records, {} transactions in {:.3}s: {:.2} M records/s, {:.2} M tx/s (complete: {})",
        records.len(),
        txs,
        el,
        records.len() as f64 / el / 1e6,
        txs as f64 / el / 1e6,
        dec.counters().transactions - dec.counters().transactions_incomplete
    );

    // HPACK alone on the request blocks.
    let t = Instant::now();
    let mut d = hpack::Decoder::new(&limits);
    let mut headers = Headers::new();
    let mut fields = 0usize;
    for b in &blocks {
        headers.clear();
        if d.decode(b, &mut headers).is_ok() {
            fields += headers.len();
        }
    }
    let el = t.elapsed().as_secs_f64();
    println!(
        "hpack: {} blocks, {} fields in {:.3}s: {:.2} M blocks/s",
        blocks.len(),
        fields,
        el,
        blocks.len() as f64 / el / 1e6
    );
}
