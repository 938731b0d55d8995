//! gRPC message framing: length-prefixed messages in HTTP/2 bodies.
//!
//! A gRPC body (`content-type: application/grpc`, `application/grpc+proto`,
//! ...) is a sequence of messages, each a 1-byte flag (bit 0: compressed
//! with the `grpc-encoding` of its side), a 4-byte big-endian length and
//! the message. gRPC-Web (`application/grpc-web`, `application/grpc-web+proto`)
//! uses the same framing, with flag bit 7 marking a frame of trailers.
//! `application/grpc-web-text` (base64) is not split.

use crate::compression::Decoded;

/// One length-prefixed message, located in the body it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcMessage {
    /// Flag bit 0: compressed with the side's `grpc-encoding`.
    pub compressed: bool,
    /// gRPC-Web flag bit 7: this frame carries trailers (`name: value` lines).
    pub trailers: bool,
    /// The declared length.
    pub length: u32,
    /// Where the message starts in the framed bytes (see
    /// [`crate::Body::grpc_payload`]).
    pub offset: usize,
    /// Bytes of the message present from `offset` (less than `length` when
    /// the body was cut).
    pub kept: usize,
    /// The message with its `grpc-encoding` removed, for compressed
    /// messages whose encoding is decodable (gzip, deflate, zstd; `snappy`
    /// is not).
    pub decoded: Option<Decoded>,
}

/// Why splitting a body into messages stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum GrpcError {
    /// A flag byte with reserved bits set: not gRPC framing (or lost sync).
    #[error("gRPC message flag {0:#04x} has reserved bits set")]
    BadFlags(u8),
    /// The body ended inside a message prefix or message although it was
    /// complete.
    #[error("gRPC body ends inside a message")]
    Truncated,
}

/// A body split into gRPC messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrpcMessages {
    /// The messages, at most `Limits::grpc_max_messages`.
    pub messages: Vec<GrpcMessage>,
    /// Further messages not listed because of `Limits::grpc_max_messages`.
    pub dropped: u64,
    /// Why splitting stopped before the end of the body, if it did.
    pub error: Option<GrpcError>,
}

/// Whether a `content-type` value is a binary gRPC or gRPC-Web type.
pub fn is_grpc_content_type(v: &[u8]) -> bool {
    let v = v
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let strip = |v: &'_ [u8], p: &[u8]| -> Option<usize> {
        (v.len() >= p.len() && v[..p.len()].eq_ignore_ascii_case(p)).then_some(p.len())
    };
    let Some(n) = strip(v, b"application/grpc") else {
        return false;
    };
    let mut rest = &v[n..];
    if let Some(n) = strip(rest, b"-web") {
        rest = &rest[n..];
    }
    rest.is_empty() || rest.starts_with(b"+")
}

/// Splits `body` into messages. `complete` says whether `body` is the whole
/// body (then a cut message is [`GrpcError::Truncated`]); `web` allows the
/// gRPC-Web trailers flag; at most `max` messages are listed.
pub fn split(body: &[u8], complete: bool, web: bool, max: usize) -> GrpcMessages {
    let mut out = GrpcMessages::default();
    let mut pos = 0usize;
    let allowed = if web { 0x81 } else { 0x01 };
    while pos < body.len() {
        let Some(prefix) = body.get(pos..pos + 5) else {
            if complete {
                out.error = Some(GrpcError::Truncated);
            }
            break;
        };
        let flags = prefix[0];
        if flags & !allowed != 0 {
            out.error = Some(GrpcError::BadFlags(flags));
            break;
        }
        let length = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
        let offset = pos + 5;
        let end = offset.saturating_add(length as usize);
        let kept = end.min(body.len()) - offset;
        if out.messages.len() < max {
            out.messages.push(GrpcMessage {
                compressed: flags & 0x01 != 0,
                trailers: flags & 0x80 != 0,
                length,
                offset,
                kept,
                decoded: None,
            });
        } else {
            out.dropped += 1;
        }
        if end > body.len() {
            if complete {
                out.error = Some(GrpcError::Truncated);
            }
            break;
        }
        pos = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        for ok in [
            &b"application/grpc"[..],
            b"application/grpc+proto",
            b"Application/GRPC+json; charset=utf-8",
            b"application/grpc-web",
            b"application/grpc-web+proto",
        ] {
            assert!(is_grpc_content_type(ok), "{ok:?}");
        }
        for no in [
            &b"application/grpc-web-text"[..],
            b"application/grpcx",
            b"application/json",
        ] {
            assert!(!is_grpc_content_type(no), "{no:?}");
        }
    }

    #[test]
    fn splits_messages() {
        let mut body = vec![0, 0, 0, 0, 3, b'a', b'b', b'c', 1, 0, 0, 0, 0];
        body.extend([0, 0, 0, 0, 10, b'x']);
        let m = split(&body, false, false, 16);
        assert_eq!(m.messages.len(), 3);
        assert_eq!((m.messages[0].offset, m.messages[0].kept), (5, 3));
        assert!(m.messages[1].compressed && m.messages[1].length == 0);
        assert_eq!((m.messages[2].length, m.messages[2].kept), (10, 1));
        assert_eq!(m.error, None);
        assert_eq!(
            split(&body, true, false, 16).error,
            Some(GrpcError::Truncated)
        );
        let m = split(&body, false, false, 1);
        assert_eq!((m.messages.len(), m.dropped), (1, 2));
        assert_eq!(
            split(&[0x80, 0, 0, 0, 0], true, false, 4).error,
            Some(GrpcError::BadFlags(0x80))
        );
        let web = split(&[0x80, 0, 0, 0, 0], true, true, 4);
        assert!(web.messages[0].trailers && web.error.is_none());
        assert_eq!(
            split(&[0, 0], true, false, 4).error,
            Some(GrpcError::Truncated)
        );
    }
}
