//! The human-facing line: what `sudo weft` prints by default.
//!
//! One line per TLS call (capture events):
//!
//! ```text
//! 21:03:44.123 curl[1234] → 10.0.0.5:51234 -> 93.184.216.34:443 openssl 37 bytes: GET / HTTP/1.1\r\nHost: example.com\r\n\r\n
//! ```
//!
//! and for each decoded HTTP transaction one line for the request and one for
//! the response, optionally followed by their headers and bodies, indented:
//!
//! ```text
//! 21:03:44.123 curl[1234] → GET https://api.example/users h2 10.0.0.5:51234 -> 93.184.216.34:443 [stream 1]
//! 21:03:44.416 curl[1234] ← 200 https://api.example/users application/json 1247 bytes [293 ms] [stream 1]
//! ```
//!
//! Every byte that came from outside weft (payload, process name, URL,
//! headers, bodies) goes through [`crate::escape_untrusted`]; colour codes
//! are only ever weft's own.

mod packets;

use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;

use weft_core::event::{Direction, Endpoint, Event, Http, ProcessInfo, TlsData};
use weft_proto::{End, Headers, Message, Protocol};

use crate::datetime::push_clock_time;
use crate::escape::{Highlight, escape, escape_untrusted_into, plural_bytes};
use crate::http::{self, HttpUrl};
use crate::{Sink, SinkError};

/// Longest process name shown (kernel `comm` is 15 bytes; this is slack for
/// names read from elsewhere).
const MAX_NAME_BYTES: usize = 64;

/// A line buffer that grew past this for one huge event is shrunk back.
const KEEP_CAPACITY: usize = 64 * 1024;

const RESET: &str = "\x1b[0m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const GREEN: &str = "\x1b[32m";
const CYAN: &str = "\x1b[36m";
const MAGENTA: &str = "\x1b[35m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[31m";

/// Longest method shown (anything longer is not a real method).
const MAX_METHOD_BYTES: usize = 32;
/// Longest URL shown on a request or response line.
const MAX_URL_BYTES: usize = 2048;
/// Longest header name shown.
const MAX_HEADER_NAME_BYTES: usize = 256;
/// Indentation of header, body and hexdump lines under their line.
const INDENT: &str = "    ";
/// Escapes inside the payload are dimmed so `\r\n` recedes behind the text.
const ESCAPE_HIGHLIGHT: Highlight = Highlight {
    on: DIM,
    off: "\x1b[22m",
};

/// Which clock the console's `HH:MM:SS.mmm` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// The system time zone (`TZ`, else `/etc/localtime`), following DST.
    /// Falls back to UTC (shown with a `Z`) when no time zone can be found.
    #[default]
    Local,
    /// UTC, shown with a trailing `Z`.
    Utc,
}

/// How the console line looks.
///
/// `ConsoleOptions::default().color(true).max_payload_bytes(256)`
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsoleOptions {
    /// ANSI colours. Off by default; the binary turns it on for a terminal
    /// unless `--no-color` (or `NO_COLOR`). Off means no escape sequence at all.
    pub color: bool,
    /// At most this many captured bytes of payload are shown per line; the
    /// rest is summarised as `…(+N bytes)`. `usize::MAX` shows all. Also
    /// caps each header value and each body shown (text or hexdump).
    pub max_payload_bytes: usize,
    pub clock: Clock,
    /// Under each HTTP request and response line, its header fields (and
    /// trailers), one per line, indented. Off by default (`--headers`).
    pub show_headers: bool,
    /// Under each HTTP request and response line, its body: text escaped and
    /// split at its newlines, anything else as a hexdump. Off by default
    /// (`--bodies`).
    pub show_bodies: bool,
    /// Mask credentials in what is shown of HTTP transactions (URLs, header
    /// values, form and JSON bodies; see `weft_core::redact`). On by
    /// default; the binary turns it off for `--no-redact`.
    pub redact: bool,
}

impl ConsoleOptions {
    /// Default payload display cap.
    pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024;

    pub fn color(mut self, on: bool) -> Self {
        self.color = on;
        self
    }

    pub fn max_payload_bytes(mut self, n: usize) -> Self {
        self.max_payload_bytes = n;
        self
    }

    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn show_headers(mut self, on: bool) -> Self {
        self.show_headers = on;
        self
    }

    pub fn show_bodies(mut self, on: bool) -> Self {
        self.show_bodies = on;
        self
    }

    pub fn redact(mut self, on: bool) -> Self {
        self.redact = on;
        self
    }
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        Self {
            color: false,
            max_payload_bytes: Self::DEFAULT_MAX_PAYLOAD_BYTES,
            clock: Clock::Local,
            show_headers: false,
            show_bodies: false,
            redact: true,
        }
    }
}

/// The time zone resolved once, when the sink is made.
#[derive(Debug)]
enum Zone {
    Utc,
    Local(jiff::tz::TimeZone),
}

/// Writes one line per event (see the module docs for its shape), each with a
/// single `write_all`.
#[derive(Debug)]
pub struct ConsoleSink<W: Write> {
    out: W,
    opts: ConsoleOptions,
    zone: Zone,
    line: String,
}

impl<W: Write> ConsoleSink<W> {
    pub fn new(out: W, opts: ConsoleOptions) -> Self {
        let zone = match opts.clock {
            Clock::Utc => Zone::Utc,
            Clock::Local => match jiff::tz::TimeZone::try_system() {
                Ok(tz) if !tz.is_unknown() => Zone::Local(tz),
                _ => Zone::Utc,
            },
        };
        Self {
            out,
            opts,
            zone,
            line: String::with_capacity(256),
        }
    }

