//! JSON lines in Elastic Common Schema (ECS) shape: one nested object per
//! event, one event per line. `docs/schema.md` describes every field.
//!
//! Hand-written rather than derived: an event is written straight into a
//! reused buffer with no intermediate values, and the string escaping also
//! neutralises characters that are valid JSON but unsafe on a terminal.

use std::io::Write;
use std::net::IpAddr;

use base64::Engine as _;
use weft_core::event::{Event, Role, TlsData};

use crate::datetime::{push_digits, push_rfc3339_utc};
use crate::escape::is_unsafe_non_ascii;
use crate::{ECS_VERSION, SCHEMA_VERSION, Sink, SinkError};

/// Buffers that grew past this for one huge event are shrunk back.
const KEEP_CAPACITY: usize = 1 << 20;

/// Writes one ECS JSON object per event, each followed by `\n`.
///
/// Each event is encoded into an internal buffer and handed to the writer
/// with a single `write_all`, so lines are never interleaved or split by this
/// sink. For throughput, give it a buffered writer (`BufWriter`) and call
/// [`Sink::flush`] when the stream goes idle.
#[derive(Debug)]
pub struct JsonSink<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> JsonSink<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            buf: Vec::with_capacity(4096),
        }
    }

    pub fn get_ref(&self) -> &W {
        &self.out
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// The writer back, without flushing it.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> Sink for JsonSink<W> {
    fn write(&mut self, ev: &Event) -> Result<(), SinkError> {
        self.buf.clear();
        encode_event(ev, &mut self.buf);
        self.buf.push(b'\n');
        let res = self.out.write_all(&self.buf);
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::with_capacity(4096);
        }
        res.map_err(|source| SinkError::Write {
            sink: "JSON lines",
            source,
        })
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|source| SinkError::Flush {
            sink: "JSON lines",
            source,
        })
    }
}

/// Appends the JSON object for `ev` to `out` (no trailing newline).
///
/// For outputs that frame events themselves (a message bus, an HTTP bulk
/// request); [`JsonSink`] is this plus `\n`.
pub fn encode_event(ev: &Event, out: &mut Vec<u8>) {
    match ev {
        Event::TlsData(d) => encode_tls_data(d, out),
    }
}

fn encode_tls_data(d: &TlsData, out: &mut Vec<u8>) {
    let p = &*d.process;
    let mut j = Obj::new(out);

    j.key("@timestamp");
    j.out.push(b'"');
    push_rfc3339_utc(j.out, d.timestamp_ns);
    j.out.push(b'"');

    j.begin("ecs");
    j.str("version", ECS_VERSION);
    j.end();

    j.begin("event");
    j.str("kind", "event");
    j.raw("category", "[\"network\"]");
    j.raw("type", "[\"protocol\"]");
    j.str(
        "action",
        match d.direction {
            weft_core::event::Direction::Write => "tls-write",
            weft_core::event::Direction::Read => "tls-read",
        },
    );
    j.u64("duration", d.duration_ns);
    j.end();

    j.begin("process");
    j.u64("pid", u64::from(p.pid));
    j.str("name", &p.name);
    if let Some(exe) = &p.executable {
        j.str("executable", exe);
    }
    j.str("entity_id", &p.entity_id);
    j.begin("parent");
    j.u64("pid", u64::from(p.ppid));
    j.end();
    j.begin("thread");
    j.u64("id", u64::from(d.tid));
    j.end();
    j.end();

    j.begin("user");
    j.u64_as_str("id", u64::from(p.uid));
    j.end();
    j.begin("group");
    j.u64_as_str("id", u64::from(p.gid));
    j.end();

    if let Some(flow) = &d.flow {
        let (src, dst) = (flow.source(), flow.destination());
        j.begin("source");
        j.ip("ip", src.ip);
        j.u64("port", u64::from(src.port));
        j.end();
        j.begin("destination");
        j.ip("ip", dst.ip);
        j.u64("port", u64::from(dst.port));
        j.end();
        j.begin("network");
        j.str("transport", "tcp");
        // From the address actually on the wire: an IPv4-mapped IPv6
        // socket address carries IPv4 packets.
        j.str(
            "type",
            match flow.local.ip.to_canonical() {
                IpAddr::V4(_) => "ipv4",
                IpAddr::V6(_) => "ipv6",
            },
        );
        j.end();
    }

    j.begin("weft");
    j.begin("schema");
    j.str("version", SCHEMA_VERSION);
    j.end();
    j.begin("process");
    j.u64("cgroup_id", p.cgroup_id);
    j.u64("start_time_ns", p.start_time_ns);
    j.end();
    if let Some(flow) = &d.flow {
        j.begin("flow");
        if flow.cookie != 0 {
            j.u64("cookie", flow.cookie);
        }
        j.str(
            "role",
            match flow.role {
                Role::Client => "client",
                Role::Server => "server",
                Role::Unknown => "unknown",
            },
        );
        j.end();
    }
    j.begin("tls");
    j.str("library", d.library.as_str());
    j.str("direction", d.direction.as_str());
    j.end();
    j.begin("payload");
    j.u64("length", d.length);
    j.u64("captured", d.payload.len() as u64);
    j.bool("truncated", d.truncated());
    match std::str::from_utf8(&d.payload) {
        Ok(text) => j.str("text", text),
        Err(_) => j.base64("base64", &d.payload),
    }
    j.end();
    j.end();

    j.finish();
}

