//! What the console and the JSON output share about `Event::Http`: which end
//! is the client, the URL, and the redacted form of header values and bodies.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::ops::Range;

use weft_core::event::{Endpoint, Http, Role};
use weft_core::redact::{self, MASK};
use weft_proto::{Body, End, Field, Message, Protocol, Transaction};

/// The HTTP client and server ends of the connection, when it is known.
///
/// The decoder knows which side sent the request, so the client is this
/// process' end unless it served the request; with `Role::Unknown` the local
/// end is the client, as in the capture events.
pub(crate) fn endpoints(h: &Http) -> Option<(Endpoint, Endpoint)> {
    client_server(h.flow.as_ref(), h.role)
}

/// The client and server ends of `flow` for a process in `role` (the same
/// rule as [`endpoints`], for HTTP and WebSocket events alike).
pub(crate) fn client_server(
    flow: Option<&weft_core::event::Flow>,
    role: Role,
) -> Option<(Endpoint, Endpoint)> {
    let flow = flow?;
    Some(match role {
        Role::Server => (flow.remote, flow.local),
        Role::Client | Role::Unknown => (flow.local, flow.remote),
    })
}

/// The name of a WebSocket message's type, as both outputs show it.
pub(crate) fn ws_opcode_name(op: weft_proto::websocket::Opcode) -> &'static str {
    use weft_proto::websocket::Opcode;
    match op {
        Opcode::Text => "text",
        Opcode::Binary => "binary",
        Opcode::Close => "close",
        Opcode::Ping => "ping",
        Opcode::Pong => "pong",
        _ => "continuation",
    }
}

/// The duration of the exchange, when known.
pub(crate) fn duration_ns(h: &Http) -> Option<u64> {
    h.duration_ns.or_else(|| h.transaction.duration_ns())
}

/// `h1` / `h1.0` / `h2`, for the console.
pub(crate) fn short_version(t: &Transaction) -> &'static str {
    match (t.protocol, t.version()) {
        (Protocol::Http1, "1.0") => "h1.0",
        (Protocol::Http1, _) => "h1",
        (Protocol::Http2, _) => "h2",
    }
}

/// `weft.http.end`.
pub(crate) fn end_name(end: End) -> &'static str {
    match end {
        End::Complete => "complete",
        End::Reset { .. } => "reset",
        End::GoAway { .. } => "goaway",
        End::ConnectionClosed => "connection_closed",
        End::Evicted => "evicted",
        End::Desync => "desync",
    }
}

/// `client` / `server`: who sent an HTTP/2 RST_STREAM.
pub(crate) fn direction_side(d: weft_proto::Direction) -> &'static str {
    match d {
        weft_proto::Direction::ClientToServer => "client",
        weft_proto::Direction::ServerToClient => "server",
    }
}

/// `client` / `server` / `unknown`.
pub(crate) fn role_name(r: Role) -> &'static str {
    match r {
        Role::Client => "client",
        Role::Server => "server",
        Role::Unknown => "unknown",
    }
}

/// The status codes of the interim (1xx) responses, in order.
pub(crate) fn interim_statuses(t: &Transaction) -> impl Iterator<Item = u16> + '_ {
    t.interim
        .iter()
        .filter_map(|h| parse_status(h.get(b":status")?))
}

fn parse_status(v: &[u8]) -> Option<u16> {
    match v {
        [a, b, c] if v.iter().all(u8::is_ascii_digit) => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

/// A header field's value as it may be shown: masked by
/// [`redact::mask_header_value`] when redacting, and masked whole when the
/// sender marked the field never-to-be-indexed (HPACK's own "this is
/// sensitive") and the name has no rule of its own.
pub(crate) fn shown_value<'a>(f: &Field<'a>, redact: bool) -> Cow<'a, [u8]> {
    if !redact {
        return Cow::Borrowed(f.value);
    }
    if f.sensitive && !f.is_pseudo() && !f.value.is_empty() && !redact::is_credential_header(f.name)
    {
        return Cow::Owned(MASK.to_vec());
    }
    redact::mask_header_value(f.name, f.value)
}