    pub fn options(&self) -> &ConsoleOptions {
        &self.opts
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

    /// `HH:MM:SS.mmm curl[42] → ws text 5 bytes 10.0.0.5:4711 -> 10.0.0.9:443: hello`
    fn format_websocket(&mut self, w: &weft_core::event::WebSocket) {
        let color = self.opts.color;
        let max = self.opts.max_payload_bytes;
        let m = &*w.message;
        let line = &mut self.line;
        push_time(line, &self.zone, color, w.timestamp_ns);
        push_process(line, color, &w.process);
        let (arrow, arrow_color) = match m.direction {
            weft_proto::Direction::ClientToServer => ("→", GREEN),
            weft_proto::Direction::ServerToClient => ("←", CYAN),
        };
        paint(line, color, arrow_color, |l| l.push_str(arrow));
        let kind = http::ws_opcode_name(m.opcode);
        line.push_str(&format!(" ws {kind} {} bytes", m.size));
        if let Some(code) = m.close_code {
            line.push_str(&format!(" code {code}"));
        }
        if let Some((client, server)) = http::client_server(w.flow.as_ref(), w.role) {
            line.push(' ');
            push_endpoint(line, client);
            line.push_str(" -> ");
            push_endpoint(line, server);
        }
        if m.truncated || m.data_lost {
            paint(line, color, YELLOW, |l| l.push_str(" (incomplete)"));
        }
        line.push_str(": ");
        escape_untrusted_into(line, &m.payload, max);
        line.push('\n');
    }

    /// `HH:MM:SS.mmm weft: lost in the last 10.0 s: ring_full_data=3 ...`
    fn format_loss(&mut self, l: &weft_core::event::Loss) {
        let color = self.opts.color;
        let line = &mut self.line;
        push_time(line, &self.zone, color, l.timestamp_ns);
        paint(line, color, YELLOW, |line| {
            line.push_str(&format!(
                "weft: lost in the last {:.1} s:",
                l.interval_ns as f64 / 1e9
            ));
            for (reason, n) in &l.counts {
                line.push_str(&format!(" {reason}={n}"));
            }
        });
        line.push('\n');
    }

    /// `python3[12] DNS query A www.example 127.0.0.1:40000 -> 127.0.0.53:53 id=4660` or
    /// `... DNS answer A www.example NOERROR 93.184.216.34,... id=4660`.
    fn format_dns(&mut self, d: &weft_core::event::Dns) {
        let color = self.opts.color;
        let m = &*d.message;
        let line = &mut self.line;
        push_time(line, &self.zone, color, d.timestamp_ns);
        push_process(line, color, &d.process);
        paint(line, color, CYAN, |l| {
            l.push_str(if m.response {
                "DNS answer"
            } else {
                "DNS query"
            });
        });
        if let Some(q) = m.questions.first() {
            line.push(' ');
            line.push_str(&weft_proto::dns::type_name(q.qtype));
            line.push(' ');
            escape(line, q.name.as_bytes(), 256, None);
        }
        if m.response {
            line.push(' ');
            line.push_str(&weft_proto::dns::rcode_name(m.rcode));
            let data: Vec<String> = m.answers.iter().map(|a| a.data.to_text()).collect();
            if !data.is_empty() {
                line.push(' ');
                escape(line, data.join(",").as_bytes(), 512, None);
            }
        }
        if let Some(flow) = &d.flow {
            line.push(' ');
            push_endpoint(line, flow.source());
            paint(line, color, DIM, |l| l.push_str(" -> "));
            push_endpoint(line, flow.destination());
        }
        let _ = write!(line, " id={}", m.id);
        line.push('\n');
    }

    /// `curl[12] TLS 1.3 TLS_AES_256_GCM_SHA384 weft.test h2 a -> b openssl [1.2 ms]`
    /// or `curl[12] TLS handshake failed (alert unknown_ca received) ...`.
    /// `time proc[pid] TCP start|end src -> dst [duration] sent/received rtt`.
    fn format_connection(&mut self, c: &weft_core::event::Connection) {
        use weft_core::event::ConnectionPhase;
        let color = self.opts.color;
        let line = &mut self.line;
        push_time(line, &self.zone, color, c.timestamp_ns);
        match &c.process {
            Some(p) => push_process(line, color, p),
            None => line.push_str("?[?] "),
        }
        paint(line, color, DIM, |l| {
            l.push_str(match (c.phase, c.seeded) {
                (ConnectionPhase::Start, false) => "TCP start ",
                (ConnectionPhase::Start, true) => "TCP open (before weft) ",
                (ConnectionPhase::End, _) => "TCP end ",
                (ConnectionPhase::Update, _) => "TCP update ",
            });
        });
        push_endpoint(line, c.flow.source());
        paint(line, color, DIM, |l| l.push_str(" -> "));
        push_endpoint(line, c.flow.destination());
        if let Some(ns) = c.duration_ns {
            line.push_str(" [");
            http::push_duration(line, ns);
            line.push(']');
        }
        let (src, dst) = c.source_destination_bytes();
        if let (Some(s), Some(d)) = (src, dst) {
            let _ = write!(line, " {s}B -> / <- {d}B");
        }
        if let Some(rtt) = c.rtt_us {
            let _ = write!(line, " rtt={rtt}us");
        }
        line.push('\n');
    }

    fn format_handshake(&mut self, h: &weft_core::event::TlsHandshake) {
        let color = self.opts.color;
        let s = &*h.session;
        let line = &mut self.line;
        push_time(line, &self.zone, color, h.timestamp_ns);
        push_process(line, color, &h.process);
        if s.established == Some(true) {
            paint(line, color, GREEN, |l| {
                l.push_str("TLS ");
                l.push_str(s.version.as_deref().unwrap_or("?"));
            });
            line.push(' ');
            line.push_str(s.cipher.as_deref().unwrap_or("?"));
        } else {
            paint(line, color, RED, |l| {
                l.push_str("TLS handshake failed (");
                escape(l, s.failure.as_deref().unwrap_or("?").as_bytes(), 128, None);
                l.push(')');
            });
        }
        if let Some(sni) = &s.server_name {
            line.push_str(" sni=");
            escape(line, sni.as_bytes(), 256, None);
        }
        match &s.next_protocol {
            Some(p) => {
                line.push_str(" alpn=");
                escape(line, p.as_bytes(), 64, None);
            }
            None if !s.alpn_offered.is_empty() => {
                line.push_str(" alpn offered=");
                escape(line, s.alpn_offered.join(",").as_bytes(), 256, None);
            }
            None => {}
        }
        if let Some(v) = &s.ja4 {
            line.push_str(" ja4=");
            escape(line, v.as_bytes(), 64, None);
        }
        if let Some(v) = &s.ja4s {
            line.push_str(" ja4s=");
            escape(line, v.as_bytes(), 64, None);
        }
        if let Some(flow) = &h.flow {
            line.push(' ');
            push_endpoint(line, flow.source());
            paint(line, color, DIM, |l| l.push_str(" -> "));
            push_endpoint(line, flow.destination());
        }
        line.push(' ');
        line.push_str(h.library.as_str());
        if let Some(ns) = s.handshake_ns {
            line.push_str(" [");
            http::push_duration(line, ns);
            line.push(']');
        }
        line.push('\n');
    }

    fn format_tls(&mut self, d: &TlsData) {
        let color = self.opts.color;
        let line = &mut self.line;

        push_time(line, &self.zone, color, d.timestamp_ns);
        push_process(line, color, &d.process);

        // Direction, then the connection as opener -> accepter.
        let (arrow, arrow_color) = match d.direction {
            Direction::Write => ("→", GREEN),
            Direction::Read => ("←", CYAN),
        };
        paint(line, color, arrow_color, |l| l.push_str(arrow));
        line.push(' ');
        match &d.flow {
            Some(flow) => {
                push_endpoint(line, flow.source());
                paint(line, color, DIM, |l| l.push_str(" -> "));
                push_endpoint(line, flow.destination());
            }
            None => line.push('?'),
        }
        line.push(' ');

        // Library and size.
        paint(line, color, MAGENTA, |l| l.push_str(d.library.as_str()));
        let _ = write!(line, " {} {}", d.length, plural_bytes(d.length));
        if d.first_bytes {
            line.push_str(" (first bytes)");
        }
        if d.truncated() {
            line.push(' ');
            paint(line, color, YELLOW, |l| {
                let _ = write!(l, "(truncated, {} captured)", d.payload.len());
            });
        }

        // Payload.
        if !d.payload.is_empty() {
            line.push_str(": ");
            let highlight = color.then_some(ESCAPE_HIGHLIGHT);
            escape(line, &d.payload, self.opts.max_payload_bytes, highlight);
        }
        line.push('\n');
    }

    /// The request line and the response line of one transaction, each
    /// followed by its headers, body and trailers when asked for.
    fn format_http(&mut self, h: &Http) {
        let opts = &self.opts;
        let color = opts.color;
        let line = &mut self.line;
        let t = &*h.transaction;
        let ends = http::endpoints(h);
        let url = HttpUrl::with_scheme(
            t,
            ends.map(|(_, server)| server),
            opts.redact,
            h.library != weft_core::event::TlsLibrary::None,
        );
        let duration = http::duration_ns(h);

        // Request: time, process, →, method and URL, protocol, client -> server.
        push_time(line, &self.zone, color, h.timestamp_ns);
        push_process(line, color, &h.process);
        paint(line, color, GREEN, |l| l.push('→'));
        line.push(' ');
        if t.request.seen {
            paint(line, color, BOLD, |l| {
                let method = t.method().filter(|m| !m.is_empty()).unwrap_or(b"?");
                escape(l, method, MAX_METHOD_BYTES, None);
            });
            line.push(' ');
            push_url(line, &url, color);
        } else {
            paint(line, color, YELLOW, |l| l.push_str("(request not seen)"));
        }
        line.push(' ');
        line.push_str(http::short_version(t));
        line.push(' ');
        match ends {
            Some((client, server)) => {
                push_endpoint(line, client);
                paint(line, color, DIM, |l| l.push_str(" -> "));
                push_endpoint(line, server);
            }
            None => line.push('?'),
        }
        if t.request.body.size > 0 {
            let n = t.request.body.size;
            let _ = write!(line, " {n} {}", plural_bytes(n));
        }
        push_notes(line, color, None, &t.request);
        push_stream(line, color, t);
        line.push('\n');
        push_message_details(line, opts, &t.request);

        // Response: time at its end, process, ←, status, URL, type, size, duration.
        let end_ns = h.timestamp_ns.saturating_add(duration.unwrap_or(0));
        push_time(line, &self.zone, color, end_ns);
        push_process(line, color, &h.process);
        paint(line, color, CYAN, |l| l.push('←'));
        line.push(' ');
        if t.response.seen {
            match t.status() {
                Some(status) => {
                    let style = match status {
                        200..=299 => GREEN,
                        300..=399 => CYAN,
                        400..=499 => YELLOW,
                        _ => RED,
                    };
                    paint(line, color, style, |l| {
                        let _ = write!(l, "{status}");
                    });
                }
                None => line.push('?'),
            }
            if url.display().is_some() {
                line.push(' ');
                push_url(line, &url, color);
            }
            if let Some(mime) = http::mime_type(&t.response) {
                line.push(' ');
                escape(line, mime, MAX_HEADER_NAME_BYTES, None);
            }
            let n = t.response.body.size;
            let _ = write!(line, " {n} {}", plural_bytes(n));
        } else {
            paint(line, color, YELLOW, |l| l.push_str("(no response)"));
            if url.display().is_some() {
                line.push(' ');
                push_url(line, &url, color);
            }
        }
        if let Some(ns) = duration {
            line.push_str(" [");
            http::push_duration(line, ns);
            line.push(']');
        }
        push_notes(line, color, Some(t.end), &t.response);
        push_stream(line, color, t);
        line.push('\n');
        push_message_details(line, opts, &t.response);
    }
}

impl<W: Write> Sink for ConsoleSink<W> {
    fn write(&mut self, ev: &Event) -> Result<(), SinkError> {
        self.line.clear();
        match ev {
            Event::TlsData(d) => self.format_tls(d),
            Event::Http(h) => self.format_http(h),
            Event::Loss(l) => self.format_loss(l),
            Event::Dns(d) => self.format_dns(d),
            Event::WebSocket(w) => self.format_websocket(w),
            Event::TlsHandshake(h) => self.format_handshake(h),
            Event::TlsWire(_) => return Ok(()),
            Event::Connection(c) => self.format_connection(c),
            Event::PacketFlow(f) => self.format_packet_flow(f),
        }
        let res = self.out.write_all(self.line.as_bytes());
        if self.line.capacity() > KEEP_CAPACITY {
            self.line = String::with_capacity(256);
        }
        res.map_err(|source| SinkError::Write {
            sink: "console",
            source,
        })
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|source| SinkError::Flush {
            sink: "console",
            source,
        })
    }
}

