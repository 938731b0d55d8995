//! HTTP/2 connection decoder: request/response pairing per stream, bodies,
//! trailers, interim responses, push, resets, GOAWAY, limits, joins, gaps.

mod common;

use common::h2::*;
use weft_proto::http2::Http2Decoder;
use weft_proto::{Direction, End, Event, Limits, Transaction};

use Direction::{ClientToServer as C2S, ServerToClient as S2C};

/// Builds the two byte streams of a connection, as a list of records.
struct Conn {
    client: Encoder,
    server: Encoder,
    records: Vec<(Direction, Vec<u8>)>,
}

impl Conn {
    fn new() -> Self {
        let mut c = Conn {
            client: Encoder::new(true),
            server: Encoder::new(true),
            records: Vec::new(),
        };
        let mut first = PREFACE.to_vec();
        first.extend(settings(&[(3, 100), (4, 65535)]));
        c.records.push((C2S, first));
        c.records.push((S2C, settings(&[(3, 250)])));
        c.records.push((C2S, frame(SETTINGS, ACK, 0, &[])));
        c.records.push((S2C, frame(SETTINGS, ACK, 0, &[])));
        c
    }

    fn send(&mut self, dir: Direction, bytes: Vec<u8>) {
        self.records.push((dir, bytes));
    }

    fn request(&mut self, stream: u32, h: &[(&str, &str)], end_stream: bool) {
        let block = self.client.encode(h);
        self.send(C2S, headers(stream, &block, end_stream));
    }

    fn response(&mut self, stream: u32, h: &[(&str, &str)], end_stream: bool) {
        let block = self.server.encode(h);
        self.send(S2C, headers(stream, &block, end_stream));
    }

    fn get(&mut self, stream: u32, path: &str) {
        self.request(
            stream,
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":authority", "example.com"),
                (":path", path),
                ("user-agent", "weft-test/1.0"),
                ("accept", "*/*"),
            ],
            true,
        );
    }

    fn ok(&mut self, stream: u32, body: &[u8]) {
        self.response(
            stream,
            &[
                (":status", "200"),
                ("content-type", "text/plain"),
                ("server", "test"),
            ],
            body.is_empty(),
        );
        if !body.is_empty() {
            self.send(S2C, data(stream, body, true));
        }
    }
}

fn feed_all(dec: &mut Http2Decoder, records: &[(Direction, Vec<u8>)]) -> Vec<Transaction> {
    let mut out = Vec::new();
    for (dir, bytes) in records {
        dec.feed(*dir, bytes, &mut out);
    }
    txs(out)
}

