//! RFC 7541 Appendix C examples, malformed input, and mid-connection joins.

mod common;

use common::hex;
use weft_proto::hpack::{Decoder, HpackError, HuffmanError};
use weft_proto::{Headers, Limits};

type Table<'a> = &'a [(&'a str, &'a str)];

fn pairs(h: &Headers) -> Vec<(String, String)> {
    h.to_string_pairs()
}

fn table(d: &Decoder) -> Vec<(String, String)> {
    d.dynamic_table()
        .into_iter()
        .map(|(n, v)| {
            (
                String::from_utf8(n.expect("known name")).expect("utf8"),
                String::from_utf8(v).expect("utf8"),
            )
        })
        .collect()
}

fn owned(t: Table<'_>) -> Vec<(String, String)> {
    t.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Decodes `wire` and checks the header list, the dynamic table and its size.
fn step(d: &mut Decoder, wire: &str, headers: Table<'_>, dyn_table: Table<'_>, size: usize) {
    let mut out = Headers::new();
    let st = d.decode(&hex(wire), &mut out).expect("decodes");
    assert!(!st.is_incomplete() && !st.is_truncated());
    assert_eq!(pairs(&out), owned(headers));
    assert_eq!(table(d), owned(dyn_table));
    assert_eq!(d.table_size(), size);
}

#[test]
fn c2_1_literal_with_indexing() {
    let mut d = Decoder::new(&Limits::default());
    step(
        &mut d,
        "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
        &[("custom-key", "custom-header")],
        &[("custom-key", "custom-header")],
        55,
    );
}

#[test]
fn c2_2_literal_without_indexing() {
    let mut d = Decoder::new(&Limits::default());
    step(
        &mut d,
        "040c 2f73 616d 706c 652f 7061 7468",
        &[(":path", "/sample/path")],
        &[],
        0,
    );
}

#[test]
fn c2_3_literal_never_indexed() {
    let mut d = Decoder::new(&Limits::default());
    let mut out = Headers::new();
    d.decode(&hex("1008 7061 7373 776f 7264 0673 6563 7265 74"), &mut out)
        .expect("decodes");
    let f = out.get_index(0).expect("one field");
    assert_eq!(
        (f.name, f.value, f.sensitive),
        (&b"password"[..], &b"secret"[..], true)
    );
    assert_eq!(d.table_len(), 0);
}

#[test]
fn c2_4_indexed() {
    let mut d = Decoder::new(&Limits::default());
    step(&mut d, "82", &[(":method", "GET")], &[], 0);
}

const REQ1: Table<'static> = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
];
const REQ2: Table<'static> = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
    ("cache-control", "no-cache"),
];
const REQ3: Table<'static> = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/index.html"),
    (":authority", "www.example.com"),
    ("custom-key", "custom-value"),
];
const REQ_T1: Table<'static> = &[(":authority", "www.example.com")];
const REQ_T2: Table<'static> = &[
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];
const REQ_T3: Table<'static> = &[
    ("custom-key", "custom-value"),
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];

#[test]
fn c3_requests_without_huffman() {
    let mut d = Decoder::new(&Limits::default());
    step(
        &mut d,
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        REQ1,
        REQ_T1,
        57,
    );
    step(
        &mut d,
        "8286 84be 5808 6e6f 2d63 6163 6865",
        REQ2,
        REQ_T2,
        110,
    );
    step(
        &mut d,
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
        REQ3,
        REQ_T3,
        164,
    );
}

#[test]
fn c4_requests_with_huffman() {
    let mut d = Decoder::new(&Limits::default());
    step(
        &mut d,
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        REQ1,
        REQ_T1,
        57,
    );
    step(&mut d, "8286 84be 5886 a8eb 1064 9cbf", REQ2, REQ_T2, 110);
    step(
        &mut d,
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        REQ3,
        REQ_T3,
        164,
    );
}

const DATE1: &str = "Mon, 21 Oct 2013 20:13:21 GMT";
const DATE2: &str = "Mon, 21 Oct 2013 20:13:22 GMT";
const LOC: &str = "https://www.example.com";
const COOKIE: &str = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";

