//! HTTP/1.x connection decoder: framing, pipelining, interim responses,
//! upgrades, limits, resynchronisation.

use weft_proto::http1::Http1Decoder;
use weft_proto::{Direction, End, Event, Limits, Transaction};

use Direction::{ClientToServer as C2S, ServerToClient as S2C};

fn run(dec: &mut Http1Decoder, records: &[(Direction, &[u8])]) -> Vec<Event> {
    let mut out = Vec::new();
    for (dir, bytes) in records {
        dec.feed(*dir, bytes, &mut out);
    }
    out
}

fn txs(events: Vec<Event>) -> Vec<Transaction> {
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Transaction(t) => Some(*t),
            _ => None,
        })
        .collect()
}

fn decode(records: &[(Direction, &[u8])]) -> Vec<Transaction> {
    let mut dec = Http1Decoder::new(&Limits::default());
    let mut out = run(&mut dec, records);
    dec.finish(&mut out);
    txs(out)
}

fn s(b: Option<&[u8]>) -> &str {
    std::str::from_utf8(b.expect("present")).expect("utf8")
}

const GET: &[u8] = b"GET /index.html?q=1 HTTP/1.1\r\nHost: Example.com\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";

#[test]
fn get_with_content_length() {
    let t = decode(&[(C2S, GET), (S2C, OK)]);
    assert_eq!(t.len(), 1);
    let t = &t[0];
    assert_eq!(s(t.method()), "GET");
    assert_eq!(s(t.path()), "/index.html?q=1");
    assert_eq!(s(t.authority()), "Example.com");
    assert_eq!(t.status(), Some(200));
    assert_eq!(s(t.request.headers.get(b"user-agent")), "curl/8");
    assert!(
        t.request
            .headers
            .iter()
            .all(|f| f.name.iter().all(|b| !b.is_ascii_uppercase()))
    );
    assert_eq!(t.response.body.data, b"hello");
    assert_eq!(t.stream_id, 1);
    assert!(t.is_complete());
}

#[test]
fn pipelined_requests_pair_in_order() {
    let reqs = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nPOST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
    let resps = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nAHTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nBHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nC";
    let t = decode(&[(C2S, reqs), (S2C, resps)]);
    let got: Vec<_> = t
        .iter()
        .map(|t| {
            (
                t.stream_id,
                s(t.path()).to_string(),
                t.status(),
                t.response.body.data.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "/a".into(), Some(200), b"A".to_vec()),
            (2, "/b".into(), Some(404), b"B".to_vec()),
            (3, "/c".into(), Some(201), b"C".to_vec()),
        ]
    );
    assert_eq!(t[2].request.body.data, b"abc");
}

const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nTrailer: X-Checksum\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n";

#[test]
fn chunked_body_with_trailers_any_split() {
    let want = decode(&[(C2S, GET), (S2C, CHUNKED)]);
    assert_eq!(want[0].response.body.data, b"hello world");
    assert_eq!(want[0].response.body.size, 11);
    assert_eq!(s(want[0].response.trailers.get(b"x-checksum")), "abc");
    assert!(want[0].is_complete());
    for size in 1..CHUNKED.len() {
        let mut dec = Http1Decoder::new(&Limits::default());
        let mut out = Vec::new();
        dec.feed(C2S, GET, &mut out);
        for c in CHUNKED.chunks(size) {
            dec.feed(S2C, c, &mut out);
        }
        assert_eq!(txs(out), want, "chunks of {size}");
    }
}

#[test]
fn chunked_request_body() {
    let req =
        b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let t = decode(&[(C2S, req), (S2C, b"HTTP/1.1 204 No Content\r\n\r\n")]);
    assert_eq!(t[0].request.body.data, b"abc");
    assert!(t[0].request.trailers.is_empty());
    assert!(t[0].is_complete());
}

#[test]
fn close_delimited_response_completes_on_finish() {
    let t = decode(&[
        (C2S, b"GET / HTTP/1.0\r\n\r\n"),
        (S2C, b"HTTP/1.0 200 OK\r\n\r\nall of it"),
        (S2C, b" and more"),
    ]);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].response.body.data, b"all of it and more");
    assert_eq!(t[0].end, End::Complete);
}

#[test]
fn bodiless_responses() {
    let reqs = b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /n HTTP/1.1\r\nHost: x\r\n\r\nGET /m HTTP/1.1\r\nHost: x\r\n\r\nGET /o HTTP/1.1\r\nHost: x\r\n\r\n";
    let resps = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let t = decode(&[(C2S, reqs), (S2C, resps)]);
    assert_eq!(
        t.iter().map(|t| t.status()).collect::<Vec<_>>(),
        vec![Some(200), Some(304), Some(204), Some(200)]
    );
    assert!(
        t[..3]
            .iter()
            .all(|t| t.response.body.data.is_empty() && t.is_complete())
    );
    assert_eq!(t[3].response.body.data, b"ok");
}