fn txs(events: Vec<Event>) -> Vec<Transaction> {
    events
        .into_iter()
        .map(|e| match e {
            Event::Transaction(t) => *t,
            #[allow(unreachable_patterns)]
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn decoder() -> Http2Decoder {
    Http2Decoder::new(&Limits::default())
}

fn s(b: Option<&[u8]>) -> &str {
    std::str::from_utf8(b.expect("present")).expect("utf8")
}

#[test]
fn get_request_and_response() {
    let mut c = Conn::new();
    c.get(1, "/index.html");
    c.ok(1, b"hello world");
    let mut dec = decoder();
    let t = feed_all(&mut dec, &c.records);
    assert_eq!(t.len(), 1);
    let t = &t[0];
    assert_eq!(t.stream_id, 1);
    assert_eq!(s(t.method()), "GET");
    assert_eq!(s(t.scheme()), "https");
    assert_eq!(s(t.authority()), "example.com");
    assert_eq!(s(t.path()), "/index.html");
    assert_eq!(t.status(), Some(200));
    assert_eq!(s(t.request.headers.get(b"user-agent")), "weft-test/1.0");
    assert_eq!(t.request.headers.regular().count(), 2);
    assert_eq!(s(t.response.headers.get(b"content-type")), "text/plain");
    assert_eq!(t.response.body.data, b"hello world");
    assert_eq!(t.response.body.size, 11);
    assert!(t.is_complete());
    assert_eq!(t.end, End::Complete);
    assert_eq!(dec.open_streams(), 0);
    assert_eq!(dec.counters().transactions, 1);
    assert_eq!(dec.counters().transactions_incomplete, 0);
}

#[test]
fn post_body_is_capped_with_real_size() {
    let mut c = Conn::new();
    c.request(
        1,
        &[
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "a"),
            (":path", "/up"),
        ],
        false,
    );
    c.send(C2S, data(1, b"0123456789", false));
    c.send(C2S, data(1, b"abcdefghij", false));
    c.send(C2S, data(1, b"ABCDE", true));
    c.ok(1, b"");
    let limits = Limits {
        max_body_size: 12,
        ..Limits::default()
    };
    let mut dec = Http2Decoder::new(&limits);
    let t = feed_all(&mut dec, &c.records);
    let body = &t[0].request.body;
    assert_eq!(body.data, b"0123456789ab");
    assert_eq!(body.size, 25);
    assert!(body.truncated);
    assert_eq!(dec.counters().bodies_truncated, 1);
    assert_eq!(dec.counters().body_bytes_dropped, 13);
}

#[test]
fn grpc_style_trailers() {
    let mut c = Conn::new();
    c.request(
        1,
        &[
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "svc"),
            (":path", "/pkg.Svc/Call"),
            ("content-type", "application/grpc"),
        ],
        false,
    );
    c.send(C2S, data(1, b"\0\0\0\0\x02hi", true));
    c.response(
        1,
        &[(":status", "200"), ("content-type", "application/grpc")],
        false,
    );
    c.send(S2C, data(1, b"\0\0\0\0\x02yo", false));
    c.response(1, &[("grpc-status", "0"), ("grpc-message", "OK")], true);
    let t = feed_all(&mut decoder(), &c.records);
    assert_eq!(t.len(), 1);
    assert_eq!(s(t[0].response.trailers.get(b"grpc-status")), "0");
    assert_eq!(t[0].response.trailers.len(), 2);
    assert_eq!(t[0].response.body.data, b"\0\0\0\0\x02yo");
    assert!(t[0].is_complete());
}

#[test]
fn interim_responses_precede_the_final_one() {
    let mut c = Conn::new();
    c.request(
        1,
        &[
            (":method", "PUT"),
            (":scheme", "https"),
            (":authority", "a"),
            (":path", "/"),
            ("expect", "100-continue"),
        ],
        false,
    );
    c.response(1, &[(":status", "100")], false);
    c.send(C2S, data(1, b"payload", true));
    c.response(
        1,
        &[(":status", "103"), ("link", "</style.css>; rel=preload")],
        false,
    );
    c.ok(1, b"done");
    let t = feed_all(&mut decoder(), &c.records);
    assert_eq!(t[0].interim.len(), 2);
    assert_eq!(t[0].status(), Some(200));
    assert_eq!(t[0].response.body.data, b"done");
    assert_eq!(t[0].request.body.data, b"payload");
}

#[test]
fn server_push_creates_a_promised_transaction() {
    let mut c = Conn::new();
    c.get(1, "/");
    let promised = c.server.encode(&[
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "example.com"),
        (":path", "/style.css"),
    ]);
    c.send(S2C, push_promise(1, 2, &promised));
    c.ok(1, b"<html>");
    c.response(
        2,
        &[(":status", "200"), ("content-type", "text/css")],
        false,
    );
    c.send(S2C, data(2, b"body{}", true));
    let t = feed_all(&mut decoder(), &c.records);
    assert_eq!(t.len(), 2);
    assert_eq!((t[0].stream_id, t[0].promised_by), (1, None));
    assert_eq!((t[1].stream_id, t[1].promised_by), (2, Some(1)));
    assert_eq!(s(t[1].path()), "/style.css");
    assert_eq!(t[1].response.body.data, b"body{}");
    assert!(t[1].is_complete());
}

#[test]
fn rst_stream_ends_a_transaction() {
    let mut c = Conn::new();
    c.get(1, "/slow");
    c.response(1, &[(":status", "200")], false);
    c.send(S2C, data(1, b"part", false));
    c.send(C2S, rst(1, 8));
    c.send(C2S, window_update(1, 10)); // late frame for a closed stream: ignored
    let mut dec = decoder();
    let t = feed_all(&mut dec, &c.records);
    assert_eq!(t.len(), 1);
    assert_eq!(
        t[0].end,
        End::Reset {
            by: C2S,
            error_code: 8
        }
    );
    assert_eq!(t[0].response.body.data, b"part");
    assert!(!t[0].is_complete());
    assert_eq!(dec.counters().transactions_incomplete, 1);
}

