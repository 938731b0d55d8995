//! Magic-byte sniffing and gRPC message splitting on arbitrary bodies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_proto::{grpc, sniff};

fuzz_target!(|data: &[u8]| {
    let _ = sniff(data);
    let Some((&mode, body)) = data.split_first() else { return };
    let g = grpc::split(body, mode & 1 != 0, mode & 2 != 0, 16);
    assert!(g.messages.len() <= 16);
    for m in &g.messages {
        assert!(m.offset >= 5 && m.offset + m.kept <= body.len());
        assert!(m.kept <= m.length as usize);
    }
});
