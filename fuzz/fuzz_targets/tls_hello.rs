//! TLS hello parser fed records: `[op][len:2][bytes]`, op's low bit is the
//! side (sent / received).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_proto::tls::{HandshakeParser, Side};

fuzz_target!(|data: &[u8]| {
    let mut p = HandshakeParser::new();
    let mut rest = data;
    while rest.len() >= 3 {
        let op = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let bytes = &rest[3..3 + len];
        rest = &rest[3 + len..];
        let side = if op & 1 == 0 { Side::Sent } else { Side::Received };
        p.feed(side, bytes);
        if let Some(ch) = p.client_hello() {
            assert!(ch.alpn.len() <= weft_proto::tls::MAX_ITEMS);
            assert!(ch.cipher_suites.len() <= weft_proto::tls::MAX_ITEMS);
            // JA4 of whatever parsed: never panics, always the `a_b_c` shape.
            assert_eq!(ch.fingerprint.ja4().split('_').count(), 3);
        }
        if let Some(sh) = p.server_hello() {
            assert_eq!(sh.fingerprint.ja4s().split('_').count(), 3);
        }
    }
});
