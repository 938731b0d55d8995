//! Holes the capture leaves past the body bound (`ConnectionDecoder::skip`):
//! inside a body of known length they are passed over in sync (the body is
//! cut, not lost, and the next message decodes); anywhere else they are
//! gaps, counted in `skip_gaps`.

mod common;

use common::h2::{self, Encoder, PREFACE};
use weft_proto::{ConnectionDecoder, Counters, Direction, Event, Limits, Protocol, Transaction};

use Direction::{ClientToServer as C2S, ServerToClient as S2C};

const MAX: u32 = 16 * 1024;

fn limits() -> Limits {
    Limits {
        max_body_size: MAX,
        max_decoded_body_size: MAX,
        ws_max_message_size: MAX,
        ..Limits::default()
    }
}

fn transactions(out: &[Event]) -> Vec<Transaction> {
    out.iter()
        .filter_map(|e| match e {
            Event::Transaction(t) => Some((**t).clone()),
            _ => None,
        })
        .collect()
}

/// A body whose bytes say where they are.
fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn h1() -> ConnectionDecoder {
    ConnectionDecoder::new(&limits(), Some(Protocol::Http1))
}

const GET1: &[u8] = b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n";
const GET2: &[u8] = b"GET /small HTTP/1.1\r\nHost: h\r\n\r\n";
const BIG_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 65536\r\n\r\n";
const SMALL: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";

/// The first transaction: a 65536-byte body seen as 16 KiB kept, cut, whole.
fn check_big(t: &Transaction) {
    let b = &t.response.body;
    assert_eq!(b.size, 65536);
    assert_eq!(b.data, body(65536)[..MAX as usize]);
    assert!(b.truncated);
    assert!(!t.response.data_lost && t.response.complete);
    assert!(t.is_complete(), "{t:?}");
}

fn check_small(t: &Transaction) {
    assert_eq!(t.path(), Some(&b"/small"[..]));
    assert_eq!(t.response.body.data, b"ok\n");
    assert!(!t.response.body.truncated);
    assert!(t.is_complete(), "{t:?}");
}

/// Counters of a connection whose only loss is `skipped` bytes passed over.
fn check_in_sync(c: &Counters, skipped: u64) {
    assert_eq!(c.body_bytes_skipped, skipped);
    assert_eq!((c.skip_gaps, c.gap_bytes, c.desyncs), (0, 0, 0));
    assert_eq!((c.hpack_resyncs, c.dropped_bytes), (0, 0));
    assert_eq!(c.bodies_truncated, 1);
    assert_eq!(c.body_bytes_dropped, 65536 - u64::from(MAX));
}

#[test]
fn h1_hole_in_a_content_length_body_keeps_sync() {
    let b = body(65536);
    let x = 100;
    let mut dec = h1();
    let mut out = Vec::new();
    dec.feed(C2S, GET1, &mut out);
    dec.feed(C2S, GET2, &mut out);
    let mut first = BIG_HEAD.to_vec();
    first.extend_from_slice(&b[..MAX as usize]);
    dec.feed(S2C, &first, &mut out);
    dec.skip(S2C, 65536 - u64::from(MAX) - x, &mut out);
    // The body's last bytes and the next response in one call.
    let mut last = b[65536 - x as usize..].to_vec();
    last.extend_from_slice(SMALL);
    dec.feed(S2C, &last, &mut out);
    let t = transactions(&out);
    assert_eq!(t.len(), 2);
    check_big(&t[0]);
    check_small(&t[1]);
    check_in_sync(&dec.take_counters(), 65536 - u64::from(MAX) - x);
}

#[test]
fn h1_holes_over_several_calls_and_at_the_body_end() {
    let b = body(65536);
    let mut dec = h1();
    let mut out = Vec::new();
    dec.feed(C2S, GET1, &mut out);
    dec.feed(S2C, BIG_HEAD, &mut out);
    dec.feed(S2C, &b[..MAX as usize], &mut out);
    // One hole per call, the kernel copying nothing of these calls.
    for _ in 0..2 {
        dec.skip(S2C, 16384, &mut out);
    }
    dec.skip(S2C, 16000, &mut out);
    assert!(out.is_empty());
    // The last hole ends the body: the transaction is out at once.
    dec.skip_at(S2C, 384, 77, &mut out);
    let t = transactions(&out);
    assert_eq!(t.len(), 1);
    check_big(&t[0]);
    assert_eq!(t[0].response.last_ns, 77);
    dec.feed(C2S, GET2, &mut out);
    dec.feed(S2C, SMALL, &mut out);
    let t = transactions(&out);
    assert_eq!(t.len(), 2);
    check_small(&t[1]);
    check_in_sync(&dec.take_counters(), 65536 - u64::from(MAX));
}

