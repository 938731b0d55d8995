//! WebSocket: RFC 6455 / RFC 7692 examples, recorded sessions (HTTP/1.1
//! upgrade), HTTP/2 extended CONNECT (RFC 8441), limits, gaps.

mod common;

use common::h2::{self, Encoder, PREFACE};
use common::ws::{Deflater, frame, messages, read_records};
use weft_proto::websocket::DeflateParams;
use weft_proto::{
    ConnectionDecoder, DecodeError, Direction, Event, Limits, Opcode, Protocol, WsDecoder,
    WsMessage,
};

use Direction::{ClientToServer as C2S, ServerToClient as S2C};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn ws(deflate: bool) -> WsDecoder {
    WsDecoder::new(&Limits::default(), 1, deflate.then(DeflateParams::default))
}

fn decode(dec: &mut WsDecoder, records: &[(Direction, Vec<u8>)]) -> Vec<WsMessage> {
    let mut out = Vec::new();
    for (dir, b) in records {
        dec.feed(*dir, b, &mut out);
    }
    dec.finish(&mut out);
    messages(&out).into_iter().cloned().collect()
}

fn summary(m: &[WsMessage]) -> Vec<(Direction, Opcode, String)> {
    m.iter()
        .map(|m| {
            (
                m.direction,
                m.opcode,
                String::from_utf8_lossy(&m.payload).into_owned(),
            )
        })
        .collect()
}

#[test]
fn rfc6455_section_5_7_examples() {
    let mut big = vec![0x82, 0x7e, 0x01, 0x00];
    big.extend((0..=255u8).collect::<Vec<_>>());
    let mut huge = vec![0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0];
    huge.extend(std::iter::repeat_n(0xab, 65536));
    let recs = vec![
        // A single-frame unmasked text message.
        (S2C, vec![0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]),
        // A single-frame masked text message.
        (
            C2S,
            vec![
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
            ],
        ),
        // A fragmented unmasked text message.
        (S2C, vec![0x01, 0x03, 0x48, 0x65, 0x6c]),
        (S2C, vec![0x80, 0x02, 0x6c, 0x6f]),
        // Unmasked ping, masked pong.
        (S2C, vec![0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]),
        (
            C2S,
            vec![
                0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
            ],
        ),
        // 256 bytes and 64 KiB binary messages in a single unmasked frame.
        (S2C, big),
        (S2C, huge),
    ];
    let mut dec = ws(false);
    let m = decode(&mut dec, &recs);
    let s = summary(&m);
    assert_eq!(
        s[..5],
        [
            (S2C, Opcode::Text, "Hello".into()),
            (C2S, Opcode::Text, "Hello".into()),
            (S2C, Opcode::Text, "Hello".into()),
            (S2C, Opcode::Ping, "Hello".into()),
            (C2S, Opcode::Pong, "Hello".into()),
        ]
    );
    assert_eq!(m[2].frames, 2);
    assert_eq!(m[5].opcode, Opcode::Binary);
    assert_eq!(m[5].payload, (0..=255u8).collect::<Vec<_>>());
    assert_eq!((m[6].size, m[6].payload.len()), (65536, 65536));
    assert!(
        m.iter()
            .all(|m| m.complete && !m.truncated && !m.compressed)
    );
    let c = dec.take_counters();
    assert_eq!(
        (c.ws_messages, c.ws_frames, c.ws_protocol_errors),
        (7, 8, 0)
    );
}

