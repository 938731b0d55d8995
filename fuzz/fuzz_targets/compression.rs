//! Content decoding: the first byte picks up to three codings (2 bits each,
//! plus a count) and whether the input is complete; the rest is the body.
//! Checks the output caps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_proto::compression::decode;
use weft_proto::{Coding, Limits};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else { return };
    let all = [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd];
    let n = usize::from(mode >> 6).clamp(1, 3);
    let codings: Vec<Coding> = (0..n).map(|i| all[usize::from(mode >> (2 * i)) & 3]).collect();
    let limits = Limits {
        max_decompressed_size: 1 << 20,
        max_decoded_body_size: 4096,
        max_decompression_window: 1 << 20,
        ..Limits::default()
    };
    let d = decode(&codings, body, mode & 0x20 == 0, &limits);
    assert!(d.data.len() <= 4096);
    assert!(d.size <= 1 << 20);
    assert!(d.size >= d.data.len() as u64);
    if d.error.is_some() {
        assert!(d.truncated);
    }
});