#[test]
fn h1_hole_in_a_request_body_and_a_chunk() {
    let up = body(40_000);
    let mut dec = h1();
    let mut out = Vec::new();
    let mut req = b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 40000\r\n\r\n".to_vec();
    req.extend_from_slice(&up[..MAX as usize]);
    dec.feed(C2S, &req, &mut out);
    dec.skip(C2S, 40_000 - u64::from(MAX), &mut out);
    // A chunked response: a hole inside one chunk's data.
    let chunked = common::chunked(&body(30_000), 30_000);
    // The chunk-size line is "7530\r\n".
    let cut = 6 + MAX as usize;
    let mut resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    resp.extend_from_slice(&chunked[..cut]);
    dec.feed(S2C, &resp, &mut out);
    dec.skip(S2C, 30_000 - u64::from(MAX) - 10, &mut out);
    dec.feed(S2C, &chunked[cut + 30_000 - MAX as usize - 10..], &mut out);
    let t = transactions(&out);
    assert_eq!(t.len(), 1);
    let t = &t[0];
    assert!(t.is_complete(), "{t:?}");
    assert_eq!(t.request.body.size, 40_000);
    assert_eq!(t.response.body.size, 30_000);
    assert!(t.request.body.truncated && t.response.body.truncated);
    let c = dec.take_counters();
    assert_eq!(
        c.body_bytes_skipped,
        40_000 + 30_000 - 2 * u64::from(MAX) - 10
    );
    assert_eq!((c.skip_gaps, c.gap_bytes, c.desyncs), (0, 0, 0));
    assert_eq!(c.bodies_truncated, 2);
}

/// A hole the decoder cannot place is a gap: flagged, counted, and the
/// direction resynchronises on the next message as after any gap.
fn h1_misplaced(before: &[u8], hole: u64, request: &[u8]) -> (Vec<Transaction>, Counters) {
    let mut dec = h1();
    let mut out = Vec::new();
    dec.feed(C2S, request, &mut out);
    dec.feed(S2C, before, &mut out);
    dec.skip(S2C, hole, &mut out);
    dec.feed(C2S, GET2, &mut out);
    dec.feed(S2C, SMALL, &mut out);
    dec.finish(&mut out);
    let c = dec.take_counters();
    assert_eq!(c.skip_gaps, 1);
    assert_eq!(c.gap_bytes, hole);
    assert_eq!(c.body_bytes_skipped, 0);
    let t = transactions(&out);
    check_small(t.last().expect("the second transaction"));
    (t, c)
}

#[test]
fn h1_hole_in_a_head_is_a_gap() {
    let (t, _) = h1_misplaced(b"HTTP/1.1 200 OK\r\nContent-Le", 5000, GET1);
    assert_eq!(t.len(), 2);
    assert!(t[0].response.data_lost);
}

#[test]
fn h1_hole_past_the_body_end_is_a_gap() {
    let mut before = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec();
    before.extend_from_slice(&[b'a'; 50]);
    let (t, _) = h1_misplaced(&before, 51, GET1);
    assert_eq!(t.len(), 2);
    assert!(t[0].response.data_lost);
    assert_eq!(t[0].response.body.size, 50);
    // Huge holes too, without overflow.
    let (t, c) = h1_misplaced(&before, u64::MAX, GET1);
    assert_eq!((t.len(), c.gap_bytes), (2, u64::MAX));
}