#[test]
fn rfc7692_section_7_2_3_examples() {
    let recs = vec![
        // §7.2.3.1: "Hello" compressed, one frame.
        (
            S2C,
            vec![0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        ),
        // Same, fragmented.
        (S2C, vec![0x41, 0x03, 0xf2, 0x48, 0xcd]),
        (S2C, vec![0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00]),
        // §7.2.3.2: with context takeover, the second "Hello" refers back.
        (S2C, vec![0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]),
        // §7.2.3.3: a DEFLATE block with no compression.
        (
            S2C,
            vec![
                0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
            ],
        ),
        // §7.2.3.4: a DEFLATE block with BFINAL set.
        (
            S2C,
            vec![0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
        ),
        // §7.2.3.5: two DEFLATE blocks in one message.
        (
            S2C,
            vec![
                0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07,
                0x00,
            ],
        ),
        // And one more after the BFINAL stream: a fresh context.
        (
            S2C,
            vec![0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        ),
    ];
    let mut dec = ws(true);
    let m = decode(&mut dec, &recs);
    assert_eq!(m.len(), 7);
    for (i, m) in m.iter().enumerate() {
        assert_eq!(m.payload, b"Hello", "message {i}");
        assert!(
            m.compressed && m.complete && m.decode_error.is_none(),
            "{m:?}"
        );
        assert_eq!(m.size, 5);
    }
    assert_eq!(m[1].frames, 2);
    assert_eq!(m[1].wire_size, 7);
    assert_eq!(dec.take_counters().ws_inflate_errors, 0);
}

/// The messages the recording script sends (and the server echoes).
fn expected_session() -> Vec<(Opcode, Vec<u8>)> {
    let items: Vec<String> = (0..600)
        .map(|i| format!("{{\"id\": {i}, \"name\": \"item-{i}\", \"ok\": true}}"))
        .collect();
    let big = format!("{{\"items\": [{}]}}", items.join(", "));
    let binary: Vec<u8> = (0..4).flat_map(|_| 0..=255u8).collect();
    let mut v = Vec::new();
    for t in ["Hello", "Hello", "Hello, WebSocket!"] {
        v.push((Opcode::Text, t.as_bytes().to_vec()));
    }
    v.push((Opcode::Text, big.into_bytes()));
    v.push((Opcode::Binary, binary));
    v.push((
        Opcode::Text,
        b"fragment one, fragment two, fragment three".to_vec(),
    ));
    v
}

fn check_session(events: &[Event], compressed: bool) {
    let txs: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Transaction(t) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].status(), Some(101));
    let upgrade = events
        .iter()
        .position(|e| matches!(e, Event::Upgrade { .. }))
        .expect("upgrade event");
    let first_ws = events
        .iter()
        .position(|e| matches!(e, Event::WebSocket(_)))
        .expect("messages");
    assert!(upgrade < first_ws);
    let m = messages(events);
    let expected = expected_session();
    // Client message, server echo, for each data message.
    for (i, (op, payload)) in expected.iter().enumerate() {
        for (j, dir) in [C2S, S2C].into_iter().enumerate() {
            let msg = m[2 * i + j];
            assert_eq!(msg.direction, dir, "message {i}");
            assert_eq!(msg.opcode, *op, "message {i}");
            assert_eq!(&msg.payload, payload, "message {i} {dir:?}");
            assert_eq!(msg.size, payload.len() as u64);
            assert_eq!(msg.compressed, compressed, "message {i}");
            assert!(msg.complete && !msg.truncated && !msg.data_lost);
            assert_eq!(msg.decode_error, None);
        }
    }
    // The client's fragmented message came in three frames and an empty
    // final one (how websockets ends a fragmented send).
    assert_eq!(m[10].frames, 4);
    let rest: Vec<_> = m[12..]
        .iter()
        .map(|m| (m.direction, m.opcode, m.payload.clone(), m.close_code))
        .collect();
    assert_eq!(
        rest,
        [
            (C2S, Opcode::Ping, b"are you there".to_vec(), None),
            (S2C, Opcode::Pong, b"are you there".to_vec(), None),
            (C2S, Opcode::Close, b"bye now".to_vec(), Some(1000)),
            (S2C, Opcode::Close, b"bye now".to_vec(), Some(1000)),
        ]
    );
}

fn run_records(
    records: &[(Direction, Vec<u8>)],
    split: Option<usize>,
) -> (Vec<Event>, ConnectionDecoder) {
    let mut dec = ConnectionDecoder::new(&Limits::default(), None);
    let mut out = Vec::new();
    for (i, (dir, b)) in records.iter().enumerate() {
        match split {
            Some(n) => {
                for piece in b.chunks(n) {
                    dec.feed_at(*dir, piece, 1000 + i as u64, &mut out);
                }
            }
            None => dec.feed_at(*dir, b, 1000 + i as u64, &mut out),
        }
    }
    dec.finish(&mut out);
    (out, dec)
}

#[test]
fn recorded_session_with_permessage_deflate() {
    let recs = read_records("ws_deflate.rec");
    let (out, mut dec) = run_records(&recs, None);
    assert!(dec.is_websocket());
    assert_eq!(dec.protocol(), None);
    check_session(&out, true);
    let c = dec.take_counters();
    assert_eq!(c.ws_messages, 16);
    assert_eq!(c.ws_protocol_errors, 0);
    assert_eq!(c.ws_inflate_errors, 0);
    assert_eq!(c.undecoded_bytes, 0);
    assert_eq!(c.dropped_bytes, 0);
    // Timestamps come from the feeds.
    let m = messages(&out);
    assert_eq!((m[0].first_ns, m[0].last_ns), (1002, 1002));
    // Split at every byte: same messages.
    let (split, _) = run_records(&recs, Some(1));
    check_session(&split, true);
    let (split7, _) = run_records(&recs, Some(7));
    check_session(&split7, true);
}

#[test]
fn recorded_session_without_context_takeover() {
    let recs = read_records("ws_deflate_nocontext.rec");
    let (out, mut dec) = run_records(&recs, None);
    check_session(&out, true);
    assert_eq!(dec.take_counters().ws_inflate_errors, 0);
    // Without context takeover each message decodes alone: drop the first
    // "Hello" exchange and the rest still decodes.
    let skipped: Vec<_> = recs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2 && *i != 3)
        .map(|(_, r)| r.clone())
        .collect();
    let (out, mut dec) = run_records(&skipped, None);
    assert!(messages(&out).iter().all(|m| m.decode_error.is_none()));
    assert_eq!(dec.take_counters().ws_inflate_errors, 0);
}

