//! What the HTTP decoders produce: [`Event`]s carrying [`Transaction`]s.

use crate::Headers;
use crate::compression::Decoded;
use crate::grpc::{GrpcMessage, GrpcMessages};
use crate::websocket::WsMessage;

/// Something a connection decoder produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A request and its response (either may be partial; see [`Transaction::end`]).
    Transaction(Box<Transaction>),
    /// An HTTP/1 connection switched protocols (101 Switching Protocols, or
    /// a successful CONNECT). The transaction that did it was emitted just
    /// before. [`Http1Decoder`](crate::http1::Http1Decoder) ignores (and
    /// counts as dropped) any bytes fed after this: its caller hands them,
    /// starting with the data below, to a decoder for the new protocol.
    /// [`ConnectionDecoder`](crate::ConnectionDecoder) does that itself for
    /// `h2c` and `websocket` (then emitting [`Event::WebSocket`]s).
    Upgrade {
        /// The transaction that switched.
        stream_id: u32,
        /// The `upgrade` header value, lower-cased (`websocket`, `h2c`, ...);
        /// empty for a CONNECT tunnel.
        protocol: Vec<u8>,
        /// Client bytes received after the request, already in the new protocol.
        client_data: Vec<u8>,
        /// Server bytes received after the 101 response head, in the new protocol.
        server_data: Vec<u8>,
    },
    /// A WebSocket message (or control frame), decoded after an HTTP/1.1
    /// upgrade or on an HTTP/2 extended CONNECT stream (RFC 8441).
    WebSocket(WsMessage),
}

/// The application protocol of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/1.0 or HTTP/1.1.
    Http1,
    /// HTTP/2.
    Http2,
}

impl Protocol {
    /// The protocol a TLS ALPN identifier (RFC 7301) names, when weft
    /// decodes it: `h2` -> HTTP/2; `http/1.1`, `http/1.0` -> HTTP/1. Any
    /// other identifier (`h3`, `acme-tls/1`, `imap`, ...) gives `None`: the
    /// caller then detects the protocol from the bytes.
    pub fn from_alpn(id: &[u8]) -> Option<Protocol> {
        match id {
            b"h2" => Some(Protocol::Http2),
            b"http/1.1" | b"http/1.0" => Some(Protocol::Http1),
            _ => None,
        }
    }
}

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both the request and the response were seen to their end.
    Complete,
    /// The stream was reset (HTTP/2 RST_STREAM) by the given side.
    Reset {
        /// Who sent the RST_STREAM.
        by: crate::Direction,
        /// Its error code.
        error_code: u32,
    },
    /// The peer's GOAWAY said the stream was not processed.
    GoAway {
        /// The GOAWAY error code.
        error_code: u32,
    },
    /// The connection ended (or [`finish`](crate::http2::Http2Decoder::finish)
    /// was called) before the transaction completed.
    ConnectionClosed,
    /// Dropped to make room: the decoder's stream or pipeline limit was reached.
    Evicted,
    /// The decoder lost track of the byte stream (gap, unparseable data).
    Desync,
}

/// A message body, capped at `Limits::max_body_size`, with what was
/// learned from it when its transaction was emitted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Body {
    /// The bytes kept (at most `Limits::max_body_size`), as sent (no transfer
    /// or content decoding except HTTP/1 chunked framing, which is removed).
    pub data: Vec<u8>,
    /// The real size of the body seen on the wire (framing removed),
    /// including bytes not kept.
    pub size: u64,
    /// Some bytes were not kept (`size > data.len()`).
    pub truncated: bool,
    /// The body with its `Content-Encoding` (and HTTP/1 transfer codings
    /// other than chunked) removed, decoded from `data`; `None` when the
    /// message declares no coding, the body is empty, or decoding is off
    /// (`Limits::max_decoded_body_size = 0`). Partial when `data` is
    /// (see [`Decoded::error`]).
    pub decoded: Option<Decoded>,
    /// The content type recognised from the first bytes of
    /// [`content`](Self::content) by [`crate::sniff`] (whatever the
    /// `content-type` header claims).
    pub sniffed_type: Option<&'static str>,
    /// For `application/grpc*` bodies: the length-prefixed messages in
    /// [`content`](Self::content).
    pub grpc: Option<Box<GrpcMessages>>,
}

impl Body {
    /// The body as meant to be read: the decoded bytes when a content coding
    /// was removed (even partly), else `data`.
    pub fn content(&self) -> &[u8] {
        match &self.decoded {
            Some(d) if d.error.is_none() || d.size > 0 => &d.data,
            _ => &self.data,
        }
    }