#[test]
fn h1_hole_after_a_head_response_is_a_gap() {
    // The kernel may take a HEAD response's Content-Length for a body.
    let (t, _) = h1_misplaced(BIG_HEAD, 1000, b"HEAD /big HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(t[0].response.body.size, 0);
    assert!(t[0].response.complete);
}

#[test]
fn h1_hole_in_a_body_of_unknown_length_is_a_gap() {
    let (t, _) = h1_misplaced(b"HTTP/1.0 200 OK\r\n\r\nuntil close", 1000, GET1);
    assert!(t[0].response.data_lost);
}

#[test]
fn zero_holes_change_nothing() {
    let mut dec = h1();
    let mut out = Vec::new();
    dec.skip(C2S, 0, &mut out);
    dec.feed(C2S, b"GET /small HTTP/1.1\r\nHo", &mut out);
    dec.skip(C2S, 0, &mut out);
    dec.feed(C2S, b"st: h\r\n\r\n", &mut out);
    dec.skip(S2C, 0, &mut out);
    dec.feed(S2C, SMALL, &mut out);
    check_small(&transactions(&out)[0]);
    assert_eq!(dec.take_counters().skip_gaps, 0);
    // While detecting: a gap like any other.
    let mut dec = ConnectionDecoder::new(&limits(), None);
    dec.skip(S2C, 0, &mut out);
    assert!(dec.is_detecting());
    dec.skip(S2C, 7, &mut out);
    let c = dec.take_counters();
    assert_eq!((c.skip_gaps, c.gap_bytes), (1, 7));
}

/// An HTTP/2 connection's two byte streams, built record by record.
struct H2 {
    client: Encoder,
    server: Encoder,
}

const RESP_HEADERS: &[(&str, &str)] = &[
    (":status", "200"),
    ("content-type", "application/octet-stream"),
    ("server", "nginx/1.22.1"),
    ("x-trace", "a0b1c2d3e4"),
];

impl H2 {
    fn new() -> Self {
        H2 {
            client: Encoder::new(true),
            server: Encoder::new(true),
        }
    }

    fn get(&mut self, stream: u32, path: &str) -> Vec<u8> {
        let block = self.client.encode(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "example.com"),
            (":path", path),
            ("user-agent", "weft-test/1.0"),
        ]);
        h2::headers(stream, &block, true)
    }

    fn ok(&mut self, stream: u32, end_stream: bool) -> Vec<u8> {
        let block = self.server.encode(RESP_HEADERS);
        h2::headers(stream, &block, end_stream)
    }
}

fn h2_start(dec: &mut ConnectionDecoder, c: &mut H2, out: &mut Vec<Event>) {
    let mut first = PREFACE.to_vec();
    first.extend(h2::settings(&[(3, 100)]));
    first.extend(c.get(1, "/big"));
    first.extend(c.get(3, "/small"));
    dec.feed(C2S, &first, out);
    dec.feed(S2C, &h2::settings(&[(3, 250)]), out);
}

/// The response headers of `t`, decoded right (dynamic-table references).
fn check_h2_response(t: &Transaction) {
    assert!(!t.response.headers_incomplete);
    assert_eq!(t.response.headers.get(b"x-trace"), Some(&b"a0b1c2d3e4"[..]));
    assert_eq!(
        t.response.headers.get(b"server"),
        Some(&b"nginx/1.22.1"[..])
    );
}

#[test]
fn h2_holes_in_data_payloads_keep_frames_and_hpack_in_sync() {
    let b = body(65536);
    let frames: Vec<&[u8]> = b.chunks(16384).collect();
    let mut dec = ConnectionDecoder::new(&limits(), Some(Protocol::Http2));
    let mut c = H2::new();
    let mut out = Vec::new();
    h2_start(&mut dec, &mut c, &mut out);
    // Call 1: the head and the first frame, copied whole (16 KiB).
    let mut call = c.ok(1, false);
    call.extend(h2::data(1, frames[0], false));
    // Call 2: frame 2's header, its payload a hole.
    call.extend_from_slice(&h2::data(1, frames[1], false)[..9]);
    dec.feed(S2C, &call, &mut out);
    dec.skip(S2C, 16384, &mut out);
    // Call 3: another stream's response, then frame 3, holed but for
    // its last bytes, then frame 4's header and a hole to the end.
    let mut call = c.ok(3, false);
    call.extend(h2::data(3, b"hi\n", true));
    call.extend_from_slice(&h2::data(1, frames[2], false)[..9]);
    dec.feed(S2C, &call, &mut out);
    assert_eq!(transactions(&out).len(), 1, "stream 3 done");
    dec.skip(S2C, 16000, &mut out);
    let mut call = frames[2][16000..].to_vec();
    call.extend_from_slice(&h2::data(1, frames[3], true)[..9]);
    dec.feed(S2C, &call, &mut out);
    dec.skip(S2C, 16384, &mut out);
    let t = transactions(&out);
    assert_eq!(t.len(), 2, "stream 1 done at its last hole");
    check_big(&t[1]);
    check_h2_response(&t[1]);
    check_h2_response(&t[0]);
    assert_eq!(t[0].response.body.data, b"hi\n");
    // Later header blocks refer to the dynamic tables of both sides.
    dec.feed(C2S, &c.get(5, "/small"), &mut out);
    let mut call = c.ok(5, false);
    call.extend(h2::data(5, b"ok\n", true));
    dec.feed(S2C, &call, &mut out);
    let t = transactions(&out);
    assert_eq!(t.len(), 3);
    assert!(t[2].is_complete(), "{:?}", t[2]);
    assert_eq!(t[2].path(), Some(&b"/small"[..]));
    assert!(!t[2].request.headers_incomplete);
    check_h2_response(&t[2]);
    check_in_sync(&dec.take_counters(), 16384 + 16000 + 16384);
}