/// Runs `f` inside `style` when colour is on, plainly otherwise.
fn paint(line: &mut String, color: bool, style: &str, f: impl FnOnce(&mut String)) {
    if color {
        line.push_str(style);
        f(line);
        line.push_str(RESET);
    } else {
        f(line);
    }
}

/// `HH:MM:SS.mmm` (with `Z` for UTC) and a space.
fn push_time(line: &mut String, zone: &Zone, color: bool, ns: u64) {
    paint(line, color, DIM, |l| {
        let offset = match zone {
            Zone::Utc => 0,
            Zone::Local(tz) => jiff::Timestamp::from_second((ns / 1_000_000_000) as i64)
                .map(|t| tz.to_offset(t).seconds())
                .unwrap_or(0),
        };
        push_clock_time(l, ns, offset);
        if matches!(zone, Zone::Utc) {
            l.push('Z');
        }
    });
    line.push(' ');
}

/// `name[pid]` and a space.
fn push_process(line: &mut String, color: bool, p: &ProcessInfo) {
    paint(line, color, BOLD, |l| {
        escape(l, p.name.as_bytes(), MAX_NAME_BYTES, None);
    });
    let _ = write!(line, "[{}] ", p.pid);
}

fn push_url(line: &mut String, url: &HttpUrl, color: bool) {
    let highlight = color.then_some(ESCAPE_HIGHLIGHT);
    escape(
        line,
        url.display().unwrap_or(b"?"),
        MAX_URL_BYTES,
        highlight,
    );
}

/// ` [stream N]` for HTTP/2 (`, pushed by M` for a server push).
fn push_stream(line: &mut String, color: bool, t: &weft_proto::Transaction) {
    if t.protocol != Protocol::Http2 {
        return;
    }
    line.push(' ');
    paint(line, color, DIM, |l| {
        let _ = write!(l, "[stream {}", t.stream_id);
        if let Some(parent) = t.promised_by {
            let _ = write!(l, ", pushed by {parent}");
        }
        l.push(']');
    });
}

/// ` (reset by server, error 8, headers incomplete, ...)`: how the
/// transaction ended, when not completely, and what is missing from `m`.
fn push_notes(line: &mut String, color: bool, end: Option<End>, m: &Message) {
    let mut notes: Vec<String> = Vec::new();
    match end {
        None | Some(End::Complete) => {}
        Some(End::Reset { by, error_code }) => notes.push(format!(
            "reset by {}, error {error_code}",
            http::direction_side(by)
        )),
        Some(End::GoAway { error_code }) => notes.push(format!("goaway, error {error_code}")),
        Some(End::ConnectionClosed) => notes.push("connection closed".into()),
        Some(End::Evicted) => notes.push("evicted".into()),
        Some(End::Desync) => notes.push("desync".into()),
    }
    if m.seen {
        if m.headers_incomplete {
            notes.push("headers incomplete".into());
        }
        if m.headers_truncated {
            notes.push("headers truncated".into());
        }
        if m.body.truncated {
            notes.push(format!("body truncated, {} kept", m.body.data.len()));
        } else if http::content_is_partial(&m.body) {
            notes.push("body partly decoded".into());
        }
        if m.data_lost {
            notes.push("data lost".into());
        }
    }
    if notes.is_empty() {
        return;
    }
    line.push(' ');
    paint(line, color, YELLOW, |l| {
        l.push('(');
        l.push_str(&notes.join(", "));
        l.push(')');
    });
}