    /// The bytes of gRPC message `m` (one of [`grpc`](Self::grpc)'s) present
    /// in the body, still compressed if `m.compressed` (see `m.decoded`).
    pub fn grpc_payload(&self, m: &GrpcMessage) -> &[u8] {
        let c = self.content();
        c.get(m.offset..m.offset.saturating_add(m.kept).min(c.len()))
            .unwrap_or_default()
    }

    /// Before the first byte of a body whose sender declared `declared`
    /// bytes: room for them at once (at most `max`, and at most
    /// [`PRESIZE_MAX`]: a declared size is not trusted further), instead of
    /// regrowing and copying the buffer per piece.
    pub(crate) fn presize(&mut self, declared: u64, max: usize) {
        if self.data.is_empty() {
            let want = usize::try_from(declared)
                .unwrap_or(usize::MAX)
                .min(max)
                .min(PRESIZE_MAX);
            self.data.reserve_exact(want);
        }
    }

    /// Makes this body equal to a new one, keeping a small `data` buffer's
    /// capacity (for [`crate::recycle`]). Every field is named: a new one
    /// does not compile until it is reset here.
    pub(crate) fn reset(&mut self, keep: usize) {
        let Body {
            data,
            size,
            truncated,
            decoded,
            sniffed_type,
            grpc,
        } = self;
        data.clear();
        if data.capacity() > keep {
            *data = Vec::new();
        }
        *size = 0;
        *truncated = false;
        *decoded = None;
        *sniffed_type = None;
        *grpc = None;
    }

    /// Appends `bytes`, keeping at most `max` bytes in total. Returns how many
    /// bytes were not kept.
    pub(crate) fn append(&mut self, bytes: &[u8], max: usize) -> usize {
        self.size += bytes.len() as u64;
        let room = max.saturating_sub(self.data.len());
        let keep = room.min(bytes.len());
        self.data.extend_from_slice(&bytes[..keep]);
        let dropped = bytes.len() - keep;
        if dropped > 0 {
            self.truncated = true;
        }
        dropped
    }

    /// Counts `n` body bytes the capture did not copy (a hole past the body
    /// bound, see `ConnectionDecoder::skip`): part of the real size, not
    /// kept, so the body is cut as by [`append`](Self::append) past `max`.
    pub(crate) fn skip(&mut self, n: u64) {
        if n > 0 {
            self.size = self.size.saturating_add(n);
            self.truncated = true;
        }
    }
}

/// Most bytes reserved for a body up front from its declared length; past
/// it the body grows as its bytes arrive (a peer's claim alone must not
/// make weft allocate).
pub(crate) const PRESIZE_MAX: usize = 256 * 1024;

/// One request or response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Header fields, names lower-case, pseudo-header fields first. HTTP/2
    /// keeps its pseudo-header fields as received; HTTP/1 gets synthesised
    /// ones (`:method`, `:path` for requests, `:status` for responses).
    pub headers: Headers,
    /// The body.
    pub body: Body,
    /// Trailer fields (HTTP/2 trailing HEADERS, HTTP/1 chunked trailers).
    pub trailers: Headers,
    /// Some part of this message was observed.
    pub seen: bool,
    /// The end of the message was observed.
    pub complete: bool,
    /// Header fields are missing: the HPACK decoder joined late or failed
    /// (see `Counters::hpack_*`).
    pub headers_incomplete: bool,
    /// Header fields were dropped by `Limits::max_header_list_size` (or
    /// `Limits::h1_max_headers`).
    pub headers_truncated: bool,
    /// Bytes of this message were lost (capture gap or resynchronisation).
    pub data_lost: bool,
    /// Caller's clock (see `ConnectionDecoder::feed_at`) when the first bytes
    /// of this message were fed; 0 when not known.
    pub first_ns: u64,
    /// Caller's clock when the message was complete (or the transaction was
    /// emitted incomplete); 0 when not known.
    pub last_ns: u64,
}

impl Message {
    /// Makes this message equal to a new one, handing its header and
    /// trailer buffers to `keep` and keeping a small body buffer (for
    /// [`crate::recycle`]). Every field is named: a new one does not
    /// compile until it is reset here.
    #[inline]
    pub(crate) fn reset(&mut self, body_keep: usize, keep: &mut impl FnMut(Vec<u8>)) {
        let Message {
            headers,
            body,
            trailers,
            seen,
            complete,
            headers_incomplete,
            headers_truncated,
            data_lost,
            first_ns,
            last_ns,
        } = self;
        keep(std::mem::take(headers).into_buffer());
        if !trailers.is_empty() || trailers.bytes_len() > 0 {
            keep(std::mem::take(trailers).into_buffer());
        }
        *trailers = Headers::default();
        body.reset(body_keep);
        *seen = false;
        *complete = false;
        *headers_incomplete = false;
        *headers_truncated = false;
        *data_lost = false;
        *first_ns = 0;
        *last_ns = 0;
    }

