//! JA4 (client) and JA4S (server) TLS fingerprints, exactly as FoxIO's
//! specification defines them (`technical_details/JA4.md`, `JA4S.md` in
//! github.com/FoxIO-LLC/ja4), from the hello fields [`crate::tls`] reads.
//!
//! JA4 = `a_b_c`:
//! - a: protocol (`t` TCP; weft sees no QUIC or DTLS), version (highest
//!   non-GREASE `supported_versions` entry, else the hello's version: `13`,
//!   `12`, `11`, `10`, `s3`, `s2`, `d1`, `d2`, `d3`, else `00`), `d` with SNI /
//!   `i` without, cipher and extension counts (two digits, GREASE excluded,
//!   at most 99), first and last character of the first ALPN value (`00`
//!   without ALPN; its first and last hex digits when either character is
//!   not an ASCII letter or digit);
//! - b: SHA-256 of the cipher suites (4-digit hex, sorted, comma-separated),
//!   first 12 hex digits, `000000000000` when there are none;
//! - c: the same of the extensions sorted without SNI (0x0000) and ALPN
//!   (0x0010), then `_` and the signature algorithms in their order (no `_`
//!   without them); `000000000000` when there is no extension left.
//!
//! JA4S = `a_b_c`: a: protocol, version (`supported_versions` of the
//! ServerHello, else its version), extension count, first and last character
//! of the chosen ALPN (`00` without); b: the chosen cipher suite in hex;
//! c: SHA-256 of the extensions in their order, first 12 hex digits.

use sha2::{Digest, Sha256};

/// What JA4 reads from a ClientHello. Lists are GREASE-free, in wire order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ja4Client {
    /// The hello's `legacy_version`.
    pub version: u16,
    /// `supported_versions` entries.
    pub supported_versions: Vec<u16>,
    /// A `server_name` extension is present.
    pub has_sni: bool,
    /// Cipher suites offered.
    pub cipher_suites: Vec<u16>,
    /// Extension types.
    pub extensions: Vec<u16>,
    /// The first ALPN value's bytes (when the extension has one).
    pub first_alpn: Option<Vec<u8>>,
    /// `signature_algorithms` entries.
    pub signature_algorithms: Vec<u16>,
}

/// What JA4S reads from a ServerHello.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ja4Server {
    /// The hello's `legacy_version`.
    pub version: u16,
    /// The `supported_versions` value, when present.
    pub supported_version: Option<u16>,
    /// The chosen cipher suite.
    pub cipher_suite: u16,
    /// Extension types, in order (GREASE removed).
    pub extensions: Vec<u16>,
    /// The chosen ALPN value's bytes (TLS 1.2 ServerHellos carry it).
    pub alpn: Option<Vec<u8>>,
}

/// A GREASE value (RFC 8701): 0x?A?A with both bytes equal.
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

fn version_code(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

fn count(n: usize) -> String {
    format!("{:02}", n.min(99))
}

/// First and last character of an ALPN value (module documentation).
fn alpn_code(alpn: Option<&[u8]>) -> String {
    let Some(v) = alpn.filter(|v| !v.is_empty()) else {
        return "00".into();
    };
    let (first, last) = (v[0], v[v.len() - 1]);
    if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
        format!("{}{}", first as char, last as char)
    } else {
        let hex = |b: u8| format!("{b:02x}");
        let (f, l) = (hex(first), hex(last));
        format!("{}{}", &f[..1], &l[1..])
    }
}

fn hex_list(v: &[u16]) -> String {
    let mut s = String::with_capacity(v.len() * 5);
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("{x:04x}"));
    }
    s
}

