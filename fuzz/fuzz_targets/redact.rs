//! weft-core's redaction: the in-place capture payload maskers (HTTP/1 text
//! and HTTP/2 frames, fed payload by payload) and the value rewriters of
//! decoded HTTP events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_core::redact::{
    Http1PayloadMasker, Http2PayloadMasker, MASK_BYTE, mask_header_value,
    mask_header_value_in_place, redact_form, redact_json, redact_query, redact_query_in_place,
};

/// Only ever overwrites bytes with the mask, never changes the length.
fn check(before: &[u8], after: &[u8]) {
    assert_eq!(before.len(), after.len());
    assert!(before.iter().zip(after).all(|(b, a)| a == b || *a == MASK_BYTE));
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else { return };
    let mut h1 = Http1PayloadMasker::default();
    let mut h2 = Http2PayloadMasker::default();
    // [len: u8][payload] records.
    while let Some((&n, r)) = rest.split_first() {
        let n = usize::from(n).min(r.len());
        let (p, r) = r.split_at(n);
        rest = r;
        let mut a = p.to_vec();
        h1.mask(&mut a);
        check(p, &a);
        let mut b = p.to_vec();
        h2.mask(&mut b);
        check(p, &b);
        if mode & 1 != 0 {
            h1.reset();
            h2.lost();
        }
    }
    for name in [&b"authorization"[..], b"cookie", b"set-cookie", b"location", b"x-api-key"] {
        let mut v = data.to_vec();
        mask_header_value_in_place(name, &mut v);
        check(data, &v);
        let _ = mask_header_value(name, data);
    }
    let mut v = data.to_vec();
    redact_query_in_place(&mut v);
    check(data, &v);
    let _ = redact_query(data);
    let _ = redact_form(data);
    let _ = redact_json(data);
});