#[test]
fn goaway_refuses_later_streams() {
    let mut c = Conn::new();
    c.get(1, "/a");
    c.get(3, "/b");
    c.get(5, "/c");
    c.send(S2C, goaway(1, 0));
    c.ok(1, b"a");
    let t = feed_all(&mut decoder(), &c.records);
    let ends: Vec<(u32, End)> = t.iter().map(|t| (t.stream_id, t.end)).collect();
    assert_eq!(
        ends,
        vec![
            (3, End::GoAway { error_code: 0 }),
            (5, End::GoAway { error_code: 0 }),
            (1, End::Complete)
        ]
    );
}

#[test]
fn ten_thousand_sequential_streams_do_not_grow_memory() {
    let mut c = Conn::new();
    let mut dec = decoder();
    let mut out = Vec::new();
    for (dir, bytes) in c.records.drain(..) {
        dec.feed(dir, &bytes, &mut out);
    }
    let mut footprint_after_warmup = 0;
    let mut emitted = 0usize;
    for i in 0..10_000u32 {
        let id = 2 * i + 1;
        // Vary paths so the dynamic tables churn.
        c.get(id, &format!("/item/{}", i % 300));
        c.ok(id, format!("body {i}").as_bytes());
        for (dir, bytes) in c.records.drain(..) {
            dec.feed(dir, &bytes, &mut out);
        }
        emitted += out.len();
        for e in out.drain(..) {
            let Event::Transaction(t) = e else {
                unreachable!()
            };
            assert!(t.is_complete());
            assert_eq!(t.stream_id, id);
        }
        assert_eq!(dec.open_streams(), 0);
        if i == 500 {
            footprint_after_warmup = dec.memory_footprint();
        }
        if i > 500 {
            assert!(
                dec.memory_footprint() <= footprint_after_warmup + 4096,
                "memory grew at stream {id}"
            );
        }
    }
    assert_eq!(emitted, 10_000);
    assert!(dec.hpack(C2S).table_size() <= 4096);
    assert_eq!(dec.counters().transactions, 10_000);
}

#[test]
fn stream_limit_evicts_the_oldest() {
    let mut c = Conn::new();
    c.get(1, "/1");
    c.get(3, "/3");
    c.get(5, "/5");
    let limits = Limits {
        h2_max_streams: 2,
        ..Limits::default()
    };
    let mut dec = Http2Decoder::new(&limits);
    let t = feed_all(&mut dec, &c.records);
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].stream_id, t[0].end), (1, End::Evicted));
    assert_eq!(dec.counters().streams_evicted, 1);
    let mut out = Vec::new();
    dec.finish(&mut out);
    let t = txs(out);
    assert_eq!(
        t.iter().map(|t| (t.stream_id, t.end)).collect::<Vec<_>>(),
        vec![(3, End::ConnectionClosed), (5, End::ConnectionClosed)]
    );
}

/// A connection with `n` request/response pairs that reuse header fields,
/// so later header blocks reference dynamic table entries.
fn busy_connection(n: u32) -> Conn {
    let mut c = Conn::new();
    for i in 0..n {
        let id = 2 * i + 1;
        c.request(
            id,
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":authority", "api.example.com"),
                (":path", &format!("/v1/items/{}", i % 4)),
                ("user-agent", "weft-test/1.0"),
                ("x-request-id", &format!("req-{i}")),
            ],
            true,
        );
        c.response(
            id,
            &[
                (":status", "200"),
                ("content-type", "application/json"),
                ("server", "envoy"),
            ],
            false,
        );
        c.send(S2C, data(id, format!("{{\"i\":{i}}}").as_bytes(), true));
    }
    c
}

/// Feeds `records[start..]` to a joined decoder and checks every transaction
/// against the from-the-start decode: fields may be missing (flagged), never
/// wrong. Returns the joined transactions.
fn join_at(c: &Conn, full: &[Transaction], stream: u8) -> (Http2Decoder, Vec<Transaction>) {
    let start = c
        .records
        .iter()
        .position(|(d, b)| *d == C2S && b.len() > 9 && b[3] == HEADERS && b[8] == stream)
        .expect("request record");
    let mut dec = Http2Decoder::new_mid_connection(&Limits::default());
    let joined = feed_all(&mut dec, &c.records[start..]);
    for t in &joined {
        let reference = full
            .iter()
            .find(|f| f.stream_id == t.stream_id)
            .expect("same stream");
        for (got, want) in [
            (&t.request, &reference.request),
            (&t.response, &reference.response),
        ] {
            if got.headers_incomplete {
                let want_fields: Vec<_> = want.headers.iter().collect();
                assert!(
                    got.headers.iter().all(|f| want_fields.contains(&f)),
                    "wrong field"
                );
            } else {
                assert_eq!(got.headers, want.headers, "stream {}", t.stream_id);
            }
            assert_eq!(got.body, want.body);
        }
    }
    (dec, joined)
}