/// Frame 1 of stream 1: `data` with `pad` bytes of padding, END_STREAM.
fn padded(data: &[u8], pad: u8) -> Vec<u8> {
    let mut p = vec![pad];
    p.extend_from_slice(data);
    p.extend(std::iter::repeat_n(0, usize::from(pad)));
    h2::frame(h2::DATA, h2::PADDED | h2::END_STREAM, 1, &p)
}

#[test]
fn h2_hole_over_the_end_of_a_padded_frame() {
    let b = body(20_000);
    let frame = padded(&b, 200);
    let mut dec = ConnectionDecoder::new(&limits(), Some(Protocol::Http2));
    let mut c = H2::new();
    let mut out = Vec::new();
    h2_start(&mut dec, &mut c, &mut out);
    let mut call = c.ok(1, false);
    // Header, pad length, 16 KiB of data; the rest and the padding a hole.
    call.extend_from_slice(&frame[..10 + MAX as usize]);
    dec.feed(S2C, &call, &mut out);
    dec.skip(S2C, (20_000 - MAX + 200).into(), &mut out);
    let t = transactions(&out);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].response.body.size, 20_000);
    assert!(t[0].response.body.truncated && t[0].is_complete());
    // In sync: the next frames decode.
    let mut call = c.ok(3, false);
    call.extend(h2::data(3, b"ok\n", true));
    dec.feed(S2C, &call, &mut out);
    check_h2_response(&transactions(&out)[1]);
    let c = dec.take_counters();
    assert_eq!(c.body_bytes_skipped, u64::from(20_000 - MAX + 200));
    assert_eq!(c.body_bytes_dropped, u64::from(20_000 - MAX));
    assert_eq!(
        (c.skip_gaps, c.gap_bytes, c.desyncs, c.hpack_resyncs),
        (0, 0, 0, 0)
    );
}

#[test]
fn h2_hole_over_padding_only() {
    let frame = padded(b"small body", 100);
    let mut dec = ConnectionDecoder::new(&limits(), Some(Protocol::Http2));
    let mut c = H2::new();
    let mut out = Vec::new();
    h2_start(&mut dec, &mut c, &mut out);
    let mut call = c.ok(1, false);
    call.extend_from_slice(&frame[..frame.len() - 100]);
    dec.feed(S2C, &call, &mut out);
    dec.skip(S2C, 60, &mut out);
    dec.skip(S2C, 40, &mut out);
    let mut call = c.ok(3, false);
    call.extend(h2::data(3, b"ok\n", true));
    dec.feed(S2C, &call, &mut out);
    let t = transactions(&out);
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].response.body.data, b"small body");
    // Nothing of the body was lost.
    assert!(!t[0].response.body.truncated && t[0].is_complete());
    check_h2_response(&t[1]);
    let c = dec.take_counters();
    assert_eq!((c.body_bytes_skipped, c.bodies_truncated), (100, 0));
    assert_eq!((c.skip_gaps, c.gap_bytes, c.desyncs), (0, 0, 0));
}

#[test]
fn h2_hole_at_a_frame_header_or_past_a_frame_is_a_gap() {
    for (at_header, hole) in [(true, 9), (false, 16385), (false, u64::MAX)] {
        let mut dec = ConnectionDecoder::new(&limits(), Some(Protocol::Http2));
        let mut c = H2::new();
        let mut out = Vec::new();
        h2_start(&mut dec, &mut c, &mut out);
        let mut call = c.ok(1, false);
        let frame = h2::data(1, &body(16384), false);
        call.extend_from_slice(if at_header { &frame } else { &frame[..9] });
        dec.feed(S2C, &call, &mut out);
        dec.skip(S2C, hole, &mut out);
        let c = dec.take_counters();
        assert_eq!(
            (c.skip_gaps, c.gap_bytes, c.body_bytes_skipped),
            (1, hole, 0)
        );
        assert_eq!(c.hpack_resyncs, 1);
        dec.finish(&mut out);
        assert!(transactions(&out)[0].response.data_lost);
    }
}