#[test]
fn recorded_session_without_compression() {
    let recs = read_records("ws_plain.rec");
    let (out, _) = run_records(&recs, None);
    check_session(&out, false);
}

#[test]
fn lost_history_fails_then_recovers() {
    // With context takeover, the second "Hello" refers to the first.
    let recs = read_records("ws_deflate.rec");
    let mut dec = ConnectionDecoder::new(&Limits::default(), None);
    let mut out = Vec::new();
    for (i, (dir, b)) in recs.iter().enumerate() {
        if i == 3 {
            // The server's first "Hello" is lost.
            dec.gap(*dir, b.len() as u64);
            continue;
        }
        dec.feed(*dir, b, &mut out);
    }
    dec.finish(&mut out);
    let server: Vec<_> = messages(&out)
        .into_iter()
        .filter(|m| m.direction == S2C)
        .collect();
    assert_eq!(
        server[0].decode_error,
        Some(DecodeError::Corrupt(weft_proto::Coding::Deflate))
    );
    // Later messages that do not reach back past the loss decode again.
    let errors: Vec<_> = server.iter().map(|m| m.decode_error.is_some()).collect();
    assert_eq!(errors, [true, true, false, false, false, false, false]);
    let expected = expected_session();
    assert_eq!(server[4].payload, expected[5].1);
    assert_eq!(server[4].decode_error, None);
    // The close frame is not compressed and always decodes.
    let last = server.last().expect("close");
    assert_eq!((last.opcode, last.close_code), (Opcode::Close, Some(1000)));
    let c = dec.take_counters();
    assert!(c.ws_inflate_errors >= 1);
    assert_eq!(c.gap_bytes, recs[3].1.len() as u64);
    // The client side is untouched.
    assert!(
        messages(&out)
            .iter()
            .filter(|m| m.direction == C2S)
            .all(|m| m.decode_error.is_none())
    );
}

#[test]
fn control_frames_between_fragments() {
    let recs = vec![
        (C2S, frame(false, false, 1, Some(KEY), b"one ")),
        (C2S, frame(true, false, 9, Some(KEY), b"ping")),
        (C2S, frame(false, false, 0, Some(KEY), b"two ")),
        (C2S, frame(true, false, 8, Some(KEY), &[0x03, 0xe9])),
        (C2S, frame(true, false, 0, Some(KEY), b"three")),
    ];
    let m = decode(&mut ws(false), &recs);
    assert_eq!(
        summary(&m),
        [
            (C2S, Opcode::Ping, "ping".into()),
            (C2S, Opcode::Close, "".into()),
            (C2S, Opcode::Text, "one two three".into()),
        ]
    );
    assert_eq!(m[1].close_code, Some(1001));
    assert_eq!(m[2].frames, 3);
}