#[test]
fn joining_mid_connection_never_yields_wrong_headers() {
    let c = busy_connection(150);
    let full = feed_all(&mut decoder(), &c.records);
    assert_eq!(full.len(), 150);
    let (dec, joined) = join_at(&c, &full, 19);
    assert_eq!(joined.len(), 141);
    // Static-table fields decode; entries inserted before the join that are
    // only ever re-referenced (content-type, server, the four paths) or whose
    // name chains back to such an entry (x-request-id) stay unknown.
    assert!(
        joined
            .iter()
            .all(|t| t.status() == Some(200) && t.method() == Some(b"GET"))
    );
    assert!(joined.iter().all(|t| t.request.headers_incomplete));
    assert!(dec.counters().hpack_unknown_references > 0);
    assert_eq!(dec.counters().hpack_errors, 0);
}

#[test]
fn joined_decoder_recovers_when_the_encoder_resets_its_table() {
    let mut c = busy_connection(30);
    // Both encoders flush their tables (size update to 0, then back).
    c.client.set_max_size(0);
    c.server.set_max_size(0);
    c.get(61, "/after-flush");
    c.ok(61, b"1");
    c.client.set_max_size(4096);
    c.server.set_max_size(4096);
    c.get(63, "/after-flush");
    c.ok(63, b"2");
    let full = feed_all(&mut decoder(), &c.records);
    let (dec, joined) = join_at(&c, &full, 19);
    assert!(joined[0].request.headers_incomplete);
    let tail: Vec<_> = joined.iter().filter(|t| t.stream_id >= 61).collect();
    assert_eq!(tail.len(), 2);
    assert!(tail.iter().all(|t| t.is_complete()), "{tail:?}");
    assert!(dec.hpack(C2S).is_synced() && dec.hpack(S2C).is_synced());
}

#[test]
fn gap_in_server_stream_flags_the_transaction_and_recovers() {
    let c = busy_connection(6);
    let mut dec = decoder();
    let mut out = Vec::new();
    let mut lost_one = false;
    for (dir, bytes) in &c.records {
        // Lose the response DATA of stream 5.
        if *dir == S2C && bytes[3] == DATA && bytes[8] == 5 && !lost_one {
            dec.gap(S2C, bytes.len() as u64);
            lost_one = true;
            continue;
        }
        dec.feed(*dir, bytes, &mut out);
    }
    dec.finish(&mut out);
    let t = txs(out);
    assert_eq!(t.len(), 6);
    let five = t.iter().find(|t| t.stream_id == 5).expect("stream 5");
    assert!(five.response.data_lost);
    assert_eq!(five.end, End::ConnectionClosed);
    assert_eq!(dec.counters().gap_bytes, 16);
    // Later streams decode, headers possibly incomplete until the table refills.
    let eleven = t.iter().find(|t| t.stream_id == 11).expect("stream 11");
    assert_eq!(eleven.response.body.data, b"{\"i\":5}");
    assert_eq!(eleven.end, End::Complete);
}

#[test]
fn arbitrary_record_splits_give_the_same_transactions() {
    let c = busy_connection(8);
    let want = feed_all(&mut decoder(), &c.records);
    // Concatenate each direction and re-split at fixed sizes, interleaving
    // directions record by record (requests stay ahead of their responses).
    for size in [1usize, 2, 7, 100, 1000] {
        let mut dec = decoder();
        let mut out = Vec::new();
        for (dir, bytes) in &c.records {
            for chunk in bytes.chunks(size) {
                dec.feed(*dir, chunk, &mut out);
            }
        }
        assert_eq!(txs(out), want, "chunk size {size}");
    }
}