/// The body of `m` as it may be shown: its content ([`Body::content`]: with
/// the content coding removed when the decoder could), with credentials in
/// form and JSON bodies masked when redacting ([`redact::redact_body`]).
/// Only content that is text is touched: a body still compressed is shown
/// as it is.
pub(crate) fn shown_body(m: &Message, redact: bool) -> Cow<'_, [u8]> {
    let content = m.body.content();
    if !redact || text_prefix(content, true).is_none() {
        return Cow::Borrowed(content);
    }
    redact::redact_body(m.headers.get(b"content-type"), content)
}

/// Whether [`Body::content`] is the decoded body (a content coding was
/// removed), rather than the bytes as sent.
pub(crate) fn is_decoded(b: &Body) -> bool {
    b.decoded
        .as_ref()
        .is_some_and(|d| !d.data.is_empty() && std::ptr::eq(b.content(), d.data.as_slice()))
}

/// Bytes of the content that weft did not keep: the real (decoded, when
/// decoded) size minus what is there.
pub(crate) fn content_not_kept(b: &Body) -> u64 {
    match &b.decoded {
        Some(d) if is_decoded(b) => d.size.saturating_sub(d.data.len() as u64),
        _ => b.size.saturating_sub(b.data.len() as u64),
    }
}

/// Whether [`Body::content`] is not the whole body: cut by a body limit, or
/// decoding stopped early.
pub(crate) fn content_is_partial(b: &Body) -> bool {
    match &b.decoded {
        Some(d) if is_decoded(b) => d.truncated || b.truncated,
        _ => b.truncated,
    }
}

/// `data` as text when it is valid UTF-8; when `cut` (the data was cut
/// short) also its valid prefix if only an incomplete character at the end
/// spoils it.
pub(crate) fn text_prefix(data: &[u8], cut: bool) -> Option<&str> {
    match std::str::from_utf8(data) {
        Ok(s) => Some(s),
        Err(e) if cut && e.error_len().is_none() => {
            std::str::from_utf8(&data[..e.valid_up_to()]).ok()
        }
        Err(_) => None,
    }
}

/// The media type of a message's `content-type` (parameters removed), when
/// present and not empty.
pub(crate) fn mime_type(m: &Message) -> Option<&[u8]> {
    m.headers
        .get(b"content-type")
        .map(redact::mime_type)
        .filter(|m| !m.is_empty())
}

/// The request's URL: `https://` + authority + request target, with its
/// parts. Built in one buffer; every part is a range of it.
pub(crate) struct HttpUrl {
    buf: Vec<u8>,
    /// `buf` starts with `https://` + authority.
    authority: Option<Range<usize>>,
    path: Option<Range<usize>>,
    query: Option<Range<usize>>,
    fragment: Option<Range<usize>>,
}

const SCHEME: &[u8] = b"https://";

impl HttpUrl {
    /// The authority is `:authority` (HTTP/2) or `host` (HTTP/1); failing
    /// that the server's address; for an absolute-form target
    /// (`GET https://host/path`, to a proxy) the target's own. A CONNECT has
    /// no path: its target is the authority. With `redact`, the query and
    /// fragment go through [`redact::redact_query`] and a password in the
    /// authority's userinfo is masked. Empty when the request was not seen.
    #[cfg(test)]
    pub(crate) fn new(t: &Transaction, server: Option<Endpoint>, redact: bool) -> Self {
        Self::with_scheme(t, server, redact, true)
    }

