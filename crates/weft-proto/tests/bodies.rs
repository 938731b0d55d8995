//! Bodies: content codings (fixtures from the gzip, brotli and zstd tools,
//! see tests/fixtures/make_bodies.sh), decompression caps, sniffing, gRPC.

mod common;

use common::chunked;
use common::h2::{self, Encoder, PREFACE};
use weft_proto::compression::{RATIO_GRACE, decode};
use weft_proto::{
    Coding, ConnectionDecoder, DecodeError, Direction, Event, Limits, Protocol, Transaction,
};

use Direction::{ClientToServer as C2S, ServerToClient as S2C};

fn fixture(name: &str) -> Vec<u8> {
    let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn plain() -> Vec<u8> {
    fixture("body.txt")
}

#[test]
fn each_coding_decodes_its_fixture() {
    use Coding::*;
    let cases: &[(&str, &[Coding])] = &[
        ("body.txt.gz", &[Gzip]),
        ("body.txt.br", &[Brotli]),
        ("body.txt.zst", &[Zstd]),
        ("body.txt.zlib", &[Deflate]),
        ("body.txt.deflate", &[Deflate]),
        ("body.txt.gz.br", &[Gzip, Brotli]),
        ("body.txt.br.zst.gz", &[Brotli, Zstd, Gzip]),
        ("two.gz", &[Gzip]),
        ("two.zst", &[Zstd]),
    ];
    let limits = Limits::default();
    for (name, codings) in cases {
        let d = decode(codings, &fixture(name), true, &limits);
        assert_eq!(d.error, None, "{name}");
        assert!(!d.truncated, "{name}");
        assert_eq!(d.size, plain().len() as u64, "{name}");
        assert!(d.data == plain(), "{name}");
    }
}

#[test]
fn decompression_bombs_stop_at_the_caps() {
    let limits = Limits::default();
    for (name, coding) in [
        ("zeros.gz", Coding::Gzip),
        ("zeros.br", Coding::Brotli),
        ("zeros.zst", Coding::Zstd),
    ] {
        let input = fixture(name);
        let d = decode(&[coding], &input, true, &limits);
        assert_eq!(d.error, Some(DecodeError::RatioLimit), "{name}");
        assert!(d.truncated);
        let allowed = (100 * input.len() as u64).max(RATIO_GRACE);
        assert!(d.size <= allowed, "{name}: {} > {allowed}", d.size);
        assert!(d.data.iter().all(|&b| b == 0));
    }
    // Without the ratio cap, the output cap.
    let limits = Limits {
        max_decompression_ratio: 0,
        max_decompressed_size: 4 << 20,
        max_decoded_body_size: 1 << 20,
        ..Limits::default()
    };
    let d = decode(&[Coding::Brotli], &fixture("zeros.br"), true, &limits);
    assert_eq!(d.error, Some(DecodeError::OutputLimit));
    assert_eq!((d.size, d.data.len()), (4 << 20, 1 << 20));
    // The caps hold for each stage of a chain: gzip inside brotli.
    let d = decode(
        &[Coding::Gzip, Coding::Brotli],
        &fixture("body.txt.gz.br"),
        true,
        &Limits {
            max_decompressed_size: 1000,
            ..Limits::default()
        },
    );
    assert_eq!(d.error, Some(DecodeError::OutputLimit));
}

#[test]
fn windows_above_the_limit_are_refused() {
    let d = decode(
        &[Coding::Zstd],
        &fixture("window27.zst"),
        true,
        &Limits::default(),
    );
    assert_eq!(d.error, Some(DecodeError::WindowTooLarge(Coding::Zstd)));
    assert_eq!(d.size, 0);
    let big = Limits {
        max_decompression_window: 128 << 20,
        ..Limits::default()
    };
    let d = decode(&[Coding::Zstd], &fixture("window27.zst"), true, &big);
    assert_eq!((d.error, d.data == plain()), (None, true));
    // zeros.br was made with `-w 24`: a 16 MiB window.
    let small = Limits {
        max_decompression_window: 1 << 20,
        ..Limits::default()
    };
    let d = decode(&[Coding::Brotli], &fixture("zeros.br"), true, &small);
    assert_eq!(d.error, Some(DecodeError::WindowTooLarge(Coding::Brotli)));
    let d = decode(&[Coding::Brotli], &fixture("body.txt.br"), true, &small);
    assert_eq!(d.error, None);
}

#[test]
fn truncated_and_corrupt_input() {
    let limits = Limits::default();
    for (name, coding) in [
        ("body.txt.gz", Coding::Gzip),
        ("body.txt.br", Coding::Brotli),
        ("body.txt.zst", Coding::Zstd),
        ("body.txt.zlib", Coding::Deflate),
        ("body.txt.deflate", Coding::Deflate),
    ] {
        let full = fixture(name);
        let cut = &full[..full.len() / 2];
        let d = decode(&[coding], cut, false, &limits);
        assert_eq!(d.error, Some(DecodeError::Truncated(coding)), "{name}");
        assert!(d.truncated);
        assert!(plain().starts_with(&d.data), "{name}: output is a prefix");
        let mut bad = full.clone();
        let mid = bad.len() / 2;
        for b in &mut bad[mid..mid + 8] {
            *b ^= 0x5a;
        }
        let d = decode(&[coding], &bad, true, &limits);
        assert!(
            matches!(
                d.error,
                Some(DecodeError::Corrupt(c) | DecodeError::Truncated(c)) if c == coding
            ),
            "{name}: {:?}",
            d.error
        );
    }
}

#[test]
fn kept_bytes_are_capped_but_the_size_is_real() {
    let limits = Limits {
        max_decoded_body_size: 100,
        ..Limits::default()
    };
    let d = decode(&[Coding::Gzip], &fixture("body.txt.gz"), true, &limits);
    assert_eq!(d.error, None);
    assert!(d.truncated);
    assert_eq!((d.data.len(), d.size), (100, plain().len() as u64));
    assert_eq!(d.data, plain()[..100]);
}

fn http1(response_head: &str, body: &[u8], limits: &Limits) -> (Transaction, weft_proto::Counters) {
    let mut dec = ConnectionDecoder::new(limits, None);
    let mut out = Vec::new();
    dec.feed(
        C2S,
        b"GET /data HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip, br, zstd\r\n\r\n",
        &mut out,
    );
    let mut resp = response_head.as_bytes().to_vec();
    resp.extend_from_slice(body);
    dec.feed(S2C, &resp, &mut out);
    dec.finish(&mut out);
    let tx = out
        .into_iter()
        .find_map(|e| match e {
            Event::Transaction(t) => Some(*t),
            _ => None,
        })
        .expect("transaction");
    (tx, dec.take_counters())
}

#[test]
fn http1_chain_over_chunked_transfer() {
    let body = fixture("body.txt.gz.br");
    let (tx, c) = http1(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Encoding: br\r\nTransfer-Encoding: chunked\r\n\r\n",
        &chunked(&body, 300),
        &Limits::default(),
    );
    let b = &tx.response.body;
    assert_eq!(b.data, body, "raw body kept as sent");
    let d = b.decoded.as_ref().expect("decoded");
    assert_eq!((d.error, d.data == plain()), (None, true));
    assert_eq!(b.content(), plain());
    assert_eq!(b.sniffed_type, None, "JSON text is not sniffed");
    assert_eq!((c.bodies_decoded, c.body_decode_errors), (1, 0));
}

#[test]
fn http1_transfer_coding_gzip() {
    let body = fixture("body.txt.gz");
    let (tx, _) = http1(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        &chunked(&body, 1000),
        &Limits::default(),
    );
    assert_eq!(tx.response.body.content(), plain());
}

#[test]
fn http1_cut_body_decodes_partly() {
    let body = fixture("body.txt.zst");
    let limits = Limits {
        max_body_size: 500,
        ..Limits::default()
    };
    let (tx, c) = http1(
        &format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: zstd\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ),
        &body,
        &limits,
    );
    let b = &tx.response.body;
    assert!(b.truncated);
    let d = b.decoded.as_ref().expect("decoded");
    assert_eq!(d.error, Some(DecodeError::Truncated(Coding::Zstd)));
    assert!(plain().starts_with(&d.data));
    assert_eq!(c.body_decode_truncated, 1);
}