#[test]
fn interim_100_continue() {
    let t = decode(&[
        (
            C2S,
            b"PUT /f HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
        ),
        (S2C, b"HTTP/1.1 100 Continue\r\n\r\n"),
        (C2S, b"data"),
        (S2C, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
    ]);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].interim.len(), 1);
    assert_eq!(t[0].status(), Some(201));
    assert_eq!(t[0].request.body.data, b"data");
}

#[test]
fn websocket_upgrade_hands_over_the_rest() {
    let req = b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let mut dec = Http1Decoder::new(&Limits::default());
    let out = run(
        &mut dec,
        &[
            (C2S, req),
            (C2S, b"\x81\x85masked"),
            (S2C, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi"),
            (S2C, b"\x81\x02yo"),
        ],
    );
    assert_eq!(out.len(), 2);
    let Event::Transaction(t) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(t.status(), Some(101));
    assert!(t.is_complete());
    assert_eq!(
        out[1],
        Event::Upgrade {
            stream_id: 1,
            protocol: b"websocket".to_vec(),
            client_data: b"\x81\x85masked".to_vec(),
            server_data: b"\x81\x02hi".to_vec(),
        }
    );
    assert!(dec.is_upgraded());
    assert_eq!(dec.counters().dropped_bytes, 4);
}

#[test]
fn declined_upgrade_releases_held_requests() {
    let req = b"GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb";
    let t = decode(&[(C2S, req), (S2C, resp)]);
    assert_eq!(t.len(), 2);
    assert_eq!(s(t[1].path()), "/b");
    assert_eq!(t[1].response.body.data, b"b");
}

#[test]
fn connect_tunnel() {
    let mut dec = Http1Decoder::new(&Limits::default());
    let out = run(
        &mut dec,
        &[
            (C2S, b"CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n"),
            (S2C, b"HTTP/1.1 200 Connection established\r\n\r\n"),
        ],
    );
    assert!(matches!(&out[1], Event::Upgrade { protocol, .. } if protocol.is_empty()));
}

#[test]
fn body_limit_keeps_real_size() {
    let limits = Limits {
        max_body_size: 4,
        ..Limits::default()
    };
    let mut dec = Http1Decoder::new(&limits);
    let mut out = run(&mut dec, &[(C2S, GET), (S2C, OK)]);
    dec.finish(&mut out);
    let t = txs(out);
    assert_eq!(t[0].response.body.data, b"hell");
    assert_eq!(t[0].response.body.size, 5);
    assert!(t[0].response.body.truncated);
    assert_eq!(dec.counters().body_bytes_dropped, 1);
}

#[test]
fn parse_error_resyncs_on_a_later_record() {
    let mut dec = Http1Decoder::new(&Limits::default());
    let mut out = run(
        &mut dec,
        &[
            (C2S, b"\x16\x03\x01 not http at all\r\n\r\n"),
            (C2S, b"still junk"),
            (C2S, GET),
            (S2C, OK),
        ],
    );
    dec.finish(&mut out);
    let t = txs(out);
    assert_eq!(t.len(), 1);
    assert!(t[0].is_complete());
    assert_eq!(dec.counters().h1_parse_errors, 1);
    assert!(dec.counters().dropped_bytes > 0);
}

#[test]
fn mid_connection_join() {
    let mut dec = Http1Decoder::new_mid_connection(&Limits::default());
    let mut out = run(
        &mut dec,
        &[(S2C, b"...tail of an earlier body"), (C2S, GET), (S2C, OK)],
    );
    dec.finish(&mut out);
    let t = txs(out);
    assert_eq!(t.len(), 1);
    assert!(t[0].is_complete());
    // A response whose request we never saw.
    let mut dec = Http1Decoder::new_mid_connection(&Limits::default());
    let t = txs(run(&mut dec, &[(S2C, OK)]));
    assert_eq!(t.len(), 1);
    assert!(!t[0].request.seen);
    assert_eq!(t[0].end, End::Complete);
}

#[test]
fn gap_in_response_body() {
    let mut dec = Http1Decoder::new(&Limits::default());
    let mut out = Vec::new();
    dec.feed(C2S, GET, &mut out);
    dec.feed(
        S2C,
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst part",
        &mut out,
    );
    dec.gap(S2C, 50);
    dec.feed(S2C, b"the last 40 bytes of that body.........", &mut out);
    dec.feed(C2S, GET, &mut out);
    dec.feed(S2C, OK, &mut out);
    dec.finish(&mut out);
    let t = txs(out);
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].end, End::Desync);
    assert!(t[0].response.data_lost);
    assert!(t[1].is_complete());
    assert_eq!(t[1].response.body.data, b"hello");
    assert_eq!(dec.counters().gap_bytes, 50);
}