#[test]
fn websocket_hole_in_a_frame_payload() {
    use common::ws::frame;
    let mut dec = h1();
    let mut out = Vec::new();
    dec.feed(
        C2S,
        b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        &mut out,
    );
    dec.feed(
        S2C,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        &mut out,
    );
    assert!(dec.is_websocket());
    let big = frame(true, false, 2, None, &body(40_000));
    // Header (4 bytes) and 16 KiB, then a hole to the frame's end.
    dec.feed(S2C, &big[..4 + MAX as usize], &mut out);
    dec.skip(S2C, u64::from(40_000 - MAX), &mut out);
    dec.feed(S2C, &frame(true, false, 1, None, b"next"), &mut out);
    // A hole in a header is a gap.
    dec.skip(S2C, 3, &mut out);
    let msgs = common::ws::messages(&out);
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].size, 40_000);
    assert!(msgs[0].truncated && msgs[0].complete && !msgs[0].data_lost);
    assert_eq!(msgs[0].payload, body(40_000)[..MAX as usize]);
    assert_eq!(msgs[1].payload, b"next");
    let c = dec.take_counters();
    assert_eq!(c.body_bytes_skipped, u64::from(40_000 - MAX));
    assert_eq!((c.skip_gaps, c.gap_bytes, c.desyncs), (1, 3, 1));
}

#[test]
fn h2_hole_in_a_websocket_stream_is_a_gap_for_its_messages_only() {
    use common::ws::frame;
    let (client, server) = h2::ws_connect("200");
    let mut dec = ConnectionDecoder::new(&limits(), Some(Protocol::Http2));
    let mut out = Vec::new();
    dec.feed(C2S, &client, &mut out);
    dec.feed(S2C, &server, &mut out);
    // A WebSocket frame of 20000 bytes in one DATA frame, its end a hole.
    let msg = frame(true, false, 2, None, &body(20_000));
    let data = h2::data(1, &msg, false);
    dec.feed(S2C, &data[..9 + 4 + MAX as usize], &mut out);
    dec.skip(S2C, (20_000 - MAX).into(), &mut out);
    // The HTTP/2 frames stay in sync: the next WebSocket frame decodes.
    dec.feed(
        S2C,
        &h2::data(1, &frame(true, false, 1, None, b"next"), false),
        &mut out,
    );
    let msgs = common::ws::messages(&out);
    assert_eq!(msgs.len(), 2);
    assert!(msgs[0].data_lost && !msgs[0].complete);
    assert!(msgs[1].complete && !msgs[1].data_lost);
    assert_eq!(msgs[1].payload, b"next");
    dec.finish(&mut out);
    let c = dec.take_counters();
    assert_eq!((c.skip_gaps, c.gap_bytes), (1, u64::from(20_000 - MAX)));
    assert_eq!((c.hpack_resyncs, c.body_bytes_skipped), (0, 0));
    // Only the cut message is lost.
    assert_eq!(c.ws_messages_incomplete, 1);
}

/// A small xorshift generator: the same cases on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Feeds `bytes` in calls of random sizes as the capture would deliver
/// them: in each call, every run of bytes marked in `hole` is skipped
/// instead of fed.
fn feed_with_holes(
    dec: &mut ConnectionDecoder,
    dir: Direction,
    bytes: &[u8],
    hole: &[bool],
    rng: &mut Rng,
    out: &mut Vec<Event>,
) {
    let mut at = 0;
    while at < bytes.len() {
        let end = (at + 1 + rng.below(6000)).min(bytes.len());
        let mut i = at;
        while i < end {
            let run = hole[i..end]
                .iter()
                .position(|&h| h != hole[i])
                .unwrap_or(end - i);
            if hole[i] {
                dec.skip(dir, run as u64, out);
            } else {
                dec.feed(dir, &bytes[i..i + run], out);
            }
            i += run;
        }
        at = end;
    }
}

/// What holes must not change in a transaction.
fn facts(t: &Transaction) -> impl PartialEq + std::fmt::Debug {
    let b = &t.response.body;
    (
        t.stream_id,
        t.path().map(<[u8]>::to_vec),
        t.status(),
        (b.size, b.data.clone(), b.truncated),
        t.is_complete(),
    )
}

const SMALL_MAX: u32 = 1000;

