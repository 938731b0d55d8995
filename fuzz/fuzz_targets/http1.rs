//! HTTP/1 connection decoder fed records: `[op][len:2][bytes]` where op's
//! low bit is the direction, op & 0x80 reports a gap instead, and
//! op & 0x40 a hole (`skip`) of `len` bytes (or a huge one, op & 0x20).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_proto::http1::Http1Decoder;
use weft_proto::{Direction, Limits};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else { return };
    let limits = Limits { h1_max_pipeline: 8, max_body_size: 64, h1_max_header_bytes: 512, ..Limits::default() };
    let mut dec = if mode & 1 == 0 { Http1Decoder::new(&limits) } else { Http1Decoder::new_mid_connection(&limits) };
    let mut out = Vec::new();
    while rest.len() >= 3 {
        let op = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let bytes = &rest[3..3 + len];
        rest = &rest[3 + len..];
        let dir = if op & 1 == 0 { Direction::ClientToServer } else { Direction::ServerToClient };
        if op & 0x80 != 0 {
            dec.gap(dir, len as u64);
        } else if op & 0x40 != 0 {
            // A hole the capture left: its length, or a huge one.
            let n = if op & 0x20 != 0 { u64::MAX >> (op & 0x1f) } else { len as u64 };
            dec.skip(dir, n, &mut out);
        } else {
            dec.feed(dir, bytes, &mut out);
        }
        assert!(dec.pending() <= 8);
        out.clear();
    }
    dec.finish(&mut out);
    assert_eq!(dec.pending(), 0);
});