#[test]
fn oversized_header_section_is_an_error() {
    let limits = Limits {
        h1_max_header_bytes: 64,
        ..Limits::default()
    };
    let mut dec = Http1Decoder::new(&limits);
    let mut big = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 100));
    let out = run(&mut dec, &[(C2S, &big[..30]), (C2S, &big[30..])]);
    assert!(out.is_empty());
    assert_eq!(dec.counters().h1_parse_errors, 1);
}

#[test]
fn pipeline_limit_evicts_oldest() {
    let limits = Limits {
        h1_max_pipeline: 2,
        ..Limits::default()
    };
    let mut dec = Http1Decoder::new(&limits);
    let reqs = b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n";
    let t = txs(run(&mut dec, &[(C2S, reqs)]));
    assert_eq!(t.len(), 1);
    assert_eq!((s(t[0].path()), t[0].end), ("/1", End::Evicted));
    assert_eq!(dec.pending(), 2);
}

#[test]
fn never_panics_on_garbage() {
    let base: Vec<&[u8]> = vec![GET, OK, CHUNKED, b"HTTP/1.1 101 x\r\nUpgrade: a\r\n\r\n"];
    let mut x: u64 = 0x0123_4567_89ab_cdef;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..3000 {
        let mut dec = if next() % 2 == 0 {
            Http1Decoder::new(&Limits::default())
        } else {
            Http1Decoder::new_mid_connection(&Limits::default())
        };
        let mut out = Vec::new();
        for _ in 0..6 {
            let mut b = base[(next() % 4) as usize].to_vec();
            for _ in 0..(next() % 3) {
                let i = next() as usize % b.len();
                b[i] = next() as u8;
            }
            let cut = next() as usize % (b.len() + 1);
            let dir = if next() % 2 == 0 { C2S } else { S2C };
            dec.feed(dir, &b[..cut], &mut out);
            dec.feed(dir, &b[cut..], &mut out);
            match next() % 10 {
                0 => dec.gap(dir, 10),
                // Holes of any size, huge ones included.
                1 => dec.skip(dir, next() >> (next() % 64), &mut out),
                _ => {}
            }
        }
        dec.finish(&mut out);
    }
}

/// Found by fuzzing: responses without requests piling up behind a request
/// whose body never completes must still respect the pipeline limit.
#[test]
fn orphan_responses_respect_the_pipeline_limit() {
    let limits = Limits {
        h1_max_pipeline: 2,
        ..Limits::default()
    };
    let mut dec = Http1Decoder::new(&limits);
    let mut out = Vec::new();
    dec.feed(
        C2S,
        b"POST /slow HTTP/1.1\r\nContent-Length: 100\r\n\r\npart",
        &mut out,
    );
    for _ in 0..10 {
        dec.feed(
            S2C,
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            &mut out,
        );
        assert!(dec.pending() <= 2);
    }
    assert!(dec.counters().h1_pipeline_evicted > 0);
}