    /// [`HttpUrl::new`], `http://` when the connection is not TLS
    /// (plaintext captured from the socket syscalls).
    pub(crate) fn with_scheme(
        t: &Transaction,
        server: Option<Endpoint>,
        redact: bool,
        tls: bool,
    ) -> Self {
        if !t.request.seen {
            return HttpUrl {
                buf: Vec::new(),
                authority: None,
                path: None,
                query: None,
                fragment: None,
            };
        }
        let connect = t
            .method()
            .is_some_and(|m| m.eq_ignore_ascii_case(b"CONNECT"));
        let header_authority = t.authority().filter(|a| !a.is_empty());
        let target = t.path().filter(|p| !p.is_empty());
        let target = match target {
            Some(p) if redact => Some(redact::redact_query(p)),
            Some(p) => Some(Cow::Borrowed(p)),
            None => None,
        };

        let mut buf = Vec::with_capacity(64);
        let (authority, rest): (Option<Cow<'_, [u8]>>, Option<&[u8]>) = match &target {
            _ if connect => (
                header_authority
                    .map(Cow::Borrowed)
                    .or_else(|| target.clone()),
                None,
            ),
            Some(p) if absolute_form(p).is_some() => {
                let after = absolute_form(p).unwrap_or(0);
                let end = p[after..]
                    .iter()
                    .position(|&b| matches!(b, b'/' | b'?' | b'#'))
                    .map_or(p.len(), |i| after + i);
                (Some(Cow::Borrowed(&p[after..end])), Some(&p[end..]))
            }
            _ => (
                header_authority.map(Cow::Borrowed).or_else(|| {
                    server.map(|ep| {
                        Cow::Owned(
                            SocketAddr::new(ep.ip.to_canonical(), ep.port)
                                .to_string()
                                .into_bytes(),
                        )
                    })
                }),
                target.as_deref(),
            ),
        };
        let authority = authority.map(|a| {
            buf.extend_from_slice(if tls { SCHEME } else { b"http://" });
            let start = buf.len();
            push_authority(&mut buf, &a, redact);
            start..buf.len()
        });
        let (mut path, mut query, mut fragment) = (None, None, None);
        if let Some(rest) = rest {
            let start = buf.len();
            buf.extend_from_slice(rest);
            let q = rest.iter().position(|&b| b == b'?');
            let f = rest.iter().position(|&b| b == b'#');
            let path_end = q.or(f).map_or(rest.len(), |i| i.min(f.unwrap_or(i)));
            path = Some(start..start + path_end);
            if let Some(q) = q.filter(|&q| f.is_none_or(|f| q < f)) {
                query = Some(start + q + 1..start + f.unwrap_or(rest.len()));
            }
            if let Some(f) = f {
                fragment = Some(start + f + 1..start + rest.len());
            }
        }
        HttpUrl {
            buf,
            authority,
            path,
            query,
            fragment,
        }
    }

    /// `url.full`: present when the authority is known.
    pub(crate) fn full(&self) -> Option<&[u8]> {
        self.authority.as_ref().map(|_| &self.buf[..])
    }

    /// What to show for the request: the full URL, else the request target.
    pub(crate) fn display(&self) -> Option<&[u8]> {
        (!self.buf.is_empty()).then_some(&self.buf[..])
    }

    /// `url.domain`: the authority without userinfo and port. An IPv6
    /// literal keeps its brackets, as ECS asks.
    pub(crate) fn domain(&self) -> Option<&[u8]> {
        let (host, _) = split_host_port(self.host_port()?);
        (!host.is_empty()).then_some(host)
    }

    /// `url.port`, when the authority has one.
    pub(crate) fn port(&self) -> Option<u16> {
        let (_, port) = split_host_port(self.host_port()?);
        std::str::from_utf8(port?).ok()?.parse().ok()
    }

    fn host_port(&self) -> Option<&[u8]> {
        let a = &self.buf[self.authority.clone()?];
        Some(match a.iter().rposition(|&b| b == b'@') {
            Some(at) => &a[at + 1..],
            None => a,
        })
    }

    pub(crate) fn path(&self) -> Option<&[u8]> {
        self.path.clone().map(|r| &self.buf[r])
    }

    /// `url.query`, without the `?`; empty (not absent) for a bare `?`.
    pub(crate) fn query(&self) -> Option<&[u8]> {
        self.query.clone().map(|r| &self.buf[r])
    }