#[test]
fn compressed_fragments_with_interleaved_ping() {
    let mut d = Deflater::new();
    let text = "the quick brown fox jumps over the lazy dog ".repeat(50);
    let c = d.message(text.as_bytes());
    let (a, b) = c.split_at(c.len() / 2);
    let recs = vec![
        (C2S, frame(false, true, 1, Some(KEY), a)),
        (C2S, frame(true, false, 9, Some(KEY), b"")),
        (C2S, frame(true, false, 0, Some(KEY), b)),
        (
            C2S,
            frame(true, true, 1, Some(KEY), &d.message(text.as_bytes())),
        ),
    ];
    let m = decode(&mut ws(true), &recs);
    assert_eq!(m[0].opcode, Opcode::Ping);
    assert_eq!(m[1].payload, text.as_bytes());
    assert_eq!(m[1].wire_size, c.len() as u64);
    // The repeat is a few bytes thanks to context takeover.
    assert_eq!(m[2].payload, text.as_bytes());
    assert!(m[2].wire_size < 64, "{}", m[2].wire_size);
}

#[test]
fn message_size_limit_keeps_the_real_size() {
    let limits = Limits {
        ws_max_message_size: 10,
        ..Limits::default()
    };
    let mut dec = WsDecoder::new(&limits, 1, Some(DeflateParams::default()));
    let mut d = Deflater::new();
    let payload = vec![b'x'; 1000];
    let recs = vec![
        (S2C, frame(true, false, 2, None, &payload)),
        (S2C, frame(true, true, 2, None, &d.message(&payload))),
        (S2C, frame(true, true, 2, None, &d.message(b"after"))),
        (S2C, frame(true, false, 9, None, &[b'p'; 100])),
    ];
    let m = decode(&mut dec, &recs);
    for m in &m[..2] {
        assert_eq!((m.payload.len(), m.size, m.truncated), (10, 1000, true));
        assert_eq!(m.decode_error, None);
    }
    // Inflating went on past the kept bytes: the context is intact.
    assert_eq!(m[2].payload, b"after");
    // Control frames keep their 125 bytes at most whatever the limit.
    assert_eq!(m[3].payload.len(), 100);
    let c = dec.take_counters();
    assert_eq!((c.ws_messages_truncated, c.ws_bytes_dropped), (2, 1980));
}

#[test]
fn decompression_bomb_is_capped() {
    let limits = Limits {
        max_decompressed_size: 64 << 20,
        ..Limits::default()
    };
    let mut dec = WsDecoder::new(&limits, 1, Some(DeflateParams::default()));
    let mut d = Deflater::new();
    let bomb = d.message(&vec![0u8; 50 << 20]);
    assert!(bomb.len() < 100_000);
    let mut fresh = Deflater::new();
    let recs = vec![
        (S2C, frame(true, true, 2, None, &bomb)),
        // A message compressed without history still decodes afterwards.
        (
            S2C,
            frame(true, true, 1, None, &fresh.message(b"still here")),
        ),
    ];
    let m = decode(&mut dec, &recs);
    assert_eq!(m[0].decode_error, Some(DecodeError::RatioLimit));
    assert!(m[0].truncated);
    assert!(m[0].size <= 100 * (bomb.len() as u64 + 4));
    assert_eq!(m[1].payload, b"still here");
    assert_eq!(dec.take_counters().decompression_capped, 1);
    // Without a ratio cap the output cap stops it.
    let limits = Limits {
        max_decompressed_size: 1 << 20,
        max_decompression_ratio: 0,
        ..Limits::default()
    };
    let mut dec = WsDecoder::new(&limits, 1, Some(DeflateParams::default()));
    let m = decode(&mut dec, &recs[..1]);
    assert_eq!(m[0].decode_error, Some(DecodeError::OutputLimit));
    assert_eq!(m[0].size, 1 << 20);
}