#[test]
fn http10_exchanges_report_version_1_0() {
    // An HTTP/1.0 client answered by an HTTP/1.1 server (nginx does this):
    // the exchange is HTTP/1.0; keep-alive with Content-Length keeps pairing.
    let t = decode(&[
        (C2S, b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
        (
            S2C,
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
        ),
        (C2S, b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"),
        (S2C, b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nyes"),
        (C2S, b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n"),
        (S2C, OK),
    ]);
    let v: Vec<_> = t.iter().map(|t| (s(t.path()), t.version())).collect();
    assert_eq!(v, [("/a", "1.0"), ("/b", "1.0"), ("/c", "1.1")]);
    assert!(t.iter().all(Transaction::is_complete));
}

#[test]
fn http10_response_without_length_or_with_transfer_encoding_ends_at_close() {
    // Close-delimited, and (RFC 9112 §6.1) Transfer-Encoding in an HTTP/1.0
    // message is faulty framing: the body is everything until the close.
    for (resp, body) in [
        (
            &b"HTTP/1.0 200 OK\r\n\r\nline one\r\nline two\r\n"[..],
            &b"line one\r\nline two\r\n"[..],
        ),
        (
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\r\n0\r\n\r\n",
        ),
    ] {
        let mut dec = Http1Decoder::new(&Limits::default());
        let mut out = run(&mut dec, &[(C2S, b"GET / HTTP/1.0\r\n\r\n"), (S2C, resp)]);
        assert!(out.is_empty(), "not complete before the close: {out:?}");
        dec.finish(&mut out);
        let t = txs(out);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].response.body.data, body);
        assert_eq!((t[0].version(), t[0].end), ("1.0", End::Complete));
    }
}

/// A library call lost whole: what the decode stage says (lost_call, then
/// the gap with its byte count).
fn lose_call(dec: &mut Http1Decoder, dir: Direction, bytes: &[u8]) {
    dec.lost_call(dir);
    dec.gap(dir, bytes.len() as u64);
}

#[test]
fn exchanges_lost_whole_are_counted_once_each() {
    // Five exchanges, one request per call (wrk, h2load --h1): #2 and #3
    // lose request and response, #4 loses only its request (its response
    // is still reported), #5 is seen.
    let mut dec = Http1Decoder::new(&Limits::default());
    let mut out = Vec::new();
    dec.feed(C2S, GET, &mut out);
    dec.feed(S2C, OK, &mut out);
    for _ in 0..2 {
        lose_call(&mut dec, C2S, GET);
        lose_call(&mut dec, S2C, OK);
    }
    lose_call(&mut dec, C2S, GET);
    dec.feed(S2C, OK, &mut out);
    dec.feed(C2S, GET, &mut out);
    dec.feed(S2C, OK, &mut out);
    dec.finish(&mut out);
    let t = txs(out);
    let unseen = dec.counters().h1_requests_unseen;
    assert_eq!(t.len(), 3, "{t:?}");
    assert_eq!(unseen, 2);
    assert_eq!(t.len() as u64 + unseen, 5);
    assert!(!t[1].request.seen);
}

#[test]
fn a_lost_exchange_at_the_end_is_counted_at_finish() {
    let mut dec = Http1Decoder::new(&Limits::default());
    let mut out = Vec::new();
    dec.feed(C2S, GET, &mut out);
    dec.feed(S2C, OK, &mut out);
    lose_call(&mut dec, C2S, GET);
    assert_eq!(
        dec.counters().h1_requests_unseen,
        0,
        "a response may still come"
    );
    lose_call(&mut dec, S2C, OK);
    dec.finish(&mut out);
    assert_eq!(txs(out).len(), 1);
    assert_eq!(dec.counters().h1_requests_unseen, 1);
}

#[test]
fn calls_lost_inside_a_request_body_are_not_requests() {
    // A POST whose body spans calls: losing a middle call is a gap inside
    // one message, not a request lost whole.
    let mut dec = Http1Decoder::new(&Limits::default());
    let mut out = Vec::new();
    dec.feed(
        C2S,
        b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 30\r\n\r\n0123456789",
        &mut out,
    );
    lose_call(&mut dec, C2S, b"0123456789");
    dec.feed(C2S, b"0123456789", &mut out);
    dec.feed(S2C, OK, &mut out);
    dec.finish(&mut out);
    assert_eq!(txs(out).len(), 1);
    assert_eq!(dec.counters().h1_requests_unseen, 0);
}

/// Lost calls told as counts (the kernel's per-connection account of call
/// records lost to a full ring) give the counts the same calls told one by
/// one give, for runs of any length in each direction.
#[test]
fn lost_calls_told_as_counts_match_one_by_one() {
    fn seen(lost_requests: u32, lost_responses: u32, counts: bool) -> (usize, u64) {
        let mut dec = Http1Decoder::new(&Limits::default());
        let mut out = Vec::new();
        dec.feed(C2S, GET, &mut out);
        dec.feed(S2C, OK, &mut out);
        if counts {
            for (dir, n, msg) in [(S2C, lost_responses, OK), (C2S, lost_requests, GET)] {
                if n > 0 {
                    dec.lost_call(dir);
                    dec.gap(dir, u64::from(n) * msg.len() as u64);
                    dec.more_lost_calls(dir, n - 1);
                }
            }
        } else {
            for i in 0..lost_requests.max(lost_responses) {
                if i < lost_requests {
                    lose_call(&mut dec, C2S, GET);
                }
                if i < lost_responses {
                    lose_call(&mut dec, S2C, OK);
                }
            }
        }
        dec.feed(C2S, GET, &mut out);
        dec.feed(S2C, OK, &mut out);
        dec.finish(&mut out);
        (txs(out).len(), dec.counters().h1_requests_unseen)
    }
    for (req, resp) in [(1, 1), (3, 3), (1, 0), (4, 0), (1000, 1000)] {
        let one_by_one = seen(req, resp, false);
        assert_eq!(seen(req, resp, true), one_by_one, "{req} {resp}");
        assert_eq!(one_by_one, (2, u64::from(req)), "{req} {resp}");
    }
}