#[test]
fn response_captured_before_request_is_paired() {
    let mut c = Conn::new();
    c.get(1, "/");
    c.ok(1, b"x");
    // Swap the request and the response records.
    let n = c.records.len();
    let req = c.records.remove(n - 3);
    c.records.push(req);
    let t = feed_all(&mut decoder(), &c.records);
    assert_eq!(t.len(), 1);
    assert!(t[0].is_complete(), "{:?}", t[0]);
}

#[test]
fn table_size_settings_and_updates() {
    let mut c = Conn::new();
    // The client allows a bigger table; the server encoder uses it.
    c.send(C2S, settings(&[(1, 8192)]));
    c.server.set_max_size(8192);
    c.get(1, "/");
    c.ok(1, b"");
    c.get(3, "/");
    c.ok(3, b"");
    let mut dec = decoder();
    let t = feed_all(&mut dec, &c.records);
    assert_eq!(t.len(), 2);
    assert!(t.iter().all(Transaction::is_complete));
    assert_eq!(dec.hpack(S2C).max_table_size(), 8192);
    assert_eq!(dec.counters().hpack_errors, 0);
}

#[test]
fn hpack_error_is_counted_and_flags_the_message() {
    let mut c = Conn::new();
    c.send(C2S, headers(1, &[0x80], true)); // index 0
    c.ok(1, b"x");
    let mut dec = decoder();
    let t = feed_all(&mut dec, &c.records);
    assert_eq!(t.len(), 1);
    assert!(t[0].request.headers_incomplete);
    assert_eq!(dec.counters().hpack_errors, 1);
}

#[test]
fn never_panics_on_garbage() {
    let c = busy_connection(3);
    let mut x: u64 = 0xdead_beef_cafe_f00d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..300 {
        let mut dec = if next() % 2 == 0 {
            decoder()
        } else {
            Http2Decoder::new_mid_connection(&Limits::default())
        };
        let mut out = Vec::new();
        for (dir, bytes) in &c.records {
            let mut b = bytes.clone();
            if next() % 3 == 0 && !b.is_empty() {
                let i = next() as usize % b.len();
                b[i] = next() as u8;
            }
            if next() % 7 == 0 {
                b.truncate(next() as usize % (b.len() + 1));
            }
            if next() % 5 == 0 {
                // A hole inside the record: any size, huge ones included.
                let cut = next() as usize % (b.len() + 1);
                dec.feed(*dir, &b[..cut], &mut out);
                dec.skip(*dir, next() >> (next() % 64), &mut out);
                dec.feed(*dir, &b[cut..], &mut out);
            } else {
                dec.feed(*dir, &b, &mut out);
            }
        }
        dec.finish(&mut out);
    }
}

#[test]
fn idle_streams_are_reclaimed_by_the_callers_clock() {
    const S: u64 = 1_000_000_000;
    let mut c = Conn::new();
    let setup = c.records.len();
    c.get(1, "/never-answered");
    c.get(3, "/slow");
    let limits = Limits {
        h2_stream_idle_secs: 300,
        ..Limits::default()
    };
    let mut dec = weft_proto::ConnectionDecoder::new(&limits, None);
    let mut out = Vec::new();
    for (i, (dir, b)) in c.records.iter().enumerate() {
        dec.feed_at(*dir, b, S + i as u64, &mut out);
    }
    assert_eq!(c.records.len(), setup + 2);
    // Stream 3 gets a frame at 200 s (its response headers); stream 1 none.
    let mut later = Conn::new();
    later.server = c.server;
    later.response(3, &[(":status", "200")], false);
    let (dir, b) = later.records.last().expect("response").clone();
    dec.feed_at(dir, &b, 200 * S, &mut out);
    assert!(out.is_empty(), "{out:?}");
    // At 350 s stream 1 has been idle for 349 s: emitted, incomplete.
    dec.feed_at(C2S, &frame(PING, 0, 0, &[0; 8]), 350 * S, &mut out);
    let t = txs(std::mem::take(&mut out));
    assert_eq!(t.len(), 1, "{out:?}");
    assert_eq!(t[0].stream_id, 1);
    assert_eq!(t[0].end, End::Evicted);
    assert_eq!(t[0].path(), Some(&b"/never-answered"[..]));
    // Stream 3 (150 s idle) is still open and completes normally.
    out.clear();
    dec.feed_at(S2C, &data(3, b"done", true), 360 * S, &mut out);
    let t = txs(std::mem::take(&mut out));
    assert_eq!(t.len(), 1, "{out:?}");
    assert_eq!((t[0].stream_id, t[0].end), (3, End::Complete));
    assert_eq!(t[0].response.body.data, b"done");
    assert_eq!(dec.take_counters().streams_evicted, 1);
}

