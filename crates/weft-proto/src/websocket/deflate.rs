//! permessage-deflate (RFC 7692) negotiation parameters.

use crate::{Direction, Headers};

/// permessage-deflate as accepted by the server (its
/// `Sec-WebSocket-Extensions` response header, RFC 7692 §7.1).
///
/// Decoding does not depend on the window sizes (a 32 KiB window decodes
/// any smaller one); `*_no_context_takeover` makes the decoder start each
/// message of that sender with an empty history, which also lets it recover
/// at once from a lost message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server compresses each message independently.
    pub server_no_context_takeover: bool,
    /// The client compresses each message independently.
    pub client_no_context_takeover: bool,
    /// The server's LZ77 window (base-2 log, 8-15), if limited.
    pub server_max_window_bits: Option<u8>,
    /// The client's LZ77 window (base-2 log, 8-15), if limited.
    pub client_max_window_bits: Option<u8>,
}

impl DeflateParams {
    /// Parses one `Sec-WebSocket-Extensions` value (a comma-separated list
    /// of `name; param[=value]` items) and returns the permessage-deflate
    /// parameters if that extension is in it. Unknown parameters are
    /// ignored; values may be quoted.
    pub fn from_extensions(value: &[u8]) -> Option<Self> {
        value.split(|&b| b == b',').find_map(|item| {
            let mut parts = item.split(|&b| b == b';');
            let name = parts.next().unwrap_or_default().trim_ascii();
            if !name.eq_ignore_ascii_case(b"permessage-deflate") {
                return None;
            }
            let mut p = DeflateParams::default();
            for param in parts {
                let mut kv = param.splitn(2, |&b| b == b'=');
                let key = kv.next().unwrap_or_default().trim_ascii();
                let val = kv.next().map(|v| {
                    let v = v.trim_ascii();
                    v.strip_prefix(b"\"")
                        .and_then(|v| v.strip_suffix(b"\""))
                        .unwrap_or(v)
                });
                let bits = val.and_then(window_bits);
                if key.eq_ignore_ascii_case(b"server_no_context_takeover") {
                    p.server_no_context_takeover = true;
                } else if key.eq_ignore_ascii_case(b"client_no_context_takeover") {
                    p.client_no_context_takeover = true;
                } else if key.eq_ignore_ascii_case(b"server_max_window_bits") {
                    p.server_max_window_bits = Some(bits.unwrap_or(15));
                } else if key.eq_ignore_ascii_case(b"client_max_window_bits") {
                    p.client_max_window_bits = Some(bits.unwrap_or(15));
                }
            }
            Some(p)
        })
    }

    /// The permessage-deflate parameters in a response's header fields (every
    /// `sec-websocket-extensions` field is considered).
    pub fn from_headers(headers: &Headers) -> Option<Self> {
        headers
            .get_all(b"sec-websocket-extensions")
            .find_map(DeflateParams::from_extensions)
    }

    /// Whether the side sending in `dir` resets its compressor per message.
    pub fn no_context_takeover(&self, dir: Direction) -> bool {
        match dir {
            Direction::ClientToServer => self.client_no_context_takeover,
            Direction::ServerToClient => self.server_no_context_takeover,
        }
    }
}

fn window_bits(v: &[u8]) -> Option<u8> {
    let s = std::str::from_utf8(v).ok()?;
    let n: u8 = s.parse().ok()?;
    (8..=15).contains(&n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_extension_headers() {
        assert_eq!(
            DeflateParams::from_extensions(b"permessage-deflate"),
            Some(DeflateParams::default())
        );
        let p = DeflateParams::from_extensions(
            b"x-foo, permessage-deflate; server_no_context_takeover; client_max_window_bits=\"10\"",
        )
        .expect("negotiated");
        assert!(p.server_no_context_takeover && !p.client_no_context_takeover);
        assert_eq!(p.client_max_window_bits, Some(10));
        assert_eq!(p.server_max_window_bits, None);
        assert!(p.no_context_takeover(Direction::ServerToClient));
        assert_eq!(
            DeflateParams::from_extensions(b"x-webkit-deflate-frame"),
            None
        );
        let mut h = Headers::new();
        h.push(
            b"sec-websocket-extensions",
            b"PerMessage-Deflate; Client_No_Context_Takeover",
        );
        assert!(
            DeflateParams::from_headers(&h)
                .expect("negotiated")
                .client_no_context_takeover
        );
    }
}
