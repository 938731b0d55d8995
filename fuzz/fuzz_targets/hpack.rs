//! HPACK decoder: a sequence of header blocks (2-byte length prefixes) into
//! one decoder, fresh or joined mid-connection. Must never panic, and must
//! respect its table bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_proto::hpack::Decoder;
use weft_proto::{Headers, Limits};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else { return };
    let limits = Limits {
        hpack_max_table_size: if mode & 2 != 0 { 256 } else { 65_536 },
        max_header_list_size: if mode & 4 != 0 { 200 } else { 65_536 },
        ..Limits::default()
    };
    let mut d = if mode & 1 != 0 { Decoder::new_mid_connection(&limits) } else { Decoder::new(&limits) };
    if mode & 8 != 0 {
        d.set_max_table_size_setting(u32::from(mode) << 8);
    }
    let mut out = Headers::new();
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let block = &rest[2..2 + len];
        rest = &rest[2 + len..];
        out.clear();
        let _ = d.decode(block, &mut out);
        assert!(d.table_size() <= d.max_table_size());
        assert!(d.max_table_size() <= limits.hpack_max_table_size as usize);
    }
});
