//! ConnectionDecoder: protocol selection (ALPN, detection) and h2c upgrades.

mod common;

use common::h2::*;
use weft_proto::{ConnectionDecoder, Direction, Event, Limits, Protocol, Transaction};

use Direction::{ClientToServer as C2S, ServerToClient as S2C};

fn run(dec: &mut ConnectionDecoder, records: &[(Direction, Vec<u8>)]) -> Vec<Event> {
    let mut out = Vec::new();
    for (dir, bytes) in records {
        dec.feed(*dir, bytes, &mut out);
    }
    dec.finish(&mut out);
    out
}

fn txs(events: &[Event]) -> Vec<&Transaction> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Transaction(t) => Some(&**t),
            _ => None,
        })
        .collect()
}

fn h2_records() -> Vec<(Direction, Vec<u8>)> {
    let mut enc_c = Encoder::new(true);
    let mut enc_s = Encoder::new(false);
    let req = enc_c.encode(&[
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "a"),
        (":path", "/x"),
    ]);
    let resp = enc_s.encode(&[(":status", "200")]);
    let mut client = PREFACE.to_vec();
    client.extend(settings(&[]));
    client.extend(headers(1, &req, true));
    let mut server = settings(&[]);
    server.extend(headers(1, &resp, false));
    server.extend(data(1, b"ok", true));
    vec![
        (C2S, client[..8].to_vec()),
        (S2C, server),
        (C2S, client[8..].to_vec()),
    ]
}

#[test]
fn detects_http2_from_a_split_preface() {
    let mut dec = ConnectionDecoder::new(&Limits::default(), None);
    let out = run(&mut dec, &h2_records());
    assert_eq!(dec.protocol(), Some(Protocol::Http2));
    let t = txs(&out);
    assert_eq!(t.len(), 1);
    assert!(t[0].is_complete());
    assert_eq!(t[0].response.body.data, b"ok");
}

#[test]
fn detects_http1_and_honours_alpn() {
    let recs = vec![
        (C2S, b"GE".to_vec()),
        (C2S, b"T / HTTP/1.1\r\nHost: h\r\n\r\n".to_vec()),
        (
            S2C,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        ),
    ];
    let mut dec = ConnectionDecoder::new(&Limits::default(), None);
    let out = run(&mut dec, &recs);
    assert_eq!(dec.protocol(), Some(Protocol::Http1));
    assert!(txs(&out)[0].is_complete());
    let mut dec = ConnectionDecoder::new(&Limits::default(), Some(Protocol::Http1));
    assert_eq!(txs(&run(&mut dec, &recs)).len(), 1);
}

#[test]
fn unknown_protocols_are_counted_not_decoded() {
    let mut dec = ConnectionDecoder::new(&Limits::default(), None);
    let out = run(
        &mut dec,
        &[
            (C2S, b"\x00\x00\x00\x08\x04\xd2\x16\x2f".to_vec()),
            (S2C, b"N".to_vec()),
        ],
    );
    assert!(out.is_empty());
    assert_eq!(dec.protocol(), None);
    assert_eq!(dec.take_counters().undecoded_bytes, 9);
}

#[test]
fn h2c_upgrade_continues_in_http2() {
    let mut enc_c = Encoder::new(true);
    let mut enc_s = Encoder::new(true);
    let upgrade_req = b"GET /first HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n".to_vec();
    let mut client = PREFACE.to_vec();
    client.extend(settings(&[]));
    client.extend(headers(
        3,
        &enc_c.encode(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "h"),
            (":path", "/second"),
        ]),
        true,
    ));
    let mut server =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    server.extend(settings(&[]));
    server.extend(headers(1, &enc_s.encode(&[(":status", "200")]), false));
    server.extend(data(1, b"first", true));
    let mut later = headers(3, &enc_s.encode(&[(":status", "200")]), false);
    later.extend(data(3, b"second", true));
    let mut dec = ConnectionDecoder::new(&Limits::default(), None);
    let out = run(
        &mut dec,
        &[
            (C2S, upgrade_req),
            (S2C, server),
            (C2S, client),
            (S2C, later),
        ],
    );
    assert_eq!(dec.protocol(), Some(Protocol::Http2));
    assert!(
        out.iter()
            .any(|e| matches!(e, Event::Upgrade { protocol, .. } if protocol == b"h2c"))
    );
    let t = txs(&out);
    let summary: Vec<_> = t
        .iter()
        .map(|t| {
            (
                t.protocol,
                t.stream_id,
                t.status(),
                t.response.body.data.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (Protocol::Http1, 1, Some(101), vec![]),
            // The upgraded request's response arrives on HTTP/2 stream 1.
            (Protocol::Http2, 1, Some(200), b"first".to_vec()),
            (Protocol::Http2, 3, Some(200), b"second".to_vec()),
        ]
    );
}