    pub(crate) fn fragment(&self) -> Option<&[u8]> {
        self.fragment.clone().map(|r| &self.buf[r])
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// For `http://...` / `https://...` (any case), the index after `://`.
pub(crate) fn absolute_form(target: &[u8]) -> Option<usize> {
    [&b"https://"[..], b"http://"]
        .into_iter()
        .find(|s| target.len() >= s.len() && target[..s.len()].eq_ignore_ascii_case(s))
        .map(<[u8]>::len)
}

/// Appends the authority, masking the password of `user:password@` when
/// redacting.
fn push_authority(buf: &mut Vec<u8>, a: &[u8], redact: bool) {
    if redact
        && let Some(at) = a.iter().rposition(|&b| b == b'@')
        && let Some(colon) = a[..at].iter().position(|&b| b == b':')
        && colon + 1 < at
    {
        buf.extend_from_slice(&a[..=colon]);
        buf.extend_from_slice(MASK);
        buf.extend_from_slice(&a[at..]);
    } else {
        buf.extend_from_slice(a);
    }
}

/// `host:443` -> (`host`, `443`); `[::1]:8443` -> (`[::1]`, `8443`); `host`
/// -> (`host`, none). A "port" that is not all digits is part of the host.
pub(crate) fn split_host_port(hp: &[u8]) -> (&[u8], Option<&[u8]>) {
    let search_from = if hp.first() == Some(&b'[') {
        match hp.iter().position(|&b| b == b']') {
            Some(close) => close,
            None => return (hp, None),
        }
    } else {
        0
    };
    match hp[search_from..].iter().rposition(|&b| b == b':') {
        Some(i) => {
            let colon = search_from + i;
            let port = &hp[colon + 1..];
            if !port.is_empty() && port.iter().all(u8::is_ascii_digit) {
                (&hp[..colon], Some(port))
            } else if port.is_empty() {
                (&hp[..colon], None)
            } else {
                (hp, None)
            }
        }
        None => (hp, None),
    }
}

/// `850 µs`, `1.5 ms`, `293 ms`, `12.3 s`.
pub(crate) fn push_duration(out: &mut String, ns: u64) {
    use std::fmt::Write as _;
    // Writing to a String cannot fail.
    let _ = if ns < 1_000_000 {
        write!(out, "{} µs", ns / 1_000)
    } else if ns < 10_000_000 {
        write!(out, "{}.{} ms", ns / 1_000_000, ns / 100_000 % 10)
    } else if ns < 10_000_000_000 {
        write!(out, "{} ms", ns / 1_000_000)
    } else {
        write!(out, "{}.{} s", ns / 1_000_000_000, ns / 100_000_000 % 10)
    };
}

#[cfg(test)]
mod tests {
    use weft_proto::Headers;

    use super::*;

    fn tx(headers: &[(&str, &str)]) -> Transaction {
        let mut t = crate::test_support::h1_transaction();
        t.request.headers = headers.iter().copied().collect::<Headers>();
        t
    }

    fn server() -> Option<Endpoint> {
        Some(Endpoint {
            ip: "10.0.0.9".parse().expect("IP literal"),
            port: 443,
        })
    }

    fn s(b: Option<&[u8]>) -> Option<&str> {
        b.map(|b| std::str::from_utf8(b).expect("UTF-8 in tests"))
    }

    #[test]
    fn url_parts() {
        let t = tx(&[
            (":method", "GET"),
            (":path", "/a/b?x=1&token=t#frag"),
            ("host", "api.example:8443"),
        ]);
        let u = HttpUrl::new(&t, server(), true);
        assert_eq!(
            s(u.full()),
            Some("https://api.example:8443/a/b?x=1&token=[REDACTED]#frag")
        );
        assert_eq!(s(u.domain()), Some("api.example"));
        assert_eq!(u.port(), Some(8443));
        assert_eq!(s(u.path()), Some("/a/b"));
        assert_eq!(s(u.query()), Some("x=1&token=[REDACTED]"));
        assert_eq!(s(u.fragment()), Some("frag"));
        let u = HttpUrl::new(&t, server(), false);
        assert_eq!(s(u.query()), Some("x=1&token=t"));
    }

    #[test]
    fn url_without_host_uses_the_server_address() {
        let t = tx(&[(":method", "GET"), (":path", "/?")]);
        let u = HttpUrl::new(&t, server(), true);
        assert_eq!(s(u.full()), Some("https://10.0.0.9:443/?"));
        assert_eq!(s(u.domain()), Some("10.0.0.9"));
        assert_eq!(s(u.query()), Some(""));
        assert_eq!(u.fragment(), None);
        let v6 = Some(Endpoint {
            ip: "2001:db8::1".parse().expect("IPv6 literal"),
            port: 8443,
        });
        let u = HttpUrl::new(&t, v6, true);
        assert_eq!(s(u.full()), Some("https://[2001:db8::1]:8443/?"));
        assert_eq!(s(u.domain()), Some("[2001:db8::1]"));
        assert_eq!(u.port(), Some(8443));
        // Nothing known about the server: no full URL, the target still shows.
        let u = HttpUrl::new(&t, None, true);
        assert_eq!(u.full(), None);
        assert_eq!(u.domain(), None);
        assert_eq!(s(u.display()), Some("/?"));
        assert_eq!(s(u.path()), Some("/"));
    }

    #[test]
    fn url_connect_and_absolute_form() {
        let t = tx(&[(":method", "CONNECT"), (":path", "db.internal:5432")]);
        let u = HttpUrl::new(&t, server(), true);
        assert_eq!(s(u.full()), Some("https://db.internal:5432"));
        assert_eq!(u.path(), None);
        assert_eq!(u.port(), Some(5432));

        let t = tx(&[
            (":method", "GET"),
            (":path", "HTTP://u:pw@proxy.example/x?sig=1"),
            ("host", "other"),
        ]);
        let u = HttpUrl::new(&t, server(), true);
        assert_eq!(
            s(u.full()),
            Some("https://u:[REDACTED]@proxy.example/x?sig=[REDACTED]")
        );
        assert_eq!(s(u.domain()), Some("proxy.example"));
        assert_eq!(u.port(), None);
        assert_eq!(s(u.path()), Some("/x"));

        let t = tx(&[(":method", "GET"), (":path", "https://h.example")]);
        let u = HttpUrl::new(&t, server(), true);
        assert_eq!(s(u.full()), Some("https://h.example"));
        assert_eq!(s(u.path()), Some(""));
    }

    #[test]
    fn host_port_edge_cases() {
        assert_eq!(split_host_port(b"h"), (&b"h"[..], None));
        assert_eq!(split_host_port(b"h:"), (&b"h"[..], None));
        assert_eq!(split_host_port(b"h:x1"), (&b"h:x1"[..], None));
        assert_eq!(split_host_port(b"[::1]"), (&b"[::1]"[..], None));
        assert_eq!(split_host_port(b"[::1"), (&b"[::1"[..], None));
        assert_eq!(
            split_host_port(b"[::1]:80"),
            (&b"[::1]"[..], Some(&b"80"[..]))
        );
        let t = tx(&[(":path", "/"), ("host", "h:99999")]);
        assert_eq!(HttpUrl::new(&t, None, true).port(), None);
    }

    #[test]
    fn text_prefix_allows_a_cut_character_only_when_cut() {
        assert_eq!(text_prefix(b"ab", false), Some("ab"));
        assert_eq!(text_prefix("aé".as_bytes()[..2].as_ref(), true), Some("a"));
        assert_eq!(text_prefix("aé".as_bytes()[..2].as_ref(), false), None);
        assert_eq!(text_prefix(b"a\xffb", true), None);
    }

    #[test]
    fn durations() {
        let d = |ns| {
            let mut s = String::new();
            push_duration(&mut s, ns);
            s
        };
        assert_eq!(d(850_000), "850 µs");
        assert_eq!(d(1_500_000), "1.5 ms");
        assert_eq!(d(9_999_999), "9.9 ms");
        assert_eq!(d(293_400_000), "293 ms");
        assert_eq!(d(12_345_000_000), "12.3 s");
    }
}