#[test]
fn http1_unsupported_coding_leaves_the_body() {
    let (tx, c) = http1(
        "HTTP/1.1 200 OK\r\nContent-Encoding: compress\r\nContent-Length: 3\r\n\r\n",
        b"abc",
        &Limits::default(),
    );
    let b = &tx.response.body;
    assert_eq!(
        b.decoded.as_ref().and_then(|d| d.error),
        Some(DecodeError::Unsupported)
    );
    assert_eq!(b.content(), b"abc");
    assert_eq!(c.body_decode_unsupported, 1);
    // Decoding off.
    let (tx, _) = http1(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\n",
        b"abc",
        &Limits {
            max_decoded_body_size: 0,
            ..Limits::default()
        },
    );
    assert_eq!(tx.response.body.decoded, None);
}

#[test]
fn sniffs_decoded_content() {
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01";
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(png).expect("write");
    let gz = enc.finish().expect("finish");
    let (tx, _) = http1(
        &format!(
            "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            gz.len()
        ),
        &gz,
        &Limits::default(),
    );
    assert_eq!(tx.response.body.sniffed_type, Some("image/png"));
    // Without a coding, the raw body is sniffed.
    let (tx, _) = http1(
        "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n",
        b"%PDF-1.4",
        &Limits::default(),
    );
    assert_eq!(tx.response.body.sniffed_type, Some("application/pdf"));
}