/// Headers, then body, then trailers of `m`, as the options ask.
fn push_message_details(line: &mut String, opts: &ConsoleOptions, m: &Message) {
    if !m.seen {
        return;
    }
    if opts.show_headers {
        push_headers(line, opts, &m.headers);
    }
    if opts.show_bodies {
        push_body(line, opts, m);
    }
    if opts.show_headers {
        push_headers(line, opts, &m.trailers);
    }
}

/// `    name: value` per regular field (pseudo-header fields are on the line
/// already), values masked when redacting.
fn push_headers(line: &mut String, opts: &ConsoleOptions, headers: &Headers) {
    let highlight = opts.color.then_some(ESCAPE_HIGHLIGHT);
    for f in headers.regular() {
        line.push_str(INDENT);
        paint(line, opts.color, CYAN, |l| {
            escape(l, f.name, MAX_HEADER_NAME_BYTES, None);
        });
        line.push_str(": ");
        let value = http::shown_value(&f, opts.redact);
        escape(line, &value, opts.max_payload_bytes, highlight);
        line.push('\n');
    }
}

/// The body, capped at `max_payload_bytes`: its content (decoded when the
/// decoder removed a content coding), text escaped line by line, binary (not
/// UTF-8, or containing NUL) as a hexdump under a note saying what it looks
/// like. What is not shown, including bytes weft did not keep, is counted
/// on a last `…(+N bytes)` line.
fn push_body(line: &mut String, opts: &ConsoleOptions, m: &Message) {
    let color = opts.color;
    let data = http::shown_body(m, opts.redact);
    let not_kept = http::content_not_kept(&m.body);
    push_coding_note(line, color, m);
    if data.is_empty() {
        if not_kept > 0 {
            line.push_str(INDENT);
            paint(line, color, YELLOW, |l| {
                let _ = write!(l, "(body not kept: {not_kept} {})", plural_bytes(not_kept));
            });
            line.push('\n');
        }
        return;
    }
    let cap = opts.max_payload_bytes;
    let binary = http::text_prefix(&data, true).is_none_or(|t| t.contains('\0'));
    let shown = if binary {
        push_binary_note(line, color, m);
        let shown = data.len().min(cap);
        push_hexdump(line, color, &data[..shown]);
        shown
    } else {
        let shown = floor_char_boundary(&data, cap);
        let highlight = color.then_some(ESCAPE_HIGHLIGHT);
        let text = &data[..shown];
        let text = text.strip_suffix(b"\n").unwrap_or(text);
        for l in text.split(|&b| b == b'\n') {
            line.push_str(INDENT);
            escape(line, l, usize::MAX, highlight);
            line.push('\n');
        }
        shown
    };
    let left = (data.len() - shown) as u64 + not_kept;
    if left > 0 {
        line.push_str(INDENT);
        paint(line, color, DIM, |l| {
            let _ = write!(l, "…(+{left} {})", plural_bytes(left));
        });
        line.push('\n');
    }
}

/// `    (content-encoding gzip, decoded: 11 bytes)` above a body whose
/// content coding was removed, `    (content-encoding br, not decoded: …)`
/// when the decoder could not, `    (content-encoding gzip, not decoded)`
/// when decoding is off.
fn push_coding_note(line: &mut String, color: bool, m: &Message) {
    let Some(d) = &m.body.decoded else {
        // Decoding off: say the content is still encoded.
        if let Some(enc) = m
            .headers
            .get(b"content-encoding")
            .filter(|e| !e.trim_ascii().eq_ignore_ascii_case(b"identity"))
            && !m.body.data.is_empty()
        {
            line.push_str(INDENT);
            paint(line, color, DIM, |l| {
                l.push_str("(content-encoding ");
                escape(l, enc, MAX_HEADER_NAME_BYTES, None);
                l.push_str(", not decoded)");
            });
            line.push('\n');
        }
        return;
    };
    let decoded = http::is_decoded(&m.body);
    line.push_str(INDENT);
    paint(line, color, if decoded { DIM } else { YELLOW }, |l| {
        l.push_str("(content-encoding ");
        escape(
            l,
            m.headers.get(b"content-encoding").unwrap_or(b"?"),
            MAX_HEADER_NAME_BYTES,
            None,
        );
        if decoded {
            let _ = write!(l, ", decoded: {} {}", d.size, plural_bytes(d.size));
            if let Some(e) = &d.error {
                let _ = write!(l, ", stopped: {e}");
            }
        } else {
            l.push_str(", not decoded");
            if let Some(e) = &d.error {
                let _ = write!(l, ": {e}");
            }
        }
        l.push(')');
    });
    line.push('\n');
}

/// `    (binary body: image/png, 3 gRPC messages)`.
fn push_binary_note(line: &mut String, color: bool, m: &Message) {
    line.push_str(INDENT);
    paint(line, color, DIM, |l| {
        l.push_str("(binary body");
        let mut sep = ": ";
        if let Some(kind) = m.body.sniffed_type {
            l.push_str(sep);
            l.push_str(kind);
            sep = ", ";
        }
        if let Some(g) = &m.body.grpc {
            let n = g.messages.len() as u64 + g.dropped;
            let _ = write!(l, "{sep}{n} gRPC message{}", if n == 1 { "" } else { "s" });
            if let Some(e) = &g.error {
                let _ = write!(l, " ({e})");
            }
        }
        l.push(')');
    });
    line.push('\n');
}

/// `    00000000  1f 8b 08 00 00 00 00 00  00 03 ab 56 ca 48 cd c9  |...........V.H..|`:
/// offsets, 16 bytes in hex, and those bytes as printable ASCII (anything
/// else as `.`), so nothing reaches the terminal as itself but ASCII text.
fn push_hexdump(line: &mut String, color: bool, data: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, row) in data.chunks(16).enumerate() {
        line.push_str(INDENT);
        paint(line, color, DIM, |l| {
            let _ = write!(l, "{:08x}", i * 16);
        });
        line.push_str("  ");
        for col in 0..16 {
            match row.get(col) {
                Some(&b) => {
                    line.push(char::from(HEX[usize::from(b >> 4)]));
                    line.push(char::from(HEX[usize::from(b & 0xf)]));
                }
                None => line.push_str("  "),
            }
            line.push(' ');
            if col == 7 {
                line.push(' ');
            }
        }
        line.push(' ');
        line.push('|');
        line.extend(row.iter().map(|&b| {
            if (0x20..0x7f).contains(&b) {
                char::from(b)
            } else {
                '.'
            }
        }));
        line.push('|');
        line.push('\n');
    }
}

/// The largest `n <= max` that does not cut a UTF-8 character of `data` in
/// two (for valid UTF-8; invalid bytes are shown as `\xNN` anyway).
fn floor_char_boundary(data: &[u8], max: usize) -> usize {
    if max >= data.len() {
        return data.len();
    }
    let mut i = max;
    // Back over at most three continuation bytes to the character's start.
    while i > 0 && max - i < 3 && (data[i] & 0xc0) == 0x80 {
        i -= 1;
    }
    if i < max && data[i] >= 0xc0 { i } else { max }
}