#[test]
fn websocket_upgrade_is_decoded() {
    let mut dec = ConnectionDecoder::new(&Limits::default(), None);
    let out = run(
        &mut dec,
        &[
            (
                C2S,
                b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                    .to_vec(),
            ),
            (
                S2C,
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi"
                    .to_vec(),
            ),
            (C2S, b"\x81\x82abcd\x39\x3b".to_vec()),
        ],
    );
    assert_eq!(txs(&out).len(), 1);
    assert_eq!(dec.protocol(), None);
    assert!(dec.is_websocket());
    let msgs: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            Event::WebSocket(m) => Some((m.direction, m.payload.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(msgs, [(S2C, b"hi".to_vec()), (C2S, b"XY".to_vec())]);
    let c = dec.take_counters();
    // The HTTP/1 decoder's counts survive its replacement by the upgrade.
    assert_eq!(
        (c.undecoded_bytes, c.ws_messages, c.transactions),
        (0, 2, 1)
    );
    assert_eq!(dec.take_counters().transactions, 0);
}

#[test]
fn connect_tunnel_is_counted_as_undecoded() {
    let mut dec = ConnectionDecoder::new(&Limits::default(), None);
    let out = run(
        &mut dec,
        &[
            (
                C2S,
                b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n".to_vec(),
            ),
            (S2C, b"HTTP/1.1 200 OK\r\n\r\n\x16\x03\x01".to_vec()),
            (C2S, b"\x16\x03\x01\x00".to_vec()),
        ],
    );
    assert_eq!(txs(&out).len(), 1);
    assert_eq!(dec.protocol(), None);
    assert!(!dec.is_websocket());
    assert_eq!(dec.take_counters().undecoded_bytes, 3 + 4);
}

#[test]
fn mid_connection_detects_http2_frames() {
    let mut dec = ConnectionDecoder::new_mid_connection(&Limits::default(), None);
    let mut enc = Encoder::new(false);
    let block = enc.encode(&[(":status", "204")]);
    let out = run(
        &mut dec,
        &[
            (S2C, b"\xff\xfe tail of something".to_vec()),
            (S2C, headers(7, &block, true)),
        ],
    );
    assert_eq!(dec.protocol(), Some(Protocol::Http2));
    let t = txs(&out);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].status(), Some(204));
    assert!(!t[0].request.seen);
}

#[test]
fn feed_at_stamps_request_start_and_response_end() {
    use weft_proto::{ConnectionDecoder, Direction, Event, Limits};
    let mut d = ConnectionDecoder::new(&Limits::default(), None);
    let mut out = Vec::new();
    d.feed_at(
        Direction::ClientToServer,
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
        100,
        &mut out,
    );
    d.feed_at(
        Direction::ServerToClient,
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab",
        200,
        &mut out,
    );
    assert!(out.is_empty());
    d.feed_at(Direction::ServerToClient, b"cd", 250, &mut out);
    let Some(Event::Transaction(tx)) = out.first() else {
        panic!("no transaction: {out:?}");
    };
    assert_eq!(tx.request.first_ns, 100);
    assert_eq!(tx.response.first_ns, 200);
    assert_eq!(tx.response.last_ns, 250);
    assert_eq!(tx.duration_ns(), Some(150));
}

/// Every live connection holds one: with 10,000 of them each 100 bytes are
/// 1 MB (benches/memory.sh). Was 448 bytes with a whole `Counters` inline.
#[test]
fn connection_decoder_stays_small() {
    assert!(std::mem::size_of::<ConnectionDecoder>() <= 168);
}
