//! The body limits as the weft binary sets them (`--max-body SIZE` sets
//! `max_body_size`, `max_decoded_body_size` and `ws_max_message_size` to the
//! same value): 0 keeps no body bytes at all, a small size cuts bodies
//! mid-way. Sizes, flags and counters stay right; content decoding, gRPC
//! listing and WebSocket inflating of what is kept never fail.

mod common;

use common::chunked;
use common::h2::{self, Encoder, PREFACE};
use common::ws::{Deflater, frame, messages};
use weft_proto::websocket::DeflateParams;
use weft_proto::{
    ConnectionDecoder, Counters, DecodeError, Direction, Event, Limits, Protocol, Transaction,
    WsDecoder,
};

use Direction::{ClientToServer as C2S, ServerToClient as S2C};

/// What `--max-body max` gives the decoders.
fn max_body(max: u32) -> Limits {
    Limits {
        max_body_size: max,
        max_decoded_body_size: max,
        ws_max_message_size: max,
        ..Limits::default()
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(data).expect("write");
    enc.finish().expect("finish")
}

/// Not very compressible text: a counter in words.
fn text(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 16);
    let mut i = 0u64;
    while out.len() < len {
        out.extend(format!("line {i} of {} ", i.wrapping_mul(2_654_435_761) % 100_003).bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

fn transactions(out: Vec<Event>) -> Vec<Transaction> {
    out.into_iter()
        .filter_map(|e| match e {
            Event::Transaction(t) => Some(*t),
            _ => None,
        })
        .collect()
}

/// One HTTP/1.1 exchange: a POST with `req_body`, a response with `resp_body`.
fn http1(
    req_head: &str,
    req_body: &[u8],
    resp_head: &str,
    resp_body: &[u8],
    limits: &Limits,
) -> (Transaction, Counters) {
    let mut dec = ConnectionDecoder::new(limits, None);
    let mut out = Vec::new();
    let mut req = req_head.as_bytes().to_vec();
    req.extend_from_slice(req_body);
    // In pieces, as calls arrive.
    for piece in req.chunks(4096) {
        dec.feed(C2S, piece, &mut out);
    }
    let mut resp = resp_head.as_bytes().to_vec();
    resp.extend_from_slice(resp_body);
    for piece in resp.chunks(4096) {
        dec.feed(S2C, piece, &mut out);
    }
    dec.finish(&mut out);
    let mut t = transactions(out);
    assert_eq!(t.len(), 1);
    (t.remove(0), dec.take_counters())
}

#[test]
fn zero_keeps_no_body_bytes_but_every_size() {
    let req = text(5000);
    let resp = text(100_000);
    let (t, c) = http1(
        &format!(
            "POST /up HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            req.len()
        ),
        &req,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        &chunked(&resp, 7000),
        &max_body(0),
    );
    for (b, size) in [(&t.request.body, 5000), (&t.response.body, 100_000)] {
        assert!(b.data.is_empty());
        assert_eq!(b.size, size);
        assert!(b.truncated);
        assert!(b.content().is_empty());
        assert_eq!(b.decoded, None);
    }
    assert!(t.request.complete && t.response.complete);
    assert_eq!(c.bodies_truncated, 2);
    assert_eq!(c.body_bytes_dropped, 105_000);
    assert_eq!((c.desyncs, c.h1_parse_errors), (0, 0));
}

#[test]
fn zero_turns_content_decoding_off() {
    let body = gzip(&text(50_000));
    let (t, c) = http1(
        "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"",
        &format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ),
        &body,
        &max_body(0),
    );
    let b = &t.response.body;
    assert_eq!((b.data.len() as u64, b.size), (0, body.len() as u64));
    assert!(b.truncated);
    assert_eq!(b.decoded, None);
    assert_eq!((c.bodies_decoded, c.body_decode_errors), (0, 0));
}

#[test]
fn gzip_cut_mid_way_decodes_what_was_kept() {
    let plain = text(200_000);
    let body = gzip(&plain);
    assert!(body.len() > 16 * 1024, "the raw body is cut too");
    let (t, c) = http1(
        "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"",
        &format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ),
        &body,
        &max_body(16 * 1024),
    );
    let b = &t.response.body;
    assert_eq!(b.data.len(), 16 * 1024);
    assert_eq!(b.size, body.len() as u64);
    assert!(b.truncated);
    let d = b.decoded.as_ref().expect("decoded");
    assert!(d.truncated);
    assert_eq!(
        d.error,
        Some(DecodeError::Truncated(weft_proto::Coding::Gzip))
    );
    // The decoded bytes kept are the start of the plain text, at most the
    // limit; decoding went on through the raw bytes kept.
    assert_eq!(d.data.len(), 16 * 1024);
    assert_eq!(&plain[..d.data.len()], &d.data[..]);
    assert!(d.size > d.data.len() as u64);
    assert_eq!(b.content(), &d.data[..]);
    assert_eq!(c.bodies_truncated, 1);
    assert_eq!(c.body_decode_truncated, 1);
    assert_eq!(c.decoded_bytes_dropped, d.size - d.data.len() as u64);
}

/// An HTTP/2 gRPC response whose second message runs past the limit.
fn grpc_exchange(limits: &Limits) -> (Transaction, Counters) {
    let mut enc_c = Encoder::new(true);
    let mut enc_s = Encoder::new(false);
    let req = enc_c.encode(&[
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "a"),
        (":path", "/pkg.Svc/Get"),
        ("content-type", "application/grpc"),
    ]);
    let resp = enc_s.encode(&[(":status", "200"), ("content-type", "application/grpc")]);
    let trailers = enc_s.encode(&[("grpc-status", "0")]);
    let grpc = |msg: &[u8]| {
        let mut f = vec![0u8];
        f.extend((msg.len() as u32).to_be_bytes());
        f.extend_from_slice(msg);
        f
    };
    let mut body = grpc(&[7u8; 1000]);
    body.extend(grpc(&[9u8; 40_000]));
    let mut client = PREFACE.to_vec();
    client.extend(h2::settings(&[]));
    client.extend(h2::headers(1, &req, false));
    client.extend(h2::data(1, &grpc(b"\x0a\x03abc"), true));
    let mut server = h2::settings(&[]);
    server.extend(h2::headers(1, &resp, false));
    for piece in body.chunks(16_384) {
        server.extend(h2::data(1, piece, false));
    }
    server.extend(h2::headers(1, &trailers, true));
    let mut dec = ConnectionDecoder::new(limits, Some(Protocol::Http2));
    let mut out = Vec::new();
    dec.feed(C2S, &client, &mut out);
    dec.feed(S2C, &server, &mut out);
    dec.finish(&mut out);
    let mut t = transactions(out);
    assert_eq!(t.len(), 1);
    (t.remove(0), dec.take_counters())
}