fn responses(wires: [&str; 3]) {
    let mut d = Decoder::new(&Limits::default());
    // The examples run with SETTINGS_HEADER_TABLE_SIZE = 256, signalled as a size update.
    let mut out = Headers::new();
    d.decode(&hex("3fe1 01"), &mut out)
        .expect("size update to 256");
    assert_eq!(d.max_table_size(), 256);
    step(
        &mut d,
        wires[0],
        &[
            (":status", "302"),
            ("cache-control", "private"),
            ("date", DATE1),
            ("location", LOC),
        ],
        &[
            ("location", LOC),
            ("date", DATE1),
            ("cache-control", "private"),
            (":status", "302"),
        ],
        222,
    );
    step(
        &mut d,
        wires[1],
        &[
            (":status", "307"),
            ("cache-control", "private"),
            ("date", DATE1),
            ("location", LOC),
        ],
        &[
            (":status", "307"),
            ("location", LOC),
            ("date", DATE1),
            ("cache-control", "private"),
        ],
        222,
    );
    step(
        &mut d,
        wires[2],
        &[
            (":status", "200"),
            ("cache-control", "private"),
            ("date", DATE2),
            ("location", LOC),
            ("content-encoding", "gzip"),
            ("set-cookie", COOKIE),
        ],
        &[
            ("set-cookie", COOKIE),
            ("content-encoding", "gzip"),
            ("date", DATE2),
        ],
        215,
    );
}

#[test]
fn c5_responses_without_huffman() {
    responses([
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
         2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
         6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
         3d31",
    ]);
}

#[test]
fn c6_responses_with_huffman() {
    responses([
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
         9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ]);
}

fn decode_err(wire: &[u8]) -> HpackError {
    let mut d = Decoder::new(&Limits::default());
    d.decode(wire, &mut Headers::new())
        .expect_err("must be rejected")
}

#[test]
fn malformed_input_is_a_typed_error() {
    assert_eq!(decode_err(&[0x80]), HpackError::ZeroIndex);
    assert_eq!(
        decode_err(&[0xbe]),
        HpackError::IndexOutOfRange {
            index: 62,
            table_len: 0
        }
    );
    assert_eq!(decode_err(&[0x7f, 0x80]), HpackError::Truncated); // truncated integer
    assert_eq!(
        decode_err(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        HpackError::IntegerOverflow
    );
    assert_eq!(decode_err(&[0x40]), HpackError::Truncated); // no name
    assert_eq!(decode_err(&[0x40, 0x05, b'a']), HpackError::Truncated); // short string
    assert_eq!(decode_err(&[0x40, 0x01, b'a']), HpackError::Truncated); // no value
    assert_eq!(
        decode_err(&[0x41, 0x7f, 0xff, 0xff, 0xff, 0x0f]),
        HpackError::StringTooLong {
            len: 33_554_558,
            max: 262_144,
        }
    );
    // Huffman: EOS inside the string, and padding of 8 bits.
    assert_eq!(
        decode_err(&[0x41, 0x84, 0xff, 0xff, 0xff, 0xff]),
        HpackError::Huffman(HuffmanError::Eos)
    );
    assert_eq!(
        decode_err(&[0x41, 0x82, 0x1f, 0xff]),
        HpackError::Huffman(HuffmanError::Padding)
    );
    // Padding that is not all ones: '0' = 00000 then 000.
    assert_eq!(
        decode_err(&[0x41, 0x81, 0x00]),
        HpackError::Huffman(HuffmanError::Padding)
    );
    // Name index out of range for a literal.
    assert_eq!(
        decode_err(&[0x7e, 0x00]),
        HpackError::IndexOutOfRange {
            index: 62,
            table_len: 0
        }
    );
    // Size update above the SETTINGS value (4096), and after a field.
    assert_eq!(
        decode_err(&hex("3fe2 1f")),
        HpackError::TableSizeTooLarge {
            requested: 4097,
            max: 4096
        }
    );
    assert_eq!(decode_err(&hex("82 20")), HpackError::SizeUpdateNotAtStart);
}

#[test]
fn never_panics_on_any_short_input() {
    // Every 1- and 2-byte input, and 3-byte inputs over a spread of values.
    let limits = Limits::default();
    let mut out = Headers::new();
    for a in 0..=255u8 {
        let mut d = Decoder::new(&limits);
        let _ = d.decode(&[a], &mut out);
        for b in 0..=255u8 {
            let _ = d.decode(&[a, b], &mut out);
            for c in (0..=255u8).step_by(17) {
                let _ = d.decode(&[a, b, c], &mut out);
            }
            out.clear();
        }
    }
}

#[test]
fn oversized_string_limit() {
    let limits = Limits {
        max_header_string_len: 8,
        ..Limits::default()
    };
    let mut d = Decoder::new(&limits);
    let mut wire = vec![0x40, 0x09];
    wire.extend_from_slice(b"123456789");
    wire.extend_from_slice(&[0x01, b'v']);
    let err = d.decode(&wire, &mut Headers::new()).expect_err("too long");
    assert_eq!(err, HpackError::StringTooLong { len: 9, max: 8 });
}

#[test]
fn header_list_limit_drops_fields_but_keeps_table_in_sync() {
    // Each of these fields is 32 + 10 + 13 = 55 bytes.
    let limits = Limits {
        max_header_list_size: 100,
        ..Limits::default()
    };
    let mut d = Decoder::new(&limits);
    let field = "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572";
    let wire = hex(&format!("{field} {field} {field}"));
    let mut out = Headers::new();
    let st = d.decode(&wire, &mut out).expect("decodes");
    assert_eq!(out.len(), 1);
    assert_eq!(st.dropped_fields, 2);
    assert_eq!(st.list_size, 165);
    assert_eq!(d.table_len(), 3, "all three were inserted");
}

#[test]
fn error_resets_to_joined_state_and_recovers() {
    let mut d = Decoder::new(&Limits::default());
    let mut out = Headers::new();
    d.decode(
        &hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"),
        &mut out,
    )
    .expect("ok");
    assert!(d.is_synced());
    assert!(d.decode(&[0x80], &mut out).is_err());
    assert!(!d.is_synced());
    assert_eq!(d.table_len(), 0);
    // A reference to the (now forgotten) entry is "unknown", not an error.
    out.clear();
    let st = d.decode(&hex("8286 84be"), &mut out).expect("decodes");
    assert_eq!(st.unknown_references, 1);
    assert_eq!(out.len(), 3);
    // A size update tells us the encoder's maximum; clearing it (0) resyncs.
    d.decode(&hex("20 3fe1 1f"), &mut out)
        .expect("size updates");
    assert!(d.is_synced());
}

/// Joining mid-connection: the C.3 request sequence observed from the second request on.
#[test]
fn join_mid_connection_decodes_what_it_can() {
    let mut d = Decoder::new_mid_connection(&Limits::default());
    let mut out = Headers::new();
    // C.3.2 references :authority (index 62) inserted by C.3.1, which we missed.
    let st = d
        .decode(&hex("8286 84be 5808 6e6f 2d63 6163 6865"), &mut out)
        .expect("decodes");
    assert!(st.is_incomplete());
    assert_eq!(st.unknown_references, 1);
    assert_eq!(
        pairs(&out),
        owned(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            ("cache-control", "no-cache")
        ])
    );
    // C.3.3: custom-key is new, cache-control (now index 63) is known,
    // :authority (index 64 -> unknown tail) still unknown.
    out.clear();
    let st = d
        .decode(
            &hex("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"),
            &mut out,
        )
        .expect("decodes");
    assert_eq!(st.unknown_references, 1); // bf = 63 = :authority, inserted before we joined
    assert_eq!(out.get(b"custom-key"), Some(&b"custom-value"[..]));
    // Reference the known entries by their current indices: 62 = custom-key, 63 = cache-control.
    out.clear();
    let st = d.decode(&hex("be bf"), &mut out).expect("decodes");
    assert!(!st.is_incomplete());
    assert_eq!(
        pairs(&out),
        owned(&[
            ("custom-key", "custom-value"),
            ("cache-control", "no-cache")
        ])
    );
    // Index 64 is the :authority entry we never saw.
    out.clear();
    let st = d.decode(&hex("c0"), &mut out).expect("decodes");
    assert_eq!(st.unknown_references, 1);
    assert!(out.is_empty());
}