/// A JSON object being written: tracks commas, nothing else. Keys are our own
/// constants and are written unescaped.
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    fn key(&mut self, key: &str) {
        debug_assert!(!key.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20));
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn begin(&mut self, key: &str) {
        self.key(key);
        self.out.push(b'{');
        self.first = true;
    }

    fn end(&mut self) {
        self.out.push(b'}');
        self.first = false;
    }

    fn finish(self) {
        self.out.push(b'}');
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        push_json_str(self.out, value);
    }

    /// A value that is already JSON (a constant).
    fn raw(&mut self, key: &str, json: &str) {
        self.key(key);
        self.out.extend_from_slice(json.as_bytes());
    }

    fn u64(&mut self, key: &str, value: u64) {
        self.key(key);
        push_digits(self.out, value, 1);
    }

    fn u64_as_str(&mut self, key: &str, value: u64) {
        self.key(key);
        self.out.push(b'"');
        push_digits(self.out, value, 1);
        self.out.push(b'"');
    }

    fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    fn ip(&mut self, key: &str, ip: IpAddr) {
        self.key(key);
        self.out.push(b'"');
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.out.push(b'.');
                    }
                    push_digits(self.out, u64::from(octet), 1);
                }
            }
            // `Display` gives RFC 5952 text: hex digits, colons, dots; no
            // escaping needed. Writing into a Vec cannot fail.
            IpAddr::V6(v6) => {
                let _ = write!(self.out, "{v6}");
            }
        }
        self.out.push(b'"');
    }

    fn base64(&mut self, key: &str, bytes: &[u8]) {
        self.key(key);
        self.out.push(b'"');
        let start = self.out.len();
        let len = base64::encoded_len(bytes.len(), true).unwrap_or(0);
        self.out.resize(start + len, 0);
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(bytes, &mut self.out[start..])
            .unwrap_or(0);
        self.out.truncate(start + written);
        self.out.push(b'"');
    }
}