#[test]
fn grpc_messages_cut_mid_way_are_listed_with_their_real_length() {
    let (t, c) = grpc_exchange(&max_body(16 * 1024));
    let b = &t.response.body;
    assert_eq!((b.data.len(), b.size), (16 * 1024, 1005 + 40_005));
    assert!(b.truncated);
    let g = b.grpc.as_ref().expect("grpc");
    assert_eq!(g.messages.len(), 2);
    assert_eq!((g.messages[0].length, g.messages[0].kept), (1000, 1000));
    assert_eq!(g.messages[1].length, 40_000);
    assert_eq!(g.messages[1].kept, 16 * 1024 - 1005 - 5);
    assert_eq!(b.grpc_payload(&g.messages[1]), &[9u8; 16 * 1024 - 1010][..]);
    // Cut by the limit, not broken framing.
    assert_eq!(g.error, None);
    assert_eq!(c.grpc_framing_errors, 0);
    assert_eq!(t.response.trailers.get(b"grpc-status"), Some(&b"0"[..]));
    // The small request is whole.
    assert!(!t.request.body.truncated);

    let (t, c) = grpc_exchange(&max_body(0));
    let b = &t.response.body;
    assert_eq!((b.data.len(), b.size), (0, 41_010));
    assert!(b.truncated);
    assert!(b.grpc.is_none(), "nothing to list");
    assert_eq!((c.bodies_truncated, c.body_bytes_dropped), (2, 41_010 + 10));
    assert_eq!(t.response.trailers.get(b"grpc-status"), Some(&b"0"[..]));
}

#[test]
fn websocket_messages_at_zero_keep_their_size_and_the_inflate_context() {
    let limits = max_body(0);
    let mut dec = WsDecoder::new(&limits, 1, Some(DeflateParams::default()));
    let mut d = Deflater::new();
    let payload = text(3000);
    let recs = [
        (S2C, frame(true, false, 1, None, &payload)),
        (S2C, frame(true, true, 1, None, &d.message(&payload))),
        (S2C, frame(true, true, 1, None, &d.message(b"after"))),
        (S2C, frame(true, false, 9, None, b"ping")),
    ];
    let mut out = Vec::new();
    for (dir, b) in &recs {
        dec.feed(*dir, b, &mut out);
    }
    dec.finish(&mut out);
    let m = messages(&out);
    assert_eq!(m.len(), 4);
    for m in &m[..2] {
        assert_eq!((m.payload.len(), m.size, m.truncated), (0, 3000, true));
        assert_eq!(m.decode_error, None);
    }
    // Inflating went on: the message after still decodes (its size is
    // known, its bytes are not kept).
    assert_eq!((m[2].size, m[2].payload.len()), (5, 0));
    assert_eq!(m[2].decode_error, None);
    // Control frames keep their bytes whatever the limit.
    assert_eq!(m[3].payload, b"ping");
    let c = dec.take_counters();
    assert_eq!(c.ws_messages_truncated, 3);
    assert_eq!(c.ws_bytes_dropped, 6005);
    assert_eq!(c.ws_inflate_errors, 0);
}