/// Streams lost whole at the end of a connection have no later stream id to
/// reveal them: the capture's own count of how far the streams went (the
/// kernel's frame walk, on the connection's end record) does.
#[test]
fn streams_lost_whole_at_the_end_are_counted_up_to_the_last_stream() {
    let c = busy_connection(8); // client streams 1, 3, ..., 15
    // Every record of streams 13 and 15 (both directions) is lost.
    let tail = |b: &[u8]| matches!(b.get(8), Some(13 | 15)) && b.len() >= 9 && b[5..8] == [0, 0, 0];
    let kept: Vec<_> = c
        .records
        .iter()
        .filter(|(_, b)| !tail(b))
        .cloned()
        .collect();
    let run = |last: Option<u32>| {
        let mut dec = decoder();
        let seen = feed_all(&mut dec, &kept).len();
        if let Some(last) = last {
            dec.streams_until(last);
        }
        let mut out = Vec::new();
        dec.finish(&mut out);
        (
            (seen + txs(out).len()) as u64,
            dec.counters().streams_unseen,
        )
    };
    // Without it the two are silently missing.
    assert_eq!(run(None), (6, 0));
    assert_eq!(run(Some(15)), (6, 2));
    // Ids the decoder saw already, server (even) ids and the reserved bit
    // add nothing.
    assert_eq!(run(Some(11)), (6, 0));
    assert_eq!(run(Some(16)), (6, 0));
    assert_eq!(run(Some(0x8000_000b)), (6, 0));

    // A block that still comes after it is not lost.
    let mut dec = decoder();
    let early: Vec<_> = c
        .records
        .iter()
        .filter(|(_, b)| b.get(8) != Some(&15) || b.len() < 9)
        .cloned()
        .collect();
    let (head, rest): (Vec<_>, Vec<_>) = early
        .into_iter()
        .partition(|(_, b)| b.get(8) != Some(&13) || b.len() < 9);
    let mut seen = feed_all(&mut dec, &head).len();
    dec.streams_until(15);
    seen += feed_all(&mut dec, &rest).len();
    let mut out = Vec::new();
    dec.finish(&mut out);
    seen += txs(out).len();
    assert_eq!((seen as u64, dec.counters().streams_unseen), (7, 1));
}

#[test]
fn streams_lost_whole_in_a_gap_are_counted() {
    let c = busy_connection(8);
    let mut dec = decoder();
    let mut out = Vec::new();
    // Every record of streams 5, 7 and 9 (both directions) is lost, as when
    // the ring buffer was full for a while: one gap per direction.
    let lost =
        |b: &[u8]| matches!(b.get(8), Some(5 | 7 | 9)) && b.len() >= 9 && b[5..8] == [0, 0, 0];
    let mut told = [false; 2];
    for (dir, bytes) in &c.records {
        if lost(bytes) {
            let d = if *dir == C2S { 0 } else { 1 };
            if !told[d] {
                dec.gap(*dir, bytes.len() as u64);
                told[d] = true;
            }
            continue;
        }
        dec.feed(*dir, bytes, &mut out);
    }
    dec.finish(&mut out);
    let reported = txs(out).len() as u64;
    assert_eq!(dec.counters().streams_unseen, 3);
    assert_eq!(reported + dec.counters().streams_unseen, 8);

    // A whole call lost on frame boundaries leaves no seam in the bytes: the
    // skipped id alone says a request was missed.
    let mut seamless = Conn::new();
    for id in [1u32, 3, 5] {
        seamless.request(
            id,
            &[(":method", "GET"), (":scheme", "https"), (":path", "/")],
            true,
        );
        seamless.response(id, &[(":status", "204")], true);
    }
    let kept: Vec<_> = seamless
        .records
        .iter()
        .filter(|(_, b)| b.get(8) != Some(&3))
        .cloned()
        .collect();
    let mut dec = decoder();
    assert_eq!(feed_all(&mut dec, &kept).len(), 2);
    // Counted once the stream can no longer show up (here: at the end).
    assert_eq!(dec.counters().streams_unseen, 0);
    dec.finish(&mut Vec::new());
    assert_eq!(dec.counters().streams_unseen, 1);

    // Only the request of stream 3 lost, its response trailing stream 5's
    // request (multiplexing): reported damaged, not counted as unseen.
    let mut trailing = Conn::new();
    for id in [1u32, 3, 5] {
        trailing.request(
            id,
            &[(":method", "GET"), (":scheme", "https"), (":path", "/")],
            true,
        );
    }
    for id in [1u32, 3, 5] {
        trailing.response(id, &[(":status", "204")], true);
    }
    let kept: Vec<_> = trailing
        .records
        .iter()
        .filter(|(dir, b)| !(*dir == C2S && b.get(8) == Some(&3)))
        .cloned()
        .collect();
    let mut dec = decoder();
    let mut out = Vec::new();
    for (dir, bytes) in &kept {
        dec.feed(*dir, bytes, &mut out);
    }
    dec.finish(&mut out);
    assert_eq!(txs(out).len(), 3);
    assert_eq!(dec.counters().streams_unseen, 0);
    // Joining mid-connection (first block seen is stream 41) counts nothing.
    let mut dec = decoder();
    let late: Vec<_> = c.records.iter().skip(6).cloned().collect();
    feed_all(&mut dec, &late);
    assert_eq!(dec.counters().streams_unseen, 0);
}