fn small_max() -> Limits {
    Limits {
        max_body_size: SMALL_MAX,
        ..Limits::default()
    }
}

/// Whole bodies or bodies holed past the bound: the same transactions.
fn same_with_holes(
    protocol: Protocol,
    client: &[u8],
    server: &[u8],
    hole: &[bool],
    rng: &mut Rng,
) -> u64 {
    let mut whole = ConnectionDecoder::new(&small_max(), Some(protocol));
    let mut holed = ConnectionDecoder::new(&small_max(), Some(protocol));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    whole.feed(C2S, client, &mut a);
    whole.feed(S2C, server, &mut a);
    holed.feed(C2S, client, &mut b);
    feed_with_holes(&mut holed, S2C, server, hole, rng, &mut b);
    // Everything was out before the end of the connection.
    let (a, b) = (transactions(&a), transactions(&b));
    assert!(!a.is_empty());
    let want: Vec<_> = a.iter().map(facts).collect();
    let got: Vec<_> = b.iter().map(facts).collect();
    assert_eq!(got, want);
    let c = holed.take_counters();
    assert_eq!(
        (c.skip_gaps, c.gap_bytes, c.desyncs, c.hpack_resyncs),
        (0, 0, 0, 0)
    );
    let w = whole.take_counters();
    assert_eq!(
        (c.bodies_truncated, c.body_bytes_dropped),
        (w.bodies_truncated, w.body_bytes_dropped)
    );
    c.body_bytes_skipped
}

#[test]
fn h1_random_holes_past_the_bound_change_nothing() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut skipped = 0;
    for _ in 0..200 {
        let (mut client, mut server, mut hole) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..1 + rng.below(8) {
            client.extend(format!("GET /{i} HTTP/1.1\r\nHost: h\r\n\r\n").bytes());
            let size = rng.below(3 * SMALL_MAX as usize);
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n");
            server.extend(head.bytes());
            hole.extend(std::iter::repeat_n(false, head.len()));
            server.extend(body(size));
            hole.extend((0..size).map(|at| at >= SMALL_MAX as usize));
        }
        skipped += same_with_holes(Protocol::Http1, &client, &server, &hole, &mut rng);
    }
    assert!(skipped > 100_000, "{skipped}");
}

#[test]
fn h2_random_holes_past_the_bound_change_nothing() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut skipped = 0;
    for _ in 0..200 {
        let mut c = H2::new();
        let mut client = PREFACE.to_vec();
        client.extend(h2::settings(&[]));
        let mut server = h2::settings(&[]);
        let mut hole = vec![false; server.len()];
        // Per stream: body bytes left, body bytes sent.
        let mut open: Vec<(u32, usize, usize)> = Vec::new();
        for k in 0..1 + rng.below(6) as u32 {
            let id = 2 * k + 1;
            client.extend(c.get(id, &format!("/{id}")));
            let head = c.ok(id, false);
            hole.extend(std::iter::repeat_n(false, head.len()));
            server.extend(head);
            open.push((id, rng.below(3 * SMALL_MAX as usize) + 1, 0));
        }
        // DATA frames of the streams interleaved, some padded.
        while !open.is_empty() {
            let i = rng.below(open.len());
            let (id, left, sent) = open[i];
            let n = left.min(1 + rng.below(1500));
            let pad = if rng.below(4) == 0 { rng.below(40) } else { 0 };
            let last = n == left;
            let data = &body(sent + n)[sent..];
            let mut payload = Vec::new();
            let mut mask = Vec::new();
            if pad > 0 {
                payload.push(pad as u8);
                mask.push(false);
            }
            payload.extend_from_slice(data);
            mask.extend((sent..sent + n).map(|at| at >= SMALL_MAX as usize));
            payload.extend(std::iter::repeat_n(0, pad));
            let past = sent + n >= SMALL_MAX as usize;
            mask.extend(std::iter::repeat_n(past, pad));
            let end = if last { h2::END_STREAM } else { 0 };
            let flags = end | if pad > 0 { h2::PADDED } else { 0 };
            server.extend(h2::frame(h2::DATA, flags, id, &payload));
            hole.extend([false; 9]);
            hole.extend(mask);
            if last {
                open.remove(i);
            } else {
                open[i] = (id, left - n, sent + n);
            }
        }
        skipped += same_with_holes(Protocol::Http2, &client, &server, &hole, &mut rng);
    }
    assert!(skipped > 100_000, "{skipped}");
}