fn grpc_frame(compressed: bool, msg: &[u8]) -> Vec<u8> {
    let mut f = vec![u8::from(compressed)];
    f.extend((msg.len() as u32).to_be_bytes());
    f.extend_from_slice(msg);
    f
}

#[test]
fn http2_zstd_body_and_grpc_messages() {
    let mut enc_c = Encoder::new(true);
    let mut enc_s = Encoder::new(false);
    // Stream 1: a zstd body in three DATA frames.
    let req1 = enc_c.encode(&[
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "a"),
        (":path", "/z"),
    ]);
    let resp1 = enc_s.encode(&[(":status", "200"), ("content-encoding", "zstd")]);
    // Stream 3: gRPC, the response's second message gzip-compressed.
    let req3 = enc_c.encode(&[
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "a"),
        (":path", "/pkg.Svc/Get"),
        ("content-type", "application/grpc"),
        ("grpc-accept-encoding", "gzip"),
    ]);
    let resp3 = enc_s.encode(&[
        (":status", "200"),
        ("content-type", "application/grpc+proto"),
        ("grpc-encoding", "gzip"),
    ]);
    let trailers = enc_s.encode(&[("grpc-status", "0")]);
    let gz = fixture("body.txt.gz");
    let mut resp_body = grpc_frame(false, b"\x08\x01");
    resp_body.extend(grpc_frame(true, &gz));
    let mut client = PREFACE.to_vec();
    client.extend(h2::settings(&[]));
    client.extend(h2::headers(1, &req1, true));
    client.extend(h2::headers(3, &req3, false));
    client.extend(h2::data(3, &grpc_frame(false, b"\x0a\x03abc"), true));
    let mut server = h2::settings(&[]);
    server.extend(h2::headers(1, &resp1, false));
    let zst = fixture("body.txt.zst");
    let third = zst.len() / 3;
    server.extend(h2::data(1, &zst[..third], false));
    server.extend(h2::data(1, &zst[third..2 * third], false));
    server.extend(h2::data(1, &zst[2 * third..], true));
    server.extend(h2::headers(3, &resp3, false));
    server.extend(h2::data(3, &resp_body[..100], false));
    server.extend(h2::data(3, &resp_body[100..], false));
    server.extend(h2::headers(3, &trailers, true));
    let mut dec = ConnectionDecoder::new(&Limits::default(), Some(Protocol::Http2));
    let mut out = Vec::new();
    dec.feed(C2S, &client, &mut out);
    dec.feed(S2C, &server, &mut out);
    let txs: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            Event::Transaction(t) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(txs.len(), 2);
    assert_eq!(txs[0].response.body.content(), plain());
    let g = txs[1].request.body.grpc.as_ref().expect("grpc request");
    assert_eq!(g.messages.len(), 1);
    assert_eq!(
        txs[1].request.body.grpc_payload(&g.messages[0]),
        b"\x0a\x03abc"
    );
    let body = &txs[1].response.body;
    let g = body.grpc.as_ref().expect("grpc response");
    assert_eq!((g.messages.len(), g.error), (2, None));
    assert_eq!(body.grpc_payload(&g.messages[0]), b"\x08\x01");
    assert!(g.messages[1].compressed);
    assert_eq!(body.grpc_payload(&g.messages[1]), gz);
    let d = g.messages[1].decoded.as_ref().expect("decoded message");
    assert_eq!((d.error, d.data == plain()), (None, true));
    let c = dec.take_counters();
    assert_eq!((c.grpc_messages, c.grpc_framing_errors), (3, 0));
}