/// `1.2.3.4:443`, `[::1]:443`; IPv4-mapped IPv6 shown as the IPv4 it is.
fn push_endpoint(line: &mut String, ep: Endpoint) {
    // Writing to a String cannot fail.
    let _ = write!(line, "{}", SocketAddr::new(ep.ip.to_canonical(), ep.port));
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::sync::Arc;

    use weft_core::event::{Flow, ProcessInfo, Role, TlsLibrary};

    use super::*;
    use crate::test_support::{broken_pipe_writer, sample};

    fn line_with(d: &TlsData, opts: ConsoleOptions) -> String {
        let mut sink = ConsoleSink::new(Vec::new(), opts);
        sink.write(&Event::TlsData(d.clone()))
            .expect("write to Vec");
        String::from_utf8(sink.into_inner()).expect("console lines are UTF-8")
    }

    fn line(d: &TlsData) -> String {
        line_with(d, ConsoleOptions::default().clock(Clock::Utc))
    }

    /// A DNS answer: question, code, answers (escaped: names come from the
    /// network), endpoints, id.
    #[test]
    fn dns_answer_line_escapes_the_names() {
        let d = sample();
        let mut m = vec![0, 7, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(b"\x05ev\x1bil\x04test\x00\x00\x01\x00\x01");
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 9]);
        let message = weft_proto::dns::parse(&m).expect("parses");
        let mut sink = ConsoleSink::new(Vec::new(), ConsoleOptions::default().clock(Clock::Utc));
        sink.write(&Event::Dns(weft_core::event::Dns {
            timestamp_ns: d.timestamp_ns,
            process: d.process.clone(),
            tid: d.tid,
            flow: d.flow,
            direction: Direction::Read,
            message: Box::new(message),
            tcp: false,
        }))
        .expect("write");
        let text = String::from_utf8(sink.into_inner()).expect("utf-8");
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(
            text.contains(
                "curl[1234] DNS answer A ev\\\\027il.test NOERROR 10.0.0.9 \
                 10.0.0.5:51234 -> 93.184.216.34:443 id=7"
            ),
            "{text}"
        );
    }

    #[test]
    fn first_bytes_are_marked() {
        let mut d = sample();
        d.library = TlsLibrary::None;
        d.first_bytes = true;
        let l = line(&d);
        assert!(l.contains(" none 37 bytes (first bytes)"), "{l}");
    }

    #[test]
    fn handshake_lines_say_version_or_failure_and_escape_the_sni() {
        let d = sample();
        let mut s = weft_core::event::TlsSession {
            version: Some("1.3".into()),
            cipher: Some("TLS_AES_256_GCM_SHA384".into()),
            server_name: Some("evil\u{1b}[2J.example".into()),
            alpn_offered: vec!["h2".into(), "http/1.1".into()],
            established: Some(true),
            handshake_ns: Some(3_000_000),
            ja4: Some("t13d1516h2_8daaf6152771_e5627efa2ab1".into()),
            ja4s: Some("t130200_1301_234ea6891581".into()),
            ..Default::default()
        };
        let mut hs = weft_core::event::TlsHandshake {
            timestamp_ns: d.timestamp_ns,
            process: d.process.clone(),
            flow: d.flow,
            library: d.library,
            session: Arc::new(s.clone()),
        };
        let mut sink = ConsoleSink::new(Vec::new(), ConsoleOptions::default().clock(Clock::Utc));
        sink.write(&Event::TlsHandshake(hs.clone())).expect("write");
        s.established = Some(false);
        s.failure = Some("alert unknown_ca sent".into());
        s.next_protocol = Some("h2".into());
        hs.session = Arc::new(s);
        sink.write(&Event::TlsHandshake(hs)).expect("write");
        let text = String::from_utf8(sink.into_inner()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].contains("curl[1234] TLS 1.3 TLS_AES_256_GCM_SHA384 sni=evil")
                && lines[0].contains(
                    "alpn offered=h2,http/1.1 ja4=t13d1516h2_8daaf6152771_e5627efa2ab1 \
                     ja4s=t130200_1301_234ea6891581 10.0.0.5:51234 -> 93.184.216.34:443 openssl [3.0 ms]"
                ),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains("TLS handshake failed (alert unknown_ca sent)")
                && lines[1].contains(" alpn=h2 "),
            "{}",
            lines[1]
        );
        assert!(!text.contains('\u{1b}'), "{text:?}");
    }

    #[test]
    fn connection_lines_show_tuple_bytes_and_unknown_owner() {
        use weft_core::event::{Connection, ConnectionPhase};
        let d = sample();
        let mut c = Connection {
            timestamp_ns: d.timestamp_ns,
            phase: ConnectionPhase::Start,
            seeded: false,
            process: Some(d.process.clone()),
            flow: d.flow.expect("flow"),
            netns_cookie: 1,
            bytes_sent: None,
            bytes_received: None,
            rtt_us: None,
            duration_ns: None,
            destination_domain: None,
            lost_before: Default::default(),
            h2_last_stream: 0,
        };
        let mut sink = ConsoleSink::new(Vec::new(), ConsoleOptions::default().clock(Clock::Utc));
        sink.write(&Event::Connection(c.clone())).expect("write");
        c.phase = ConnectionPhase::End;
        c.process = None;
        c.bytes_sent = Some(79);
        c.bytes_received = Some(945);
        c.rtt_us = Some(36);
        c.duration_ns = Some(22_000_000);
        sink.write(&Event::Connection(c)).expect("write");
        let text = String::from_utf8(sink.into_inner()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].ends_with("curl[1234] TCP start 10.0.0.5:51234 -> 93.184.216.34:443"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].ends_with(
                "?[?] TCP end 10.0.0.5:51234 -> 93.184.216.34:443 [22 ms] 79B -> / <- 945B rtt=36us"
            ),
            "{}",
            lines[1]
        );
    }

    /// Removes `ESC [ ... m` sequences.
    fn strip_sgr(s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('\x1b') {
            out.push_str(&rest[..i]);
            let after = &rest[i..];
            assert!(after.starts_with("\x1b["), "only SGR sequences: {s:?}");
            let end = after.find('m').expect("SGR ends with m");
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn line_shape_without_colour() {
        assert_eq!(
            line(&sample()),
            "20:03:44.123Z curl[1234] → 10.0.0.5:51234 -> 93.184.216.34:443 openssl 37 bytes: \
             GET / HTTP/1.1\\r\\nHost: example.com\\r\\n\\r\\n\n"
        );
    }

    #[test]
    fn read_from_accepted_connection() {
        let mut d = sample();
        d.direction = Direction::Read;
        d.library = TlsLibrary::GoTls;
        d.flow.as_mut().expect("sample has a flow").role = Role::Server;
        d.payload = b"ok".to_vec();
        d.length = 2;
        assert_eq!(
            line(&d),
            "20:03:44.123Z curl[1234] ← 93.184.216.34:443 -> 10.0.0.5:51234 go 2 bytes: ok\n"
        );
    }

    #[test]
    fn no_escape_sequence_when_colour_is_off() {
        let mut d = sample();
        d.payload = b"\x1b[2J\x1b]0;pwned\x07\r\x9b\xc2\x9b".to_vec();
        d.length = 1 << 20; // truncated: the note is coloured when colour is on
        d.process = Arc::new(ProcessInfo {
            name: "ev\x1bil".to_string(),
            ..(*d.process).clone()
        });
        let out = line(&d);
        assert!(!out.contains('\x1b'), "{out:?}");
        assert!(!out.contains('\u{9b}'), "{out:?}");
        assert!(out.contains("ev\\x1bil[1234]"), "{out:?}");
        assert!(
            out.ends_with("(truncated, 18 captured): \\x1b[2J\\x1b]0;pwned\\x07\\r\\x9b\\u{9b}\n"),
            "{out:?}"
        );
    }

    #[test]
    fn colour_only_adds_sgr_sequences() {
        let mut d = sample();
        d.length = 100;
        let plain = line(&d);
        let coloured = line_with(&d, ConsoleOptions::default().clock(Clock::Utc).color(true));
        assert!(coloured.contains("\x1b[32m→\x1b[0m"), "{coloured:?}");
        assert!(
            coloured.contains("\x1b[2m\\r\\n\\r\\n\x1b[22m"),
            "{coloured:?}"
        );
        assert_eq!(strip_sgr(&coloured), plain);

        d.direction = Direction::Read;
        let coloured = line_with(&d, ConsoleOptions::default().clock(Clock::Utc).color(true));
        assert!(coloured.contains("\x1b[36m←\x1b[0m"), "{coloured:?}");
    }

    #[test]
    fn payload_display_is_capped() {
        let mut d = sample();
        d.payload = vec![b'A'; 1 << 20];
        d.length = 1 << 20;
        let out = line(&d);
        assert!(out.ends_with(&format!(
            "{}…(+{} bytes)\n",
            "A".repeat(1024),
            (1 << 20) - 1024
        )));
        let out = line_with(
            &d,
            ConsoleOptions::default()
                .clock(Clock::Utc)
                .max_payload_bytes(4),
        );
        assert!(out.ends_with(": AAAA…(+1048572 bytes)\n"), "{out:?}");
        // The truncation note is about the capture, not the display.
        assert!(!out.contains("truncated"));
    }

    #[test]
    fn truncated_capture_is_flagged() {
        let mut d = sample();
        d.payload = b"HTTP".to_vec();
        d.length = 5000;
        assert!(
            line(&d).ends_with("openssl 5000 bytes (truncated, 4 captured): HTTP\n"),
            "{}",
            line(&d)
        );
    }

    #[test]
    fn one_byte_is_singular() {
        let mut d = sample();
        d.payload = b"xy".to_vec();
        d.length = 1;
        d.payload.truncate(1);
        let out = line_with(&d, ConsoleOptions::default().clock(Clock::Utc));
        assert!(out.ends_with(" openssl 1 byte: x\n"), "{out:?}");
        d.payload = b"xy".to_vec();
        d.length = 2;
        let out = line_with(
            &d,
            ConsoleOptions::default()
                .clock(Clock::Utc)
                .max_payload_bytes(1),
        );
        assert!(out.ends_with(" 2 bytes: x…(+1 byte)\n"), "{out:?}");
    }

    #[test]
    fn unknown_flow_and_empty_payload() {
        let mut d = sample();
        d.flow = None;
        d.payload.clear();
        d.length = 0;
        assert_eq!(line(&d), "20:03:44.123Z curl[1234] → ? openssl 0 bytes\n");
    }

    #[test]
    fn ipv6_in_brackets_and_mapped_ipv4_plain() {
        let mut d = sample();
        d.flow = Some(Flow {
            cookie: 9,
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
        assert!(line(&d).contains(" [::1]:40000 -> [2001:db8::1]:443 "));
        let mapped = IpAddr::V6(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped());
        let flow = d.flow.as_mut().expect("set above");
        flow.local.ip = mapped;
        flow.remote.ip = mapped;
        assert!(line(&d).contains(" 127.0.0.1:40000 -> 127.0.0.1:443 "));
    }

    #[test]
    fn local_clock_has_the_same_shape() {
        let out = line_with(&sample(), ConsoleOptions::default());
        let time = out.split(' ').next().expect("a first field");
        let digits = time.trim_end_matches('Z');
        assert_eq!(digits.len(), 12, "{time}");
        for (i, b) in digits.bytes().enumerate() {
            match i {
                2 | 5 => assert_eq!(b, b':'),
                8 => assert_eq!(b, b'.'),
                _ => assert!(b.is_ascii_digit(), "{time}"),
            }
        }
        // Minutes may differ from UTC by a half-hour zone; milliseconds may not.
        assert!(digits.ends_with(".123"));
    }

    #[test]
    fn write_errors_name_the_sink() {
        let mut sink = ConsoleSink::new(broken_pipe_writer(), ConsoleOptions::default());
        let err = sink
            .write(&Event::TlsData(sample()))
            .expect_err("the writer fails");
        assert!(err.is_broken_pipe());
        assert_eq!(err.to_string(), "cannot write the console output");
    }

    #[test]
    fn sinks_can_move_to_an_output_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<ConsoleSink<std::io::BufWriter<std::io::Stdout>>>();
        assert_send::<crate::JsonSink<std::io::BufWriter<std::io::Stdout>>>();
    }

    #[test]
    fn usable_as_a_boxed_trait_object() {
        let mut sinks: Vec<Box<dyn Sink>> = vec![
            Box::new(ConsoleSink::new(Vec::new(), ConsoleOptions::default())),
            Box::new(crate::JsonSink::new(Vec::new())),
        ];
        for s in &mut sinks {
            s.write(&Event::TlsData(sample())).expect("write to Vec");
            s.flush().expect("flush Vec");
        }
    }

    // ---- HTTP transactions ----

    use weft_core::event::Http;
    use weft_proto::{Body, Transaction};

    use crate::test_support::{h1_event, h2_event};

    fn http_with(h: &Http, opts: ConsoleOptions) -> String {
        let mut sink = ConsoleSink::new(Vec::new(), opts.clock(Clock::Utc));
        sink.write(&Event::Http(h.clone())).expect("write to Vec");
        String::from_utf8(sink.into_inner()).expect("console lines are UTF-8")
    }

    fn http(h: &Http) -> String {
        http_with(h, ConsoleOptions::default())
    }

    fn all() -> ConsoleOptions {
        ConsoleOptions::default()
            .show_headers(true)
            .show_bodies(true)
    }

    fn tx(h: &mut Http) -> &mut Transaction {
        &mut h.transaction
    }

    #[test]
    fn http1_request_and_response_lines() {
        assert_eq!(
            http(&h1_event()),
            "20:03:44.123Z curl[1234] → GET https://api.example/users?id=7&access_token=[REDACTED] h1 \
             10.0.0.5:51234 -> 93.184.216.34:443\n\
             20:03:44.416Z curl[1234] ← 200 https://api.example/users?id=7&access_token=[REDACTED] \
             application/json 36 bytes [293 ms]\n"
        );
    }

    #[test]
    fn http2_seen_by_the_server() {
        // nginx accepted the connection: the client (source) is the peer, and
        // → is still the request, toward the server.
        assert_eq!(
            http(&h2_event()),
            "20:03:45.000Z nginx[4300] → POST https://api.example/login h2 \
             10.0.0.5:48372 -> 10.0.0.9:443 25 bytes [stream 3]\n\
             20:03:45.001Z nginx[4300] ← 200 https://api.example/login application/json 31 bytes \
             [1.5 ms] [stream 3]\n"
        );
        // A role the flow does not know: the decoder's role decides.
        let mut h = h2_event();
        h.flow.as_mut().expect("h2_event has a flow").role = Role::Unknown;
        assert!(http(&h).contains(" 10.0.0.5:48372 -> 10.0.0.9:443 "));
    }

    #[test]
    fn headers_and_bodies_redacted_by_default() {
        let out = http_with(&h1_event(), all());
        let expected = "20:03:44.123Z curl[1234] → GET https://api.example/users?id=7&access_token=[REDACTED] h1 \
             10.0.0.5:51234 -> 93.184.216.34:443\n\
             \x20   host: api.example\n\
             \x20   user-agent: curl/8.5.0\n\
             \x20   accept: */*\n\
             \x20   authorization: Bearer [REDACTED]\n\
             \x20   cookie: sid=[REDACTED]; theme=[REDACTED]\n\
             20:03:44.416Z curl[1234] ← 200 https://api.example/users?id=7&access_token=[REDACTED] \
             application/json 36 bytes [293 ms]\n\
             \x20   content-type: application/json; charset=utf-8\n\
             \x20   set-cookie: sid=[REDACTED]; Path=/; HttpOnly\n\
             \x20   set-cookie: theme=[REDACTED]\n\
             \x20   content-length: 36\n\
             \x20   {\"users\":[],\"refresh_token\":\"[REDACTED]\"}\n";
        assert_eq!(out, expected);

        let h2 = http_with(&h2_event(), all());
        assert!(h2.contains("\n    user=bob&password=[REDACTED]\n"), "{h2}");
        assert!(!h2.contains("hunter2"));
    }

    #[test]
    fn no_redact_shows_everything() {
        let out = http_with(&h1_event(), all().redact(false));
        for secret in [
            "access_token=abc123",
            "authorization: Bearer s3cr3t",
            "cookie: sid=xyz; theme=dark",
            "set-cookie: sid=n3w; Path=/; HttpOnly",
            "\"refresh_token\":\"r-123\"",
        ] {
            assert!(out.contains(secret), "{secret} missing from {out}");
        }
        assert!(!out.contains("[REDACTED]"));
        let h2 = http_with(&h2_event(), all().redact(false));
        assert!(h2.contains("\n    user=bob&password=hunter2\n"));
    }

    #[test]
    fn headers_or_bodies_alone() {
        let headers = http_with(&h1_event(), ConsoleOptions::default().show_headers(true));
        assert!(headers.contains("    accept: */*\n"));
        assert!(!headers.contains("refresh_token"));
        let bodies = http_with(&h1_event(), ConsoleOptions::default().show_bodies(true));
        assert!(!bodies.contains("accept:"));
        assert!(
            bodies.ends_with("[293 ms]\n    {\"users\":[],\"refresh_token\":\"[REDACTED]\"}\n")
        );
    }

    #[test]
    fn binary_body_is_a_hexdump() {
        let out = http_with(&h2_event(), ConsoleOptions::default().show_bodies(true));
        assert!(
            out.ends_with(
                "[1.5 ms] [stream 3]\n\
                 \x20   (content-encoding gzip, not decoded)\n\
                 \x20   (binary body: application/gzip)\n\
                 \x20   00000000  1f 8b 08 00 00 00 00 00  02 03 ab 56 2a 2d 4e 2d  |...........V*-N-|\n\
                 \x20   00000010  52 b2 8a 8e ad 05 00 bf  e3 7c 9f 0b 00 00 00     |R........|.....|\n"
            ),
            "{out}"
        );
        // Bounded by max_payload_bytes; what is left (shown and never kept) is counted.
        let mut h = h2_event();
        let resp = &mut tx(&mut h).response;
        resp.body = Body {
            data: (0u8..=255).cycle().take(4096).collect(),
            size: 10_000,
            truncated: true,
            ..Body::default()
        };
        let out = http_with(
            &h,
            ConsoleOptions::default()
                .show_bodies(true)
                .max_payload_bytes(20),
        );
        assert!(out.contains("(body truncated, 4096 kept)"), "{out}");
        assert!(
            out.ends_with(
                "    (content-encoding gzip, not decoded)\n\
                 \x20   (binary body)\n\
                 \x20   00000000  00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f  |................|\n\
                 \x20   00000010  10 11 12 13                                       |....|\n\
                 \x20   …(+9980 bytes)\n"
            ),
            "{out}"
        );
        // Valid UTF-8 with NUL is binary too; the ASCII column never carries controls.
        let resp = &mut tx(&mut h).response;
        resp.body = Body {
            data: b"a\0\x1b[2J~\x7f".to_vec(),
            size: 7,
            truncated: false,
            ..Body::default()
        };
        let out = http_with(&h, ConsoleOptions::default().show_bodies(true));
        assert!(out.ends_with("|a..[2J~.|\n"), "{out}");
        assert!(!out.contains('\x1b'));
    }

    #[test]
    fn text_body_lines_are_escaped_and_capped() {
        let mut h = h1_event();
        let resp = &mut tx(&mut h).response;
        resp.headers = [(":status", "200"), ("content-type", "text/plain")]
            .into_iter()
            .collect();
        resp.body = Body {
            data: "line one\r\n\x1b[31mred\u{202e}\n\nlast é"
                .as_bytes()
                .to_vec(),
            size: 5000,
            truncated: true,
            ..Body::default()
        };
        let out = http_with(&h, ConsoleOptions::default().show_bodies(true));
        assert!(
            out.ends_with(
                "    line one\\r\n    \\x1b[31mred\\u{202e}\n    \n    last é\n    …(+4970 bytes)\n"
            ),
            "{out}"
        );
        // The cap never splits a character: "é" is left out whole.
        let out = http_with(
            &h,
            ConsoleOptions::default()
                .show_bodies(true)
                .max_payload_bytes(29),
        );
        assert!(out.ends_with("    last \n    …(+4972 bytes)\n"), "{out}");
        // A body weft did not keep at all.
        let resp = &mut tx(&mut h).response;
        resp.body = Body {
            data: Vec::new(),
            size: 12,
            truncated: true,
            ..Body::default()
        };
        let out = http_with(&h, ConsoleOptions::default().show_bodies(true));
        assert!(out.ends_with("    (body not kept: 12 bytes)\n"), "{out}");
    }

    #[test]
    fn incomplete_transactions_say_so() {
        let mut h = h2_event();
        let t = tx(&mut h);
        t.end = weft_proto::End::Reset {
            by: weft_proto::Direction::ServerToClient,
            error_code: 8,
        };
        t.response = weft_proto::Message::default();
        t.request.headers_incomplete = true;
        t.promised_by = Some(1);
        h.duration_ns = None;
        h.transaction.response.first_ns = 0;
        assert_eq!(
            http(&h),
            "20:03:45.000Z nginx[4300] → POST https://api.example/login h2 \
             10.0.0.5:48372 -> 10.0.0.9:443 25 bytes (headers incomplete) [stream 3, pushed by 1]\n\
             20:03:45.000Z nginx[4300] ← (no response) https://api.example/login \
             (reset by server, error 8) [stream 3, pushed by 1]\n"
        );

        let mut h = h1_event();
        let t = tx(&mut h);
        t.request = weft_proto::Message::default();
        t.response.data_lost = true;
        t.end = weft_proto::End::Desync;
        h.flow = None;
        assert_eq!(
            http(&h),
            "20:03:44.123Z curl[1234] → (request not seen) h1 ?\n\
             20:03:44.416Z curl[1234] ← 200 application/json 36 bytes [293 ms] (desync, data lost)\n"
        );
    }

    #[test]
    fn hostile_http_fields_cannot_reach_the_terminal() {
        let mut h = h1_event();
        let t = tx(&mut h);
        t.request.headers = [
            (":method", "G\x1b[2JET"),
            (":path", "/\x1b]0;pwned\x07?q=\u{202e}"),
            ("host", "evil\r\n.example"),
        ]
        .into_iter()
        .collect();
        t.request
            .headers
            .push(b"x-\x1bname", b"v\x9b\xc2\x9b\x1b[31m");
        t.response.headers = [(":status", "200"), ("content-type", "text/\x1bhtml")]
            .into_iter()
            .collect();
        t.response.body.data = b"\x1b[2J\x1b]8;;http://x\x07link\x1b]8;;\x07".to_vec();
        h.process = Arc::new(ProcessInfo {
            name: "ev\x1bil".to_string(),
            ..(*h.process).clone()
        });
        let out = http_with(&h, all());
        assert!(!out.contains('\x1b'), "{out:?}");
        assert!(!out.contains('\u{9b}'), "{out:?}");
        assert!(!out.contains('\u{202e}'), "{out:?}");
        assert!(!out.contains('\r'), "{out:?}");
        assert!(
            out.contains("G\\x1b[2JET https://evil\\r\\n.example/\\x1b]0;pwned\\x07?q=\\u{202e} ")
        );
        assert!(
            out.contains("    x-\\x1bname: v\\x9b\\u{9b}\\x1b[31m\n"),
            "{out}"
        );
        // Every line is one of ours: 2 event lines plus indented detail lines.
        for l in out.lines() {
            assert!(l.starts_with("20:03:44.") || l.starts_with(INDENT), "{l:?}");
        }

        // Colour adds SGR sequences only, around our own text.
        let coloured = http_with(&h, all().color(true));
        assert_eq!(strip_sgr(&coloured), out);
        let coloured = http_with(&h1_event(), all().color(true));
        assert!(coloured.contains("\x1b[32m→\x1b[0m"));
        assert!(coloured.contains("\x1b[36m←\x1b[0m \x1b[32m200\x1b[0m"));
        assert_eq!(strip_sgr(&coloured), http_with(&h1_event(), all()));
    }

    #[test]
    fn status_colours() {
        for (status, sgr) in [("301", CYAN), ("404", YELLOW), ("503", RED)] {
            let mut h = h1_event();
            tx(&mut h).response.headers = [(":status", status)].into_iter().collect();
            let out = http_with(&h, ConsoleOptions::default().color(true));
            assert!(out.contains(&format!("{sgr}{status}{RESET}")), "{out:?}");
        }
    }

    #[test]
    fn trailers_follow_the_body() {
        let mut h = h2_event();
        let t = tx(&mut h);
        t.response.trailers = [("grpc-status", "0"), ("x-session-token", "t")]
            .into_iter()
            .collect();
        t.response.body.data = b"ok".to_vec();
        t.response.body.size = 2;
        let out = http_with(&h, all());
        assert!(
            out.ends_with("    ok\n    grpc-status: 0\n    x-session-token: [REDACTED]\n"),
            "{out}"
        );
    }

    #[test]
    fn floor_char_boundary_cases() {
        let s = "aé🦀".as_bytes(); // 1 + 2 + 4 bytes
        assert_eq!(floor_char_boundary(s, 0), 0);
        assert_eq!(floor_char_boundary(s, 1), 1);
        assert_eq!(floor_char_boundary(s, 2), 1);
        assert_eq!(floor_char_boundary(s, 3), 3);
        for cut in 4..7 {
            assert_eq!(floor_char_boundary(s, cut), 3);
        }
        assert_eq!(floor_char_boundary(s, 7), 7);
        assert_eq!(floor_char_boundary(s, 100), 7);
        assert_eq!(floor_char_boundary(b"\x80\x80\x80\x80", 2), 2);
    }

    /// The h2 response with the decoder's work: the gzip body decoded.
    fn decoded_h2() -> Http {
        let mut h = h2_event();
        let body = &mut tx(&mut h).response.body;
        body.decoded = Some(weft_proto::Decoded {
            data: br#"{"user":[],"id_token":"eyJ"}"#.to_vec(),
            size: 27,
            truncated: false,
            error: None,
        });
        body.sniffed_type = None;
        h
    }

    #[test]
    fn decoded_bodies_are_shown_decoded_and_redacted() {
        let out = http_with(&decoded_h2(), ConsoleOptions::default().show_bodies(true));
        assert!(
            out.ends_with(
                "[1.5 ms] [stream 3]\n\
                 \x20   (content-encoding gzip, decoded: 27 bytes)\n\
                 \x20   {\"user\":[],\"id_token\":\"[REDACTED]\"}\n"
            ),
            "{out}"
        );
        let out = http_with(
            &decoded_h2(),
            ConsoleOptions::default().show_bodies(true).redact(false),
        );
        assert!(
            out.ends_with("    {\"user\":[],\"id_token\":\"eyJ\"}\n"),
            "{out}"
        );

        // Decoding failed at once: the bytes as sent, and why.
        let mut h = h2_event();
        tx(&mut h).response.body.decoded = Some(weft_proto::Decoded {
            error: Some(weft_proto::DecodeError::Unsupported),
            ..Default::default()
        });
        let out = http_with(&h, ConsoleOptions::default().show_bodies(true));
        assert!(
            out.contains(
                "\n    (content-encoding gzip, not decoded: unsupported content coding)\n\
                 \x20   (binary body: application/gzip)\n\
                 \x20   00000000  1f 8b"
            ),
            "{out}"
        );
    }

    #[test]
    fn grpc_bodies_say_how_many_messages() {
        let mut h = h2_event();
        let body = &mut tx(&mut h).response.body;
        body.data = b"\0\0\0\0\x02\x08\x01\0\0\0\0\x01\x10".to_vec();
        body.size = 13;
        body.sniffed_type = None;
        let msg = |offset, length| weft_proto::GrpcMessage {
            compressed: false,
            trailers: false,
            length,
            offset,
            kept: length as usize,
            decoded: None,
        };
        body.grpc = Some(Box::new(weft_proto::GrpcMessages {
            messages: vec![msg(5, 2), msg(12, 1)],
            dropped: 0,
            error: None,
        }));
        let out = http_with(&h, ConsoleOptions::default().show_bodies(true));
        assert!(
            out.contains("\n    (binary body: 2 gRPC messages)\n"),
            "{out}"
        );
    }
}