/// First 12 hex digits of SHA-256 of `s`.
pub fn hash12(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

impl Ja4Client {
    /// The version JA4 reports: the highest `supported_versions` entry, else
    /// the hello's.
    pub fn ja4_version(&self) -> u16 {
        self.supported_versions
            .iter()
            .copied()
            .filter(|v| !is_grease(*v))
            .max()
            .unwrap_or(self.version)
    }

    /// JA4_r: the fingerprint's parts before hashing.
    pub fn ja4_raw(&self) -> (String, String, String) {
        let ciphers: Vec<u16> = self
            .cipher_suites
            .iter()
            .copied()
            .filter(|v| !is_grease(*v))
            .collect();
        let exts: Vec<u16> = self
            .extensions
            .iter()
            .copied()
            .filter(|v| !is_grease(*v))
            .collect();
        let a = format!(
            "t{}{}{}{}{}",
            version_code(self.ja4_version()),
            if self.has_sni { 'd' } else { 'i' },
            count(ciphers.len()),
            count(exts.len()),
            alpn_code(self.first_alpn.as_deref()),
        );
        let mut sorted_ciphers = ciphers;
        sorted_ciphers.sort_unstable();
        let mut sorted_exts: Vec<u16> = exts
            .into_iter()
            .filter(|&e| e != 0x0000 && e != 0x0010)
            .collect();
        sorted_exts.sort_unstable();
        let sigs: Vec<u16> = self
            .signature_algorithms
            .iter()
            .copied()
            .filter(|v| !is_grease(*v))
            .collect();
        let mut c = hex_list(&sorted_exts);
        if !sigs.is_empty() {
            c.push('_');
            c.push_str(&hex_list(&sigs));
        }
        (a, hex_list(&sorted_ciphers), c)
    }

    /// The JA4 fingerprint.
    pub fn ja4(&self) -> String {
        let (a, b, c) = self.ja4_raw();
        let h = |s: &str| {
            if s.is_empty() {
                "000000000000".to_string()
            } else {
                hash12(s)
            }
        };
        // An empty extension list hashes to zeros even with signature algorithms.
        let c_hash = if c.is_empty() || c.starts_with('_') {
            "000000000000".to_string()
        } else {
            h(&c)
        };
        format!("{a}_{}_{c_hash}", h(&b))
    }
}

impl Ja4Server {
    /// JA4S_r: the fingerprint's parts before hashing.
    pub fn ja4s_raw(&self) -> (String, String, String) {
        let exts: Vec<u16> = self
            .extensions
            .iter()
            .copied()
            .filter(|v| !is_grease(*v))
            .collect();
        let a = format!(
            "t{}{}{}",
            version_code(self.supported_version.unwrap_or(self.version)),
            count(exts.len()),
            alpn_code(self.alpn.as_deref()),
        );
        (a, format!("{:04x}", self.cipher_suite), hex_list(&exts))
    }

    /// The JA4S fingerprint.
    pub fn ja4s(&self) -> String {
        let (a, b, c) = self.ja4s_raw();
        let c = if c.is_empty() {
            "000000000000".to_string()
        } else {
            hash12(&c)
        };
        format!("{a}_{b}_{c}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's own example (JA4.md: "t13d1516h2_8daaf6152771_e5627efa2ab1",
    /// with its JA4_r), a Chrome ClientHello with GREASE in every list.
    #[test]
    fn spec_example_ja4() {
        let ch = Ja4Client {
            version: 0x0303,
            supported_versions: vec![0x3a3a, 0x0304, 0x0303],
            has_sni: true,
            cipher_suites: vec![
                0x7a7a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8,
                0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
            ],
            // Wire order of the spec's JA4_ro, plus GREASE at both ends.
            extensions: vec![
                0x2a2a, 0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005,
                0x0023, 0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015, 0x1a1a,
            ],
            first_alpn: Some(b"h2".to_vec()),
            signature_algorithms: vec![
                0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
            ],
        };
        let (a, b, c) = ch.ja4_raw();
        assert_eq!(a, "t13d1516h2");
        assert_eq!(
            b,
            "002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9"
        );
        assert_eq!(
            c,
            "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_\
             0403,0804,0401,0503,0805,0501,0806,0601"
        );
        assert_eq!(ch.ja4(), "t13d1516h2_8daaf6152771_e5627efa2ab1");
    }

    /// JA4S.md's example: "t130200_1301_234ea6891581" (JA4S_r
    /// "t130200_1301_0033,002b").
    #[test]
    fn spec_example_ja4s() {
        let sh = Ja4Server {
            version: 0x0303,
            supported_version: Some(0x0304),
            cipher_suite: 0x1301,
            extensions: vec![0x0033, 0x002b],
            alpn: None,
        };
        assert_eq!(
            sh.ja4s_raw(),
            (
                "t130200".to_string(),
                "1301".to_string(),
                "0033,002b".to_string()
            )
        );
        assert_eq!(sh.ja4s(), "t130200_1301_234ea6891581");
    }

    #[test]
    fn alpn_and_edge_cases() {
        assert_eq!(alpn_code(None), "00");
        assert_eq!(alpn_code(Some(b"")), "00");
        assert_eq!(alpn_code(Some(b"h2")), "h2");
        assert_eq!(alpn_code(Some(b"http/1.1")), "h1");
        assert_eq!(alpn_code(Some(b"h")), "hh");
        // Non-alphanumeric first or last byte: first hex digit of the first
        // byte, last hex digit of the last byte.
        assert_eq!(alpn_code(Some(&[0xab, 0xcd])), "ad");
        assert_eq!(alpn_code(Some(b"x/")), "7f");
        // No ciphers, no extensions: zeros, never the hash of "".
        let empty = Ja4Client {
            version: 0x0301,
            ..Ja4Client::default()
        };
        assert_eq!(empty.ja4(), "t10i000000_000000000000_000000000000");
        // Counts stop at 99; unknown versions are 00.
        let many = Ja4Client {
            version: 0x7f00,
            cipher_suites: (1..=150).collect(),
            ..Ja4Client::default()
        };
        assert!(many.ja4().starts_with("t00i990000_"), "{}", many.ja4());
        assert!(is_grease(0x0a0a) && is_grease(0xfafa) && !is_grease(0x0a0b));
    }
}