#[test]
fn gap_resynchronises_on_a_frame_start() {
    let mut dec = ws(false);
    let mut out = Vec::new();
    dec.feed(
        S2C,
        &frame(false, false, 1, None, b"part one")[..6],
        &mut out,
    );
    dec.gap(S2C, 100);
    // Not a frame start: dropped.
    dec.feed(S2C, b"garbage", &mut out);
    dec.feed(S2C, &frame(true, false, 2, None, b"next"), &mut out);
    dec.finish(&mut out);
    let m = messages(&out);
    assert_eq!(m.len(), 2);
    assert!(m[0].data_lost && !m[0].complete);
    assert_eq!(m[0].payload, b"part");
    assert_eq!(
        (m[1].opcode, &m[1].payload[..]),
        (Opcode::Binary, &b"next"[..])
    );
    let c = dec.take_counters();
    assert_eq!(
        (c.gap_bytes, c.dropped_bytes, c.ws_messages_incomplete),
        (100, 7, 1)
    );
}

#[test]
fn bad_header_desynchronises() {
    let mut dec = ws(false);
    let mut out = Vec::new();
    // Reserved opcode 3.
    dec.feed(S2C, &[0x83, 0x00, 0x81, 0x00], &mut out);
    dec.feed(S2C, &frame(true, false, 1, None, b"ok"), &mut out);
    let m = messages(&out);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].payload, b"ok");
    let c = dec.take_counters();
    assert_eq!((c.desyncs, c.dropped_bytes), (1, 4));
}

#[test]
fn protocol_errors_are_tolerated_and_counted() {
    let recs = vec![
        // Unmasked client frame.
        (C2S, frame(true, false, 1, None, b"a")),
        // Masked server frame.
        (S2C, frame(true, false, 1, Some(KEY), b"b")),
        // Continuation with no message.
        (S2C, frame(true, false, 0, None, b"c")),
        // New message while one is open.
        (S2C, frame(false, false, 1, None, b"d")),
        (S2C, frame(true, false, 2, None, b"e")),
    ];
    let mut dec = ws(false);
    let m = decode(&mut dec, &recs);
    assert_eq!(
        summary(&m),
        [
            (C2S, Opcode::Text, "a".into()),
            (S2C, Opcode::Text, "b".into()),
            (S2C, Opcode::Continuation, "c".into()),
            (S2C, Opcode::Text, "d".into()),
            (S2C, Opcode::Binary, "e".into()),
        ]
    );
    assert!(m[2].data_lost);
    assert!(!m[3].complete);
    assert_eq!(dec.take_counters().ws_protocol_errors, 4);
}

#[test]
fn http2_extended_connect() {
    let mut enc_c = Encoder::new(true);
    let mut enc_s = Encoder::new(false);
    let req = enc_c.encode(&[
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "https"),
        (":path", "/chat"),
        (":authority", "server.example.com"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-extensions", "permessage-deflate"),
    ]);
    let resp = enc_s.encode(&[
        (":status", "200"),
        (
            "sec-websocket-extensions",
            "permessage-deflate; server_no_context_takeover",
        ),
    ]);
    let mut dc = Deflater::new();
    let mut client = PREFACE.to_vec();
    client.extend(h2::settings(&[]));
    client.extend(h2::headers(1, &req, false));
    let mut server = h2::settings(&[(0x8, 1)]);
    server.extend(h2::headers(1, &resp, false));
    let hello = frame(true, true, 1, Some(KEY), &dc.message(b"Hello"));
    // One WebSocket frame split over two DATA frames, then two in one.
    let c1 = h2::data(1, &hello[..4], false);
    let c2 = h2::data(1, &hello[4..], false);
    let mut both = frame(true, false, 9, Some(KEY), b"p");
    both.extend(frame(true, true, 1, Some(KEY), &dc.message(b"Hello")));
    let c3 = h2::data(1, &both, false);
    let s1 = h2::data(
        1,
        &frame(
            true,
            true,
            1,
            None,
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        ),
        false,
    );
    let close = frame(true, false, 8, Some(KEY), &[0x03, 0xe8]);
    let c4 = h2::data(1, &close, true);
    let s2 = h2::data(1, &frame(true, false, 8, None, &[0x03, 0xe8]), true);
    let mut dec = ConnectionDecoder::new(&Limits::default(), Some(Protocol::Http2));
    let mut out = Vec::new();
    for (dir, b) in [
        (C2S, client),
        (S2C, server),
        (C2S, c1),
        (C2S, c2),
        (C2S, c3),
        (S2C, s1),
        (C2S, c4),
        (S2C, s2),
    ] {
        dec.feed(dir, &b, &mut out);
    }
    assert!(matches!(out[0], Event::Transaction(_)));
    let Event::Transaction(tx) = &out[0] else {
        unreachable!()
    };
    assert_eq!(tx.method(), Some(&b"CONNECT"[..]));
    assert_eq!(tx.status(), Some(200));
    assert!(tx.is_complete());
    assert!(tx.request.body.data.is_empty() && tx.response.body.data.is_empty());
    let m = messages(&out);
    assert_eq!(
        m.iter()
            .map(|m| (m.stream_id, m.direction, m.opcode, m.payload.clone()))
            .collect::<Vec<_>>(),
        [
            (1, C2S, Opcode::Text, b"Hello".to_vec()),
            (1, C2S, Opcode::Ping, b"p".to_vec()),
            (1, C2S, Opcode::Text, b"Hello".to_vec()),
            (1, S2C, Opcode::Text, b"Hello".to_vec()),
            (1, C2S, Opcode::Close, vec![]),
            (1, S2C, Opcode::Close, vec![]),
        ]
    );
    assert!(m[2].wire_size < 6, "context takeover");
    let n = out.len();
    dec.finish(&mut out);
    assert_eq!(out.len(), n, "stream already closed, nothing left");
    let c = dec.take_counters();
    assert_eq!(
        (c.transactions, c.ws_messages, c.ws_protocol_errors),
        (1, 6, 0)
    );
}