/// A literal whose name references an unknown entry is inserted with an
/// unknown name; its value is still usable by index, its name is not.
#[test]
fn join_literal_with_unknown_name() {
    let mut d = Decoder::new_mid_connection(&Limits::default());
    let mut out = Headers::new();
    // 0x7f 0x00 = literal with incremental indexing, name index 62 (unknown), value "v".
    let st = d.decode(&[0x7e, 0x01, b'v'], &mut out).expect("decodes");
    assert_eq!(st.unknown_references, 1);
    assert_eq!(d.dynamic_table(), vec![(None, b"v".to_vec())]);
    let st = d.decode(&[0xbe], &mut out).expect("decodes");
    assert_eq!(st.unknown_references, 1);
    assert!(out.is_empty());
}

/// Synced decoders never report unknown references; joined decoders become
/// synced once the table is cleared by the encoder.
#[test]
fn joined_decoder_resyncs_on_size_update_to_zero() {
    let mut d = Decoder::new_mid_connection(&Limits::default());
    assert!(!d.is_synced());
    let mut out = Headers::new();
    d.decode(&hex("20 3fe1 1f 82"), &mut out).expect("decodes");
    assert!(d.is_synced());
    assert_eq!(d.max_table_size(), 4096);
    assert!(
        d.decode(&[0xbe], &mut out).is_err(),
        "out of range once synced"
    );
}