#[test]
fn decoders_never_panic_on_noise() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let limits = Limits {
        max_decompressed_size: 1 << 16,
        max_decoded_body_size: 1024,
        ..Limits::default()
    };
    let seeds: Vec<Vec<u8>> = [
        "body.txt.gz",
        "body.txt.br",
        "body.txt.zst",
        "body.txt.zlib",
        "body.txt.deflate",
    ]
    .iter()
    .map(|n| fixture(n))
    .collect();
    let codings = [
        Coding::Gzip,
        Coding::Brotli,
        Coding::Zstd,
        Coding::Deflate,
        Coding::Deflate,
    ];
    for i in 0..3000 {
        let k = i % seeds.len();
        let mut input = seeds[k].clone();
        input.truncate((next() % 400) as usize + 1);
        for _ in 0..(next() % 4) {
            let at = (next() as usize) % input.len();
            input[at] = next() as u8;
        }
        let d = decode(&[codings[k]], &input, next() % 2 == 0, &limits);
        assert!(d.data.len() <= 1024);
        assert!(d.size <= 1 << 16);
    }
}

#[test]
fn grpc_web_over_http1_with_trailers_frame() {
    let mut body = grpc_frame(true, b"snappy-bytes");
    let mut trailer = vec![0x80];
    trailer.extend(18u32.to_be_bytes());
    trailer.extend(b"grpc-status: 0\r\n\r\n");
    body.extend(&trailer);
    let (tx, c) = http1(
        &format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/grpc-web+proto\r\ngrpc-encoding: snappy\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ),
        &body,
        &Limits::default(),
    );
    let b = &tx.response.body;
    let g = b.grpc.as_ref().expect("grpc-web");
    assert_eq!((g.messages.len(), g.error), (2, None));
    assert_eq!(
        g.messages[0].decoded.as_ref().and_then(|d| d.error),
        Some(DecodeError::Unsupported)
    );
    assert!(g.messages[1].trailers);
    assert_eq!(b.grpc_payload(&g.messages[1]), b"grpc-status: 0\r\n\r\n");
    assert_eq!((c.grpc_messages, c.body_decode_unsupported), (2, 1));
    // A cut gRPC body of a complete message is a framing error.
    let (tx, c) = http1(
        "HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\nContent-Length: 6\r\n\r\n",
        &[0, 0, 0, 0, 9, 1],
        &Limits::default(),
    );
    let g = tx.response.body.grpc.as_ref().expect("grpc");
    assert_eq!(g.error, Some(weft_proto::grpc::GrpcError::Truncated));
    assert_eq!(c.grpc_framing_errors, 1);
}
