//! Protocol selection + whichever decoder it picks, fed records like the
//! other connection targets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_proto::{ConnectionDecoder, Direction, Limits, Protocol};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else { return };
    let limits = Limits { h2_max_streams: 8, h1_max_pipeline: 8, max_body_size: 64, ..Limits::default() };
    let alpn = match (mode >> 1) % 3 {
        0 => None,
        1 => Some(Protocol::Http1),
        _ => Some(Protocol::Http2),
    };
    let mut dec = if mode & 1 == 0 {
        ConnectionDecoder::new(&limits, alpn)
    } else {
        ConnectionDecoder::new_mid_connection(&limits, alpn)
    };
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
        out.clear();
    }
    dec.finish(&mut out);
    let _ = dec.take_counters();
});
