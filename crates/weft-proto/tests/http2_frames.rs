//! HTTP/2 frame decoder: every frame type, padding, priority, CONTINUATION,
//! limits, need-more vs invalid, resynchronisation, arbitrary splits.

mod common;

use common::h2::*;
use weft_proto::Limits;
use weft_proto::http2::{Frame, FrameDecoder, FrameError, PrefaceMatch, match_preface};

/// What came out of a decoder: frames (DATA chunks merged per frame, as
/// debug strings) and errors.
#[derive(Debug, Default, PartialEq)]
struct Decoded {
    frames: Vec<String>,
    errors: Vec<FrameError>,
}

fn run(dec: &mut FrameDecoder, chunks: &[&[u8]]) -> Decoded {
    let mut d = Decoded::default();
    let mut data: Vec<u8> = Vec::new();
    for chunk in chunks {
        let mut input: &[u8] = chunk;
        loop {
            let (n, r) = dec.decode(input);
            input = &input[n..];
            match r {
                Ok(Some(Frame::Data {
                    stream_id,
                    data: chunk,
                    end_of_frame,
                    end_stream,
                })) => {
                    data.extend_from_slice(chunk);
                    if end_of_frame {
                        d.frames.push(format!(
                            "Data({stream_id}, {:?}, end_stream={end_stream})",
                            String::from_utf8_lossy(&data)
                        ));
                        data.clear();
                    }
                }
                Ok(Some(f)) => d.frames.push(format!("{f:?}")),
                Ok(None) => break,
                Err(e) => d.errors.push(e),
            }
        }
    }
    d
}

fn client() -> FrameDecoder {
    FrameDecoder::new_client(&Limits::default())
}

fn server() -> FrameDecoder {
    FrameDecoder::new_server(&Limits::default())
}

/// A connection start exercising every frame type.
fn every_frame_type() -> Vec<u8> {
    let mut w = PREFACE.to_vec();
    w.extend(settings(&[(1, 65536), (4, 1 << 20), (5, 32768)]));
    w.extend(frame(SETTINGS, ACK, 0, &[]));
    w.extend(window_update(0, 1000));
    w.extend(headers(1, b"\x82\x86\x84", false));
    w.extend(frame(PRIORITY, 0, 3, &[0x80, 0, 0, 1, 15]));
    w.extend(data(1, b"hello ", false));
    // Padded DATA: pad length 3.
    w.extend(frame(DATA, PADDED | END_STREAM, 1, b"\x03world\0\0\0"));
    // Padded HEADERS with priority.
    w.extend(frame(
        HEADERS,
        PADDED | PRIORITY_FLAG | END_HEADERS,
        3,
        b"\x02\x00\x00\x00\x01\x10\x82\0\0",
    ));
    // HEADERS + 2 CONTINUATION.
    w.extend(frame(HEADERS, END_STREAM, 5, b"\x82"));
    w.extend(frame(CONTINUATION, 0, 5, b"\x86"));
    w.extend(frame(CONTINUATION, END_HEADERS, 5, b"\x84"));
    // Unknown frame type 0x42: skipped.
    w.extend(frame(0x42, 0xff, 7, b"ignored payload"));
    w.extend(ping(false));
    w.extend(rst(3, 8));
    w.extend(goaway(5, 0));
    w
}

