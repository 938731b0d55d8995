//! The chosen ALPN protocol, inferred from what the client speaks first.
//!
//! In TLS 1.3 the server's choice travels in the encrypted
//! EncryptedExtensions; weft learns it only when the application asks the
//! library (`SSL_get0_alpn_selected`, reported by the BPF side). Where
//! nobody asks, or weft cannot hook the function (stripped Chromium), the
//! client's first application bytes tell: a client that offered `h2` and
//! opens with the HTTP/2 connection preface was given `h2` (RFC 9113 §3.3:
//! over TLS, h2 is only spoken after ALPN chose it); one that offered
//! `http/1.1` and sends an HTTP/1.1 request line speaks `http/1.1` (a server
//! that chose no protocol at all is indistinguishable here, hence the
//! `weft.tls.next_protocol_inferred` mark on such events).

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Longest request line looked at (a longer one is not inferred from).
const MAX_REQUEST_LINE: usize = 8192;

/// The protocol the client's first application bytes `first` show it was
/// given, among those it `offered`; `None` when they do not tell (also when
/// the first call carried only part of the preface or request line).
pub(super) fn infer(offered: &[String], first: &[u8]) -> Option<&'static str> {
    let offers = |p: &str| offered.iter().any(|o| o == p);
    if offers("h2") && first.starts_with(H2_PREFACE) {
        return Some("h2");
    }
    if offers("http/1.1") && is_http11_request_line(first) {
        return Some("http/1.1");
    }
    None
}

/// `METHOD SP request-target SP HTTP/1.1 CRLF` at the start of `b`.
fn is_http11_request_line(b: &[u8]) -> bool {
    let head = &b[..b.len().min(MAX_REQUEST_LINE)];
    let Some(end) = head.windows(2).position(|w| w == b"\r\n") else {
        return false;
    };
    let line = &head[..end];
    let mut parts = line.split(|&c| c == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    (1..=24).contains(&method.len())
        && method.iter().all(|c| c.is_ascii_uppercase() || *c == b'-')
        && !target.is_empty()
        && target.iter().all(|c| c.is_ascii_graphic())
        && version == b"HTTP/1.1"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn preface_means_h2_only_when_offered() {
        let mut first = H2_PREFACE.to_vec();
        first.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // SETTINGS
        assert_eq!(infer(&offered(&["h2", "http/1.1"]), &first), Some("h2"));
        assert_eq!(infer(&offered(&["http/1.1"]), &first), None);
        assert_eq!(infer(&[], &first), None);
        // Part of the preface is not enough.
        assert_eq!(infer(&offered(&["h2"]), &H2_PREFACE[..10]), None);
    }

    #[test]
    fn request_line_means_http11_only_when_offered() {
        let req = b"GET /x?y=1 HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(infer(&offered(&["h2", "http/1.1"]), req), Some("http/1.1"));
        assert_eq!(infer(&offered(&["h2"]), req), None);
        for bad in [
            &b"GET /x HTTP/1.0\r\n\r\n"[..],
            b"GET /x HTTP/1.1",
            b"get /x HTTP/1.1\r\n",
            b"GET  /x HTTP/1.1\r\n",
            b"GET /x HTTP/1.1 extra\r\n",
            b"\x16\x03\x01\x00",
            b"",
        ] {
            assert_eq!(infer(&offered(&["http/1.1"]), bad), None, "{bad:?}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for n in 0..2000usize {
            let b: Vec<u8> = (0..n % 64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b" GETHP/1.\r\n"[(x % 11) as usize]
                })
                .collect();
            let _ = infer(&offered(&["h2", "http/1.1"]), &b);
        }
    }
}