/// The records of `c` (one frame each, or the preface) whose stream
/// `keep` accepts (`None`: the preface, not a frame).
fn records_where(c: &Conn, keep: impl Fn(Option<u8>) -> bool) -> Vec<(Direction, Vec<u8>)> {
    c.records
        .iter()
        .filter(|(_, b)| {
            let stream = (b.len() >= 9 && b[5..8] == [0, 0, 0]).then(|| b[8]);
            keep(stream)
        })
        .cloned()
        .collect()
}

/// Feeds `records`, ends the connection: (transactions, streams_unseen).
fn to_the_end(dec: &mut Http2Decoder, records: &[(Direction, Vec<u8>)]) -> (usize, u64) {
    let mut t = feed_all(dec, records);
    let mut out = Vec::new();
    dec.finish(&mut out);
    t.extend(txs(out));
    (t.len(), dec.counters().streams_unseen)
}

/// A connection seen from its preface: client streams start at 1, so
/// streams lost whole before the first header block weft saw are counted
/// too; joined midway, nothing below the first block is.
#[test]
fn streams_lost_before_the_first_block_seen_are_counted_from_the_start() {
    // Every frame of streams 1 and 3 lost (both directions); the preface
    // and SETTINGS seen.
    let kept = records_where(&busy_connection(6), |s| !matches!(s, Some(1 | 3)));
    assert_eq!(to_the_end(&mut decoder(), &kept), (4, 2));
}

/// Joined after the connection's first bytes, but known to have started
/// while the capture ran (its TLS handshake was seen): ids below the first
/// header block seen are counted; without that knowledge they are not.
#[test]
fn a_connection_known_to_be_new_counts_streams_from_one() {
    // The start missed (preface and SETTINGS), and every frame of streams
    // 1 and 3.
    let kept = records_where(&busy_connection(6), |s| {
        s.is_some() && !matches!(s, Some(0 | 1 | 3))
    });
    for known_new in [false, true] {
        let mut dec = Http2Decoder::new_mid_connection(&Limits::default());
        if known_new {
            dec.set_streams_from_start();
        }
        let unseen = if known_new { 2 } else { 0 };
        assert_eq!(to_the_end(&mut dec, &kept), (4, unseen));
    }
}

/// A peer jumping to the last stream id costs no loop over the ids skipped
/// (a billion of them): they are counted at once.
#[test]
fn a_jump_to_the_last_stream_id_is_counted_at_once() {
    let mut c = Conn::new();
    c.get(1, "/");
    c.get(0x7fff_ffff, "/");
    let mut dec = decoder();
    let start = std::time::Instant::now();
    feed_all(&mut dec, &c.records);
    dec.finish(&mut Vec::new());
    assert!(start.elapsed() < std::time::Duration::from_secs(1));
    // Ids 3, 5, ..., 0x7fff_fffd.
    assert_eq!(dec.counters().streams_unseen, (0x7fff_ffff - 3) / 2);
}