    /// Record `now` as first/last observation time where still unset.
    pub fn stamp(&mut self, now: u64) {
        if self.seen && self.first_ns == 0 {
            self.first_ns = now;
        }
        if self.complete && self.last_ns == 0 {
            self.last_ns = now;
        }
    }
}

impl Transaction {
    /// Stamp both messages with `now` (see [`Message::stamp`]).
    pub fn stamp(&mut self, now: u64) {
        self.request.stamp(now);
        self.response.stamp(now);
    }

    /// Time from the first request bytes to the end of the response, when
    /// both are known.
    pub fn duration_ns(&self) -> Option<u64> {
        let start = self.request.first_ns;
        let end = self.response.last_ns.max(self.response.first_ns);
        (start != 0 && end >= start).then(|| end - start)
    }
}

/// A request/response exchange: an HTTP/2 stream or an HTTP/1 request and
/// its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// HTTP/1 or HTTP/2.
    pub protocol: Protocol,
    /// HTTP/2 stream id; for HTTP/1, the 1-based position of the request on
    /// the connection.
    pub stream_id: u32,
    /// The request (for a pushed stream: the promised request).
    pub request: Message,
    /// The final response.
    pub response: Message,
    /// Informational (1xx) responses that preceded the final one.
    pub interim: Vec<Headers>,
    /// For a server push: the stream whose PUSH_PROMISE created this one.
    pub promised_by: Option<u32>,
    /// How it ended.
    pub end: End,
    /// HTTP/1: the minor version of the exchange (`HTTP/1.x` of the request
    /// line, lowered by the status line's when that is lower); `None` for
    /// HTTP/2 and when no start line was seen.
    pub http1_minor: Option<u8>,
}

impl Transaction {
    pub(crate) fn new(protocol: Protocol, stream_id: u32) -> Self {
        Transaction {
            protocol,
            stream_id,
            request: Message::default(),
            response: Message::default(),
            interim: Vec::new(),
            promised_by: None,
            end: End::Complete,
            http1_minor: None,
        }
    }

    /// Makes this transaction equal to `Transaction::new(protocol,
    /// stream_id)`, handing its header buffers to `keep` (for
    /// [`crate::recycle`]). Every field is named: a new one does not compile
    /// until it is reset here.
    #[inline]
    pub(crate) fn reset(&mut self, body_keep: usize, keep: &mut impl FnMut(Vec<u8>)) {
        let Transaction {
            protocol: _,
            stream_id: _,
            request,
            response,
            interim,
            promised_by,
            end,
            http1_minor,
        } = self;
        request.reset(body_keep, keep);
        response.reset(body_keep, keep);
        if interim.capacity() > 0 {
            *interim = Vec::new();
        }
        *promised_by = None;
        *end = End::Complete;
        *http1_minor = None;
    }

    /// The HTTP version as ECS `http.version` spells it: `1.0`, `1.1`
    /// (also when the start lines were not seen) or `2`.
    pub fn version(&self) -> &'static str {
        match (self.protocol, self.http1_minor) {
            (Protocol::Http2, _) => "2",
            (Protocol::Http1, Some(0)) => "1.0",
            (Protocol::Http1, _) => "1.1",
        }
    }

    /// `:method` of the request.
    pub fn method(&self) -> Option<&[u8]> {
        self.request.headers.get(b":method")
    }

    /// `:scheme` of the request.
    pub fn scheme(&self) -> Option<&[u8]> {
        self.request.headers.get(b":scheme")
    }

    /// `:authority` of the request (HTTP/1: the `host` header).
    pub fn authority(&self) -> Option<&[u8]> {
        self.request
            .headers
            .get(b":authority")
            .or_else(|| self.request.headers.get(b"host"))
    }

    /// `:path` of the request (HTTP/1: the request target).
    pub fn path(&self) -> Option<&[u8]> {
        self.request.headers.get(b":path")
    }

    /// The final response status.
    pub fn status(&self) -> Option<u16> {
        parse_status(self.response.headers.get(b":status")?)
    }

    /// Whether both messages were seen whole, with all their header fields.
    pub fn is_complete(&self) -> bool {
        self.end == End::Complete
            && [&self.request, &self.response]
                .iter()
                .all(|m| m.seen && m.complete && !m.headers_incomplete && !m.data_lost)
    }
}

/// Parses a three-digit status code.
pub(crate) fn parse_status(v: &[u8]) -> Option<u16> {
    match v {
        [a, b, c] if v.iter().all(u8::is_ascii_digit) => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}