/// What to do with each byte of a UTF-8 string inside a JSON string:
/// 0 = copy, `u` = `\u00XX`, `?` = lead byte of a character that may need
/// escaping (decode and check), anything else = backslash and that letter.
const BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[0x7f] = b'u';
    // Lead bytes of the blocks holding what `is_unsafe_non_ascii` matches:
    // U+0080..=U+00BF, U+0600..=U+07FF, U+08xx, U+1xxx, U+2xxx, U+3xxx,
    // U+Fxxx, U+1xxxx, U+Exxxx.
    let leads = [
        0xc2u8, 0xd8, 0xdb, 0xdc, 0xe0, 0xe1, 0xe2, 0xe3, 0xef, 0xf0, 0xf3,
    ];
    let mut k = 0;
    while k < leads.len() {
        t[leads[k] as usize] = b'?';
        k += 1;
    }
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a JSON string literal.
///
/// Escapes what JSON requires (`"`, `\`, U+0000..=U+001F) and, so that the
/// output is also safe to print on a terminal, DEL, C1 controls and the
/// invisible format characters [`crate::escape_untrusted`] escapes (bidi
/// controls, zero-width characters, U+2028/U+2029...), as `\uXXXX` (a
/// surrogate pair above U+FFFF). Decoders see the original text unchanged.
pub(crate) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut run = 0; // start of the pending run of bytes copied as they are
    let mut i = 0;
    while i < bytes.len() {
        // Skip eight plain ASCII bytes at a time (the common case: HTTP text).
        if let Some(word) = bytes
            .get(i..i + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            && !word_needs_look(u64::from_le_bytes(word))
        {
            i += 8;
            continue;
        }
        // Something in the next eight bytes: go byte by byte past them.
        let stop = i + 8;
        while i < stop {
            let Some(&b) = bytes.get(i) else { break };
            match BYTE_CLASS[usize::from(b)] {
                0 => i += 1,
                b'?' => {
                    // `i` is at a lead byte, so on a character boundary.
                    let Some(c) = s.get(i..).and_then(|rest| rest.chars().next()) else {
                        break;
                    };
                    if is_unsafe_non_ascii(c) {
                        out.extend_from_slice(&bytes[run..i]);
                        push_u_escape(out, c);
                        run = i + c.len_utf8();
                    }
                    i += c.len_utf8();
                }
                class => {
                    out.extend_from_slice(&bytes[run..i]);
                    if class == b'u' {
                        push_u_escape(out, char::from(b));
                    } else {
                        out.push(b'\\');
                        out.push(class);
                    }
                    i += 1;
                    run = i;
                }
            }
        }
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// True unless all eight bytes of `w` are printable ASCII other than `"` and
/// `\` (bytes below 0x20, `"`, `\`, 0x7f and above need a look). Exact about
/// whether such a byte exists, which is all the caller asks.
fn word_needs_look(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    let quote = has_zero(w ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(w ^ (ONES * u64::from(b'\\')));
    let del = has_zero(w ^ (ONES * 0x7f));
    (below_space | quote | backslash | del | (w & HIGH)) != 0
}

fn push_u_escape(out: &mut Vec<u8>, c: char) {
    let mut units = [0u16; 2];
    for unit in c.encode_utf16(&mut units) {
        out.extend_from_slice(b"\\u");
        for shift in [12, 8, 4, 0] {
            out.push(HEX[usize::from((*unit >> shift) & 0xf)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use serde_json::Value;
    use weft_core::event::{Direction, Endpoint, Flow};

    use super::*;
    use crate::test_support::{broken_pipe_writer, sample};

    fn encode(d: &TlsData) -> String {
        let mut sink = JsonSink::new(Vec::new());
        sink.write(&Event::TlsData(d.clone()))
            .expect("write to Vec");
        String::from_utf8(sink.into_inner()).expect("JSON lines are UTF-8")
    }

    fn parse(line: &str) -> Value {
        assert!(line.ends_with('\n'), "{line:?}");
        assert_eq!(line.matches('\n').count(), 1, "one line: {line:?}");
        serde_json::from_str(line).expect("valid JSON")
    }

    #[test]
    fn every_field_has_its_exact_value() {
        let line = encode(&sample());
        let v = parse(&line);
        let expected = serde_json::json!({
            "@timestamp": "2026-11-27T20:03:44.123456789Z",
            "ecs": {"version": ECS_VERSION},
            "event": {
                "kind": "event",
                "category": ["network"],
                "type": ["protocol"],
                "action": "tls-write",
                "duration": 4200
            },
            "process": {
                "pid": 1234,
                "name": "curl",
                "executable": "/usr/bin/curl",
                "entity_id": "b1d2c3:1234:99000",
                "parent": {"pid": 1000},
                "thread": {"id": 1235}
            },
            "user": {"id": "1001"},
            "group": {"id": "1002"},
            "source": {"ip": "10.0.0.5", "port": 51234},
            "destination": {"ip": "93.184.216.34", "port": 443},
            "network": {"transport": "tcp", "type": "ipv4"},
            "weft": {
                "schema": {"version": "1.0"},
                "process": {"cgroup_id": 4242, "start_time_ns": 99000},
                "flow": {"cookie": 77, "role": "client"},
                "tls": {"library": "openssl", "direction": "write"},
                "payload": {
                    "length": 37,
                    "captured": 37,
                    "truncated": false,
                    "text": "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
                }
            }
        });
        assert_eq!(v, expected);
        // Field order is fixed: timestamp first, payload last.
        assert!(line.starts_with("{\"@timestamp\":\"2026-11-27T20:03:44.123456789Z\",\"ecs\":"));
        assert!(line.ends_with("\\r\\n\\r\\n\"}}}\n"));
    }

    #[test]
    fn read_direction_and_server_role() {
        let mut d = sample();
        d.direction = Direction::Read;
        let flow = d.flow.as_mut().expect("sample has a flow");
        flow.role = Role::Server;
        let v = parse(&encode(&d));
        assert_eq!(v["event"]["action"], "tls-read");
        assert_eq!(v["weft"]["tls"]["direction"], "read");
        assert_eq!(v["weft"]["flow"]["role"], "server");
        // The peer opened the connection: it is the source.
        assert_eq!(v["source"]["ip"], "93.184.216.34");
        assert_eq!(v["source"]["port"], 443);
        assert_eq!(v["destination"]["ip"], "10.0.0.5");
    }

    #[test]
    fn invalid_utf8_goes_to_base64() {
        let mut d = sample();
        d.payload = vec![0x16, 0x03, 0x01, 0xff, 0x00];
        d.length = 5;
        let v = parse(&encode(&d));
        let p = &v["weft"]["payload"];
        assert!(p.get("text").is_none());
        assert_eq!(p["base64"], "FgMB/wA=");
        assert_eq!(p["captured"], 5);
    }

    #[test]
    fn valid_utf8_with_controls_stays_text() {
        let mut d = sample();
        d.payload = b"\0a\x1b[31m\"\\\x7f".to_vec();
        d.length = d.payload.len() as u64;
        let line = encode(&d);
        assert!(
            line.contains(r#""text":"\u0000a\u001b[31m\"\\\u007f""#),
            "{line}"
        );
        let v = parse(&line);
        assert!(v["weft"]["payload"].get("base64").is_none());
        assert_eq!(v["weft"]["payload"]["text"], "\0a\x1b[31m\"\\\x7f");
    }

    #[test]
    fn empty_payload_is_empty_text() {
        let mut d = sample();
        d.payload.clear();
        d.length = 0;
        let v = parse(&encode(&d));
        assert_eq!(v["weft"]["payload"]["text"], "");
        assert_eq!(v["weft"]["payload"]["truncated"], false);
    }

    #[test]
    fn truncated_capture_reports_both_lengths() {
        let mut d = sample();
        d.length = 1 << 20;
        let v = parse(&encode(&d));
        let p = &v["weft"]["payload"];
        assert_eq!(p["length"], 1 << 20);
        assert_eq!(p["captured"], 37);
        assert_eq!(p["truncated"], true);
    }

    #[test]
    fn unknown_flow_omits_addresses() {
        let mut d = sample();
        d.flow = None;
        d.process = std::sync::Arc::new(weft_core::event::ProcessInfo {
            executable: None,
            ..(*d.process).clone()
        });
        let v = parse(&encode(&d));
        for absent in ["source", "destination", "network"] {
            assert!(v.get(absent).is_none(), "{absent} present");
        }
        assert!(v["weft"].get("flow").is_none());
        assert!(v["process"].get("executable").is_none());
        assert_eq!(v["process"]["pid"], 1234);
    }

    #[test]
    fn zero_cookie_is_omitted() {
        let mut d = sample();
        d.flow.as_mut().expect("sample has a flow").cookie = 0;
        let v = parse(&encode(&d));
        assert!(v["weft"]["flow"].get("cookie").is_none());
        assert_eq!(v["weft"]["flow"]["role"], "client");
    }

    #[test]
    fn ipv6_and_mapped_ipv4() {
        let mut d = sample();
        d.flow = Some(Flow {
            cookie: 1,
            local: Endpoint {
                ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
                port: 40000,
            },
            remote: Endpoint {
                ip: "2001:db8::1".parse().expect("IPv6 literal"),
                port: 443,
            },
            role: Role::Client,
        });
        let v = parse(&encode(&d));
        assert_eq!(v["source"]["ip"], "::1");
        assert_eq!(v["destination"]["ip"], "2001:db8::1");
        assert_eq!(v["network"]["type"], "ipv6");

        // A dual-stack socket talking IPv4: shown as the IPv4 it is.
        let mapped = Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped();
        let flow = d.flow.as_mut().expect("set above");
        flow.local.ip = IpAddr::V6(mapped);
        flow.remote.ip = IpAddr::V6(mapped);
        let v = parse(&encode(&d));
        assert_eq!(v["source"]["ip"], "127.0.0.1");
        assert_eq!(v["destination"]["ip"], "127.0.0.1");
        assert_eq!(v["network"]["type"], "ipv4");
    }

    #[test]
    fn hostile_process_fields_stay_inside_their_strings() {
        let mut d = sample();
        d.process = std::sync::Arc::new(weft_core::event::ProcessInfo {
            name: "x\",\"pid\":1,\"\n\u{202e}".to_string(),
            ..(*d.process).clone()
        });
        let line = encode(&d);
        let v = parse(&line);
        assert_eq!(v["process"]["name"], "x\",\"pid\":1,\"\n\u{202e}");
        assert_eq!(v["process"]["pid"], 1234);
        assert!(line.contains("\\u202e"));
    }

    #[test]
    fn every_byte_value_round_trips_through_text_or_base64() {
        // All 128 ASCII bytes are valid UTF-8: text.
        let mut d = sample();
        d.payload = (0u8..0x80).collect();
        d.length = d.payload.len() as u64;
        let v = parse(&encode(&d));
        let text = v["weft"]["payload"]["text"].as_str().expect("text");
        assert_eq!(text.as_bytes(), &d.payload[..]);

        // All 256: not UTF-8, base64 decodes back to the same bytes.
        d.payload = (0u8..=255).collect();
        d.length = 256;
        let v = parse(&encode(&d));
        let b64 = v["weft"]["payload"]["base64"].as_str().expect("base64");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("standard base64");
        assert_eq!(decoded, d.payload);
    }

    fn json_str(s: &str) -> String {
        let mut out = Vec::new();
        push_json_str(&mut out, s);
        String::from_utf8(out).expect("escaping keeps UTF-8")
    }

    fn assert_round_trip(s: &str) {
        let json = json_str(s);
        assert!(
            !json.bytes().any(|b| b < 0x20 || b == 0x7f),
            "raw control byte in {json:?}"
        );
        let back: String = serde_json::from_str(&json).expect("valid JSON string");
        assert_eq!(back, s);
    }

    #[test]
    fn word_filter_agrees_with_the_byte_table() {
        let plain = |b: u8| BYTE_CLASS[usize::from(b)] == 0 && b < 0x7f;
        // Each byte value at each position of an otherwise plain word.
        for pos in 0..8 {
            for b in 0..=255u8 {
                let mut word = *b"abcdefgh";
                word[pos] = b;
                assert_eq!(
                    word_needs_look(u64::from_le_bytes(word)),
                    !plain(b),
                    "byte {b:#x} at {pos}"
                );
            }
        }
        // Pairs of neighbouring bytes (borrows between lanes).
        for b1 in 0..=255u8 {
            for b2 in 0..=255u8 {
                let word = [b'a', b'b', b'c', b1, b2, b'f', b'g', b'h'];
                assert_eq!(
                    word_needs_look(u64::from_le_bytes(word)),
                    !plain(b1) || !plain(b2),
                    "bytes {b1:#x} {b2:#x}"
                );
            }
        }
    }

    #[test]
    fn string_escaping_at_every_offset() {
        // An escape at each position relative to the 8-byte stride.
        for len in 0..24 {
            for pos in 0..len {
                for special in [
                    "\n",
                    "\"",
                    "\\",
                    "\u{7f}",
                    "é",
                    "\u{202e}",
                    "🦀",
                    "\u{e0041}",
                ] {
                    let mut s = "x".repeat(len);
                    s.replace_range(pos..pos + 1, special);
                    assert_round_trip(&s);
                }
            }
        }
    }

    #[test]
    fn string_escaping_round_trips_all_256_byte_values() {
        // Each of U+0000..=U+00FF alone, then all together.
        let all: String = (0u8..=255).map(char::from).collect();
        for c in all.chars() {
            assert_round_trip(&c.to_string());
            assert_round_trip(&format!("a{c}b"));
        }
        assert_round_trip(&all);
        assert_eq!(
            json_str("\0\u{1f}\u{7f}\u{9b}"),
            r#""\u0000\u001f\u007f\u009b""#
        );
        assert_eq!(json_str("\"\\\n\r\t\u{8}\u{c}"), r#""\"\\\n\r\t\b\f""#);
    }

    #[test]
    fn string_escaping_round_trips_every_scalar_value() {
        let all: String = (0..=0x10ffff).filter_map(char::from_u32).collect();
        assert_round_trip(&all);
        // Exactly the characters unsafe on a terminal are \u-escaped.
        let mut buf = [0u8; 4];
        for c in all.chars().filter(|c| !c.is_ascii()) {
            let json = json_str(c.encode_utf8(&mut buf));
            if is_unsafe_non_ascii(c) {
                assert!(json.starts_with("\"\\u"), "{c:?} -> {json}");
            } else {
                assert_eq!(json, format!("\"{c}\""));
            }
        }
        assert_eq!(json_str("\u{202e}\u{2028}"), r#""\u202e\u2028""#);
        assert_eq!(json_str("\u{e0041}"), r#""\udb40\udc41""#);
        assert_eq!(json_str("é🦀"), "\"é🦀\"");
    }

    #[test]
    fn write_errors_name_the_sink() {
        let mut sink = JsonSink::new(broken_pipe_writer());
        let err = sink
            .write(&Event::TlsData(sample()))
            .expect_err("the writer fails");
        assert!(err.is_broken_pipe());
        assert_eq!(err.to_string(), "cannot write the JSON lines output");
    }
}