#[test]
fn http2_connect_refused_is_an_ordinary_transaction() {
    let (client, mut server) = h2::ws_connect("404");
    server.extend(h2::data(1, b"not here", true));
    let mut dec = ConnectionDecoder::new(&Limits::default(), Some(Protocol::Http2));
    let mut out = Vec::new();
    dec.feed(C2S, &client, &mut out);
    dec.feed(S2C, &server, &mut out);
    dec.feed(C2S, &h2::rst(1, 0), &mut out);
    assert_eq!(out.len(), 1);
    let Event::Transaction(tx) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(tx.response.body.data, b"not here");
    assert!(messages(&out).is_empty());
}

#[test]
fn never_panics_on_noise() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let limits = Limits {
        ws_max_message_size: 64,
        max_decompressed_size: 4096,
        ..Limits::default()
    };
    for _ in 0..2000 {
        let mut dec = WsDecoder::new(&limits, 1, Some(DeflateParams::default()));
        let mut out = Vec::new();
        for _ in 0..8 {
            let len = (next() % 40) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Bias towards valid-looking headers.
            if let Some(f) = b.first_mut() {
                *f = [0x81, 0xc1, 0x41, 0x00, 0x80, 0x88, 0x89, 0xc2][(next() % 8) as usize];
            }
            let dir = if next() % 2 == 0 { C2S } else { S2C };
            match next() % 10 {
                0 => dec.gap(dir, len as u64),
                // Holes of any size, huge ones included.
                1 => dec.skip(dir, next() >> (next() % 64), &mut out),
                _ => dec.feed(dir, &b, &mut out),
            }
        }
        dec.finish(&mut out);
        for m in messages(&out) {
            assert!(m.payload.len() <= 125);
        }
    }
}

#[test]
fn http2_gap_resynchronises_the_websocket_stream() {
    let (client, server) = h2::ws_connect("200");
    let msg = frame(true, false, 2, None, &[7; 100]);
    let mut dec = ConnectionDecoder::new(&Limits::default(), Some(Protocol::Http2));
    let mut out = Vec::new();
    dec.feed(C2S, &client, &mut out);
    dec.feed(S2C, &server, &mut out);
    // The first half of a WebSocket frame, then the rest is lost.
    dec.feed(S2C, &h2::data(1, &msg[..50], false), &mut out);
    dec.gap(S2C, 59);
    dec.feed(
        S2C,
        &h2::data(1, &frame(true, false, 1, None, b"next"), false),
        &mut out,
    );
    dec.finish(&mut out);
    let m = messages(&out);
    assert_eq!(m.len(), 2);
    assert!(m[0].data_lost && !m[0].complete);
    assert_eq!(
        (m[1].opcode, &m[1].payload[..]),
        (Opcode::Text, &b"next"[..])
    );
}