fn expected_every_frame_type() -> Vec<String> {
    vec![
        "Settings { ack: false, settings: Settings([0, 1, 0, 1, 0, 0, 0, 4, 0, 16, 0, 0, 0, 5, 0, 0, 128, 0]) }",
        "Settings { ack: true, settings: Settings([]) }",
        "WindowUpdate { stream_id: 0, increment: 1000 }",
        "Headers { stream_id: 1, end_stream: false, priority: None, block: [130, 134, 132] }",
        "Priority { stream_id: 3, priority: Priority { exclusive: true, dependency: 1, weight: 15 } }",
        "Data(1, \"hello \", end_stream=false)",
        "Data(1, \"world\", end_stream=true)",
        "Headers { stream_id: 3, end_stream: false, priority: Some(Priority { exclusive: false, dependency: 1, weight: 16 }), block: [130] }",
        "Headers { stream_id: 5, end_stream: true, priority: None, block: [130, 134, 132] }",
        "Unknown { header: FrameHeader { length: 15, kind: 66, flags: 255, stream_id: 7, reserved: false } }",
        "Ping { ack: false, data: [1, 2, 3, 4, 5, 6, 7, 8] }",
        "RstStream { stream_id: 3, error_code: 8 }",
        "GoAway { last_stream_id: 5, error_code: 0, debug_data: [] }",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

#[test]
fn decodes_every_frame_type_in_one_input() {
    let got = run(&mut client(), &[&every_frame_type()]);
    assert_eq!(got.errors, vec![]);
    assert_eq!(got.frames, expected_every_frame_type());
}

#[test]
fn any_split_gives_the_same_frames() {
    let wire = every_frame_type();
    let want = expected_every_frame_type();
    // Byte by byte.
    let chunks: Vec<&[u8]> = wire.chunks(1).collect();
    let got = run(&mut client(), &chunks);
    assert_eq!(got.errors, vec![]);
    assert_eq!(got.frames, want);
    // Every two-piece split.
    for at in 0..wire.len() {
        let got = run(&mut client(), &[&wire[..at], &wire[at..]]);
        assert_eq!(got.frames, want, "split at {at}");
    }
    // Assorted chunk sizes.
    for size in [2, 3, 5, 7, 9, 10, 13, 64] {
        let chunks: Vec<&[u8]> = wire.chunks(size).collect();
        assert_eq!(run(&mut client(), &chunks).frames, want, "chunks of {size}");
    }
}

#[test]
fn need_more_is_not_an_error() {
    let mut dec = server();
    let f = data(1, b"abcdef", true);
    // Header only: need more.
    let (n, r) = dec.decode(&f[..9]);
    assert_eq!((n, r), (9, Ok(None)));
    // DATA chunks stream out as they arrive.
    let (n, r) = dec.decode(&f[9..12]);
    assert_eq!(n, 3);
    assert_eq!(
        r,
        Ok(Some(Frame::Data {
            stream_id: 1,
            data: b"abc",
            end_of_frame: false,
            end_stream: false
        }))
    );
    let (n, r) = dec.decode(&f[12..]);
    assert_eq!(n, 3);
    assert_eq!(
        r,
        Ok(Some(Frame::Data {
            stream_id: 1,
            data: b"def",
            end_of_frame: true,
            end_stream: true
        }))
    );
    // Partial non-DATA frame is buffered: need more.
    let p = ping(true);
    assert_eq!(dec.decode(&p[..12]), (12, Ok(None)));
    let (n, r) = dec.decode(&p[12..]);
    assert_eq!(n, 5);
    assert_eq!(
        r,
        Ok(Some(Frame::Ping {
            ack: true,
            data: [1, 2, 3, 4, 5, 6, 7, 8]
        }))
    );
    assert_eq!(dec.decode(&[]), (0, Ok(None)));
}

#[test]
fn preface_checks() {
    assert_eq!(match_preface(PREFACE), PrefaceMatch::Match);
    assert_eq!(match_preface(&PREFACE[..10]), PrefaceMatch::NeedMore);
    assert_eq!(match_preface(b"GET / HTTP/1.1\r\n"), PrefaceMatch::Mismatch);
    let got = run(&mut client(), &[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]);
    assert_eq!(got.errors[0], FrameError::BadPreface);
    assert!(got.frames.is_empty());
}

#[test]
fn padding_errors_skip_the_frame() {
    let mut w = frame(DATA, PADDED, 1, b"\x09abc"); // pad 9 > 3
    w.extend(data(1, b"next", true));
    w.extend(frame(HEADERS, PADDED | END_HEADERS, 3, b"\x05\x82"));
    w.extend(ping(false));
    let got = run(&mut server(), &[&w]);
    assert_eq!(
        got.errors,
        vec![
            FrameError::BadPadding {
                kind: DATA,
                stream_id: 1
            },
            FrameError::BadPadding {
                kind: HEADERS,
                stream_id: 3
            }
        ]
    );
    assert!(got.errors[1].loses_header_block());
    assert_eq!(got.frames.len(), 2);
    assert_eq!(got.frames[0], "Data(1, \"next\", end_stream=true)");
}

#[test]
fn continuation_sequencing_errors() {
    // Stray CONTINUATION.
    let mut w = frame(CONTINUATION, END_HEADERS, 1, b"\x82");
    // HEADERS interrupted by DATA: block dropped, DATA still decoded.
    w.extend(frame(HEADERS, 0, 3, b"\x82"));
    w.extend(data(3, b"x", false));
    // CONTINUATION on the wrong stream.
    w.extend(frame(HEADERS, 0, 5, b"\x82"));
    w.extend(frame(CONTINUATION, END_HEADERS, 7, b"\x84"));
    w.extend(ping(false));
    let got = run(&mut server(), &[&w]);
    assert_eq!(
        got.errors,
        vec![
            FrameError::UnexpectedContinuation { stream_id: 1 },
            FrameError::ExpectedContinuation {
                stream_id: 3,
                kind: DATA
            },
            FrameError::ExpectedContinuation {
                stream_id: 5,
                kind: CONTINUATION
            },
        ]
    );
    assert_eq!(
        got.frames,
        vec![
            "Data(3, \"x\", end_stream=false)",
            &format!(
                "{:?}",
                Frame::Ping {
                    ack: false,
                    data: [1, 2, 3, 4, 5, 6, 7, 8]
                }
            )
        ]
    );
}

#[test]
fn header_block_limit_skips_block_and_its_continuations() {
    let limits = Limits {
        max_header_block_size: 16,
        ..Limits::default()
    };
    let mut dec = FrameDecoder::new_server(&limits);
    let mut w = frame(HEADERS, 0, 1, &[0x82; 10]);
    w.extend(frame(CONTINUATION, 0, 1, &[0x82; 400])); // pushes past 16 + slack
    w.extend(frame(CONTINUATION, END_HEADERS, 1, &[0x82; 10])); // skipped silently
    w.extend(headers(3, &[0x82; 8], true));
    let got = run(&mut dec, &[&w]);
    assert_eq!(
        got.errors,
        vec![FrameError::HeaderBlockTooLarge {
            stream_id: 1,
            max: 16
        }]
    );
    assert_eq!(got.frames.len(), 1);
    assert!(got.frames[0].starts_with("Headers { stream_id: 3"));
}

#[test]
fn oversized_or_impossible_headers_lose_sync_then_resync_on_next_record() {
    let limits = Limits {
        h2_max_frame_size: 1000,
        ..Limits::default()
    };
    let mut dec = FrameDecoder::new_server(&limits);
    // A 2000-byte DATA frame header: over the limit.
    let mut big = frame(DATA, 0, 1, &[0u8; 2000]);
    big.extend(ping(false)); // same record: dropped with it
    let got = run(&mut dec, &[&big]);
    assert!(matches!(
        got.errors[..],
        [FrameError::BadFrameHeader { .. }]
    ));
    assert!(got.frames.is_empty());
    assert!(dec.is_lost());
    // Garbage record: dropped. Then a record starting on a frame boundary.
    let got = run(&mut dec, &[b"\xde\xad\xbe\xef garbage", &ping(true)]);
    assert_eq!(got.errors, vec![FrameError::Unsynchronised { dropped: 12 }]);
    assert_eq!(
        got.frames,
        vec![format!(
            "{:?}",
            Frame::Ping {
                ack: true,
                data: [1, 2, 3, 4, 5, 6, 7, 8]
            }
        )]
    );
    assert!(!dec.is_lost());
    // PING with a wrong length is impossible too.
    let got = run(&mut dec, &[&frame(PING, 0, 0, &[0; 7])]);
    assert!(matches!(
        got.errors[..],
        [FrameError::BadFrameHeader { .. }]
    ));
}

#[test]
fn mid_connection_decoder_finds_the_first_plausible_record() {
    let mut dec = FrameDecoder::new_mid_connection(&Limits::default());
    let mut tail_of_frame = vec![0u8; 30]; // the end of some DATA frame
    tail_of_frame.extend(headers(9, b"\x82", true));
    let got = run(
        &mut dec,
        &[&tail_of_frame, &[0x00, 0x00], &headers(11, b"\x84", true)],
    );
    assert_eq!(got.frames.len(), 1);
    assert!(got.frames[0].starts_with("Headers { stream_id: 11"));
    assert_eq!(dec.dropped_bytes(), 30 + 10 + 2);
    // A record starting with the preface also resynchronises.
    let mut dec = FrameDecoder::new_mid_connection(&Limits::default());
    let mut w = PREFACE.to_vec();
    w.extend(settings(&[]));
    assert_eq!(run(&mut dec, &[&w]).frames.len(), 1);
}

#[test]
fn large_data_frames_stream_without_buffering() {
    let payload = vec![b'z'; 1 << 20];
    let w = frame(DATA, END_STREAM, 1, &payload);
    let mut dec = server();
    let mut total = 0;
    let mut ends = 0;
    for chunk in w.chunks(16 * 1024 + 3) {
        let mut input = chunk;
        loop {
            let (n, r) = dec.decode(input);
            input = &input[n..];
            match r {
                Ok(Some(Frame::Data {
                    data, end_stream, ..
                })) => {
                    total += data.len();
                    ends += usize::from(end_stream);
                }
                Ok(None) => break,
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!((total, ends), (1 << 20, 1));
}

#[test]
fn never_panics_on_arbitrary_bytes() {
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let valid = every_frame_type();
    for round in 0..2000 {
        let mut buf = if round % 2 == 0 {
            valid.clone()
        } else {
            Vec::new()
        };
        let len = (next() % 200) as usize;
        for _ in 0..len {
            buf.push(next() as u8);
        }
        // Flip some bytes of the valid prefix too.
        for _ in 0..(next() % 4) {
            if !buf.is_empty() {
                let i = (next() as usize) % buf.len();
                buf[i] = next() as u8;
            }
        }
        let split = (next() as usize) % (buf.len() + 1);
        for mut dec in [
            client(),
            server(),
            FrameDecoder::new_mid_connection(&Limits::default()),
        ] {
            let _ = run(&mut dec, &[&buf[..split], &buf[split..]]);
        }
    }
}

/// `skip` passes over bytes inside a DATA payload (data, then padding)
/// and nowhere else; refusing changes nothing.
#[test]
fn skip_inside_data_payloads_only() {
    use weft_proto::http2::Skipped;
    let mut dec = FrameDecoder::new_server(&Limits::default());
    // A padded DATA frame: pad length 4, "abcdefgh", 4 bytes of padding.
    let mut payload = vec![4];
    payload.extend_from_slice(b"abcdefgh");
    payload.extend_from_slice(&[0; 4]);
    let f = frame(DATA, PADDED | END_STREAM, 3, &payload);
    // At a frame header, or before the pad length: refused.
    assert_eq!(dec.skip(1), None);
    run(&mut dec, &[&f[..9]]);
    assert_eq!(dec.skip(1), None);
    run(&mut dec, &[&f[9..12]]);
    // Data "ab" seen; past the frame's end: refused.
    assert_eq!(dec.skip(11), None);
    assert_eq!(dec.skip(u64::MAX), None);
    assert_eq!(
        dec.skip(3),
        Some(Skipped {
            stream_id: 3,
            data: 3,
            end_stream: false
        })
    );
    // The last 3 data bytes and 1 of padding.
    assert_eq!(
        dec.skip(4),
        Some(Skipped {
            stream_id: 3,
            data: 3,
            end_stream: true
        })
    );
    // Padding alone.
    assert_eq!(
        dec.skip(2),
        Some(Skipped {
            stream_id: 0,
            data: 0,
            end_stream: false
        })
    );
    // The last padding byte fed, then frames decode in alignment.
    let got = run(&mut dec, &[&f[f.len() - 1..], &ping(false)]);
    assert_eq!(got.frames.len(), 1, "{:?}", got.frames);
    assert!(got.frames[0].starts_with("Ping"), "{:?}", got.frames);
    assert!(got.errors.is_empty(), "{:?}", got.errors);
}
