//! JSON lines in Elastic Common Schema (ECS) shape: one nested object per
//! event, one event per line. `docs/schema.md` describes every field.
//!
//! Hand-written rather than derived: an event is written straight into a
//! reused buffer with no intermediate values, and the string escaping also
//! neutralises characters that are valid JSON but unsafe on a terminal.

use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use weft_core::event::{Endpoint, Event, Flow, ProcessInfo, TlsData, TlsSession};
use weft_proto::{Field, Headers};

use crate::datetime::{push_digits, push_rfc3339_utc, push_uint};
use crate::escape::is_unsafe_non_ascii;
use crate::http;
mod packets;

use crate::{ECS_VERSION, SCHEMA_VERSION, Sink, SinkError};

mod conn;
mod http_event;
#[cfg(test)]
mod reference;

/// Buffers that grew past this for one huge event are shrunk back.
const KEEP_CAPACITY: usize = 1 << 20;

/// What the JSON lines contain.
///
/// `JsonOptions::default().redact(false)`
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JsonOptions {
    /// Mask credentials in HTTP events (`url.full`, `url.query`,
    /// `http.request.referrer`, header values, form and JSON bodies; see
    /// `weft_core::redact` and `docs/schema.md`). On by default; the binary
    /// turns it off for `--no-redact`. Capture event payloads are written as
    /// they arrive: the decoding stage masks them in place
    /// (`weft_core::decode::DecodeConfig::redact`).
    pub redact: bool,
}

impl JsonOptions {
    pub fn redact(mut self, on: bool) -> Self {
        self.redact = on;
        self
    }
}

impl Default for JsonOptions {
    fn default() -> Self {
        Self { redact: true }
    }
}

/// Writes one ECS JSON object per event, each followed by `\n`.
///
/// Each event is encoded into an internal buffer and handed to the writer
/// with a single `write_all`, so lines are never interleaved or split by this
/// sink. For throughput, give it a buffered writer (`BufWriter`) and call
/// [`Sink::flush`] when the stream goes idle.
#[derive(Debug)]
pub struct JsonSink<W: Write> {
    out: W,
    opts: JsonOptions,
    buf: Vec<u8>,
}

impl<W: Write> JsonSink<W> {
    /// A sink with the default options (redaction on).
    pub fn new(out: W) -> Self {
        Self::with_options(out, JsonOptions::default())
    }

    pub fn with_options(out: W, opts: JsonOptions) -> Self {
        Self {
            out,
            opts,
            buf: Vec::with_capacity(4096),
        }
    }

    pub fn options(&self) -> &JsonOptions {
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
}

impl<W: Write> Sink for JsonSink<W> {
    fn write(&mut self, ev: &Event) -> Result<(), SinkError> {
        self.buf.clear();
        encode_event_with(ev, &self.opts, &mut self.buf);
        if self.buf.is_empty() {
            return Ok(()); // an internal event: nothing to write
        }
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

/// Appends the JSON object for `ev` to `out` (no trailing newline), with the
/// default options (redaction on).
///
/// For outputs that frame events themselves (a message bus, an HTTP bulk
/// request); [`JsonSink`] is this plus `\n`.
pub fn encode_event(ev: &Event, out: &mut Vec<u8>) {
    encode_event_with(ev, &JsonOptions::default(), out);
}

/// [`encode_event`] with the given options.
pub fn encode_event_with(ev: &Event, opts: &JsonOptions, out: &mut Vec<u8>) {
    match ev {
        Event::TlsData(d) => encode_tls_data(d, out),
        Event::Http(h) => http_event::encode_http(h, opts, out),
        Event::Loss(l) => encode_loss(l, out),
        Event::WebSocket(w) => encode_websocket(w, out),
        Event::TlsHandshake(h) => encode_handshake(h, out),
        Event::TlsWire(_) => {}
        Event::Connection(c) => conn::encode_connection(c, out),
        Event::Dns(d) => encode_dns(d, out),
        Event::PacketFlow(f) => packets::encode_packet_flow(f, out),
    }
}

/// One DNS query or answer (`event.action: dns-query` / `dns-answer`;
/// docs/schema.md, "DNS event fields").
fn encode_dns(d: &weft_core::event::Dns, out: &mut Vec<u8>) {
    use weft_proto::dns::{class_name, rcode_name, type_name};
    let p = &*d.process;
    let m = &*d.message;
    let mut j = Obj::new(out);
    event_head(
        &mut j,
        d.timestamp_ns,
        "event",
        "[\"network\"]",
        "[\"protocol\"]",
    );
    j.str(
        "action",
        if m.response {
            "dns-answer"
        } else {
            "dns-query"
        },
    );
    j.end();
    process_fields(&mut j, p, Some(d.tid));
    if let Some(flow) = &d.flow {
        // The asker is the source, the resolver the destination.
        for (key, ep) in [
            ("source", flow.source()),
            ("destination", flow.destination()),
        ] {
            j.begin(key);
            j.ip("ip", ep.ip);
            j.u64("port", u64::from(ep.port));
            j.end();
        }
    }
    j.begin("network");
    j.str("transport", if d.tcp { "tcp" } else { "udp" });
    if let Some(flow) = &d.flow {
        j.str("type", flow.network_type());
    }
    j.str("protocol", "dns");
    j.end();
    j.begin("dns");
    j.u64("id", u64::from(m.id));
    j.str("type", if m.response { "answer" } else { "query" });
    if let Some(q) = m.questions.first() {
        j.begin("question");
        j.str("name", &q.name);
        j.str("type", &type_name(q.qtype));
        j.str("class", &class_name(q.qclass));
        j.end();
    }
    if m.response {
        j.str("response_code", &rcode_name(m.rcode));
        if !m.answers.is_empty() {
            let mut arr = Vec::with_capacity(64 * m.answers.len());
            arr.push(b'[');
            for (i, a) in m.answers.iter().enumerate() {
                if i > 0 {
                    arr.push(b',');
                }
                let mut o = Obj::new(&mut arr);
                o.str("name", &a.name);
                o.str("type", &type_name(a.rtype));
                o.str("class", &class_name(a.class));
                o.u64("ttl", u64::from(a.ttl));
                o.str("data", &a.data.to_text());
                o.finish();
            }
            arr.push(b']');
            j.raw("answers", &String::from_utf8_lossy(&arr));
        }
        let ips: Vec<String> = m.resolved_ips().map(|ip| ip.to_string()).collect();
        if !ips.is_empty() {
            j.str_array("resolved_ip", &ips);
        }
    }
    j.end();
    weft_head(&mut j, p, d.flow.as_ref());
    if m.truncated || m.answers_skipped > 0 {
        j.begin("dns");
        j.bool("truncated", m.truncated);
        j.u64("answers_skipped", u64::from(m.answers_skipped));
        j.end();
    }
    j.end();
    j.finish();
}

/// `@timestamp`, `ecs.version`, then `event` opened with its `kind`,
/// `category` and `type` (JSON arrays, given as JSON): the caller adds
/// `action` and the rest, and closes `event`.
fn event_head(j: &mut Obj<'_>, ts: u64, kind: &str, category: &str, types: &str) {
    j.timestamp("@timestamp", ts);
    j.begin("ecs");
    j.str("version", ECS_VERSION);
    j.end();
    j.begin("event");
    j.str("kind", kind);
    j.raw("category", category);
    j.raw("type", types);
}

/// One WebSocket message (`event.action: websocket-message`).
fn encode_websocket(w: &weft_core::event::WebSocket, out: &mut Vec<u8>) {
    let p = &*w.process;
    let m = &*w.message;
    let mut j = Obj::new(out);
    event_head(
        &mut j,
        w.timestamp_ns,
        "event",
        "[\"network\",\"web\"]",
        "[\"protocol\"]",
    );
    j.str("action", "websocket-message");
    j.end();
    process_fields(&mut j, p, None);
    if let (Some(flow), Some((client, server))) =
        (&w.flow, http::client_server(w.flow.as_ref(), w.role))
    {
        connection_fields(&mut j, flow, client, server, Some("websocket"));
    }
    weft_head(&mut j, p, w.flow.as_ref());
    j.begin("tls");
    j.str("library", w.library.as_str());
    j.end();
    j.begin("websocket");
    j.str("direction", http::direction_side(m.direction));
    j.str("opcode", http::ws_opcode_name(m.opcode));
    j.u64("stream_id", u64::from(m.stream_id));
    j.u64("size", m.size);
    j.u64("wire_size", m.wire_size);
    j.bool("compressed", m.compressed);
    j.bool("truncated", m.truncated);
    j.bool("complete", m.complete);
    j.bool("data_lost", m.data_lost);
    if let Some(code) = m.close_code {
        j.u64("close_code", u64::from(code));
    }
    match std::str::from_utf8(&m.payload) {
        Ok(text) => j.str("text", text),
        Err(_) => j.base64("base64", &m.payload),
    }
    j.end();
    j.end();
    j.finish();
    out.push(b'\n');
}

/// `weft.loss`: what weft lost in the last period, by reason.
fn encode_loss(l: &weft_core::event::Loss, out: &mut Vec<u8>) {
    let mut j = Obj::new(out);
    event_head(&mut j, l.timestamp_ns, "metric", "[\"host\"]", "[\"info\"]");
    j.str("action", "weft-loss");
    j.str("dataset", "weft.loss");
    j.raw("duration", &l.interval_ns.to_string());
    j.end();
    j.begin("weft");
    j.begin("schema");
    j.str("version", SCHEMA_VERSION);
    j.end();
    j.begin("loss");
    for (reason, n) in &l.counts {
        j.raw(reason, &n.to_string());
    }
    j.end();
    j.end();
    j.finish();
    out.push(b'\n');
}

fn encode_tls_data(d: &TlsData, out: &mut Vec<u8>) {
    let p = &*d.process;
    let mut j = Obj::new(out);

    event_head(
        &mut j,
        d.timestamp_ns,
        "event",
        "[\"network\"]",
        "[\"protocol\"]",
    );
    let plain = d.library == weft_core::event::TlsLibrary::None;
    j.str(
        "action",
        match (d.direction, plain) {
            (weft_core::event::Direction::Write, false) => "tls-write",
            (weft_core::event::Direction::Read, false) => "tls-read",
            (weft_core::event::Direction::Write, true) => "plain-write",
            (weft_core::event::Direction::Read, true) => "plain-read",
        },
    );
    j.u64("duration", d.duration_ns);
    j.end();

    process_fields(&mut j, p, Some(d.tid));
    if let Some(flow) = &d.flow {
        connection_fields_domain(
            &mut j,
            flow,
            flow.source(),
            flow.destination(),
            None,
            d.destination_domain.as_deref(),
        );
    }

    if let Some(s) = &d.tls {
        ecs_tls(&mut j, s);
    }
    weft_head(&mut j, p, d.flow.as_ref());
    j.begin("tls");
    j.str("library", d.library.as_str());
    j.str("direction", d.direction.as_str());
    if let Some(s) = &d.tls {
        weft_tls(&mut j, s);
    }
    j.end();
    j.begin("payload");
    j.u64("length", d.length);
    j.u64("captured", d.payload.len() as u64);
    j.bool("truncated", d.truncated());
    if d.first_bytes {
        j.bool("first_bytes", true);
    }
    match std::str::from_utf8(&d.payload) {
        Ok(text) => j.str("text", text),
        Err(_) => j.base64("base64", &d.payload),
    }
    j.end();
    j.end();

    j.finish();
}

/// `process.*`, `user.id`, `group.id`: the same bytes for every event of a
/// process (thread), so they are written once and then copied (see
/// [`members_cached`]).
fn process_fields(j: &mut Obj<'_>, p: &ProcessInfo, tid: Option<u32>) {
    thread_local! {
        static CACHE: FragmentCache<(ProcessInfo, Option<u32>)> = const {
            std::cell::RefCell::new(Vec::new())
        };
    }
    let hash = u64::from(p.pid) ^ u64::from(tid.unwrap_or(0)) << 32 ^ p.start_time_ns;
    members_cached(
        j,
        &CACHE,
        hash,
        |(q, t)| *t == tid && q == p,
        || (p.clone(), tid),
        |j| write_process_fields(j, p, tid),
    );
}

fn write_process_fields(j: &mut Obj<'_>, p: &ProcessInfo, tid: Option<u32>) {
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
    if let Some(tid) = tid {
        j.begin("thread");
        j.u64("id", u64::from(tid));
        j.end();
    }
    j.end();

    j.begin("user");
    j.u64_as_str("id", u64::from(p.uid));
    j.end();
    j.begin("group");
    j.u64_as_str("id", u64::from(p.gid));
    j.end();
}

/// `source.*`, `destination.*`, `network.*`: the same bytes for every
/// event of a connection (the Community ID alone is a SHA-1), so they are
/// written once and then copied (see [`members_cached`]).
fn connection_fields(
    j: &mut Obj<'_>,
    flow: &Flow,
    src: Endpoint,
    dst: Endpoint,
    protocol: Option<&'static str>,
) {
    connection_fields_domain(j, flow, src, dst, protocol, None);
}

/// [`connection_fields`] with `destination.domain`: the name the host
/// resolved to the destination's address (`weft_core::resolved`). The same
/// bytes for every event of a connection (the Community ID alone is a
/// SHA-1), so they are written once and then copied (see
/// [`members_cached`]).
fn connection_fields_domain(
    j: &mut Obj<'_>,
    flow: &Flow,
    src: Endpoint,
    dst: Endpoint,
    protocol: Option<&'static str>,
    domain: Option<&str>,
) {
    type Key = (
        Flow,
        Endpoint,
        Endpoint,
        Option<&'static str>,
        Option<Box<str>>,
    );
    thread_local! {
        static CACHE: FragmentCache<Key> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let hash = flow.cookie
        ^ u64::from(flow.local.port) << 16
        ^ u64::from(flow.remote.port) << 32
        ^ protocol.map_or(0, |p| p.len() as u64) << 48
        ^ u64::from(src == flow.local);
    members_cached(
        j,
        &CACHE,
        hash,
        |k| k.0 == *flow && k.1 == src && k.2 == dst && k.3 == protocol && k.4.as_deref() == domain,
        || (*flow, src, dst, protocol, domain.map(Box::from)),
        |j| write_connection_fields(j, flow, src, dst, protocol, domain),
    );
}

fn write_connection_fields(
    j: &mut Obj<'_>,
    flow: &Flow,
    src: Endpoint,
    dst: Endpoint,
    protocol: Option<&str>,
    domain: Option<&str>,
) {
    j.begin("source");
    j.ip("ip", src.ip);
    j.u64("port", u64::from(src.port));
    j.end();
    j.begin("destination");
    j.ip("ip", dst.ip);
    j.u64("port", u64::from(dst.port));
    if let Some(d) = domain {
        j.str("domain", d);
    }
    j.end();
    j.begin("network");
    j.str("transport", "tcp");
    // From the address actually on the wire: an IPv4-mapped IPv6
    // socket address carries IPv4 packets.
    j.str("type", flow.network_type());
    if let Some(protocol) = protocol {
        j.str("protocol", protocol);
    }
    j.str("community_id", &flow.community_id());
    j.end();
}

/// Opens `weft` and writes `weft.schema`, `weft.process`, `weft.flow`; the
/// caller adds its own fields and closes it.
fn weft_head(j: &mut Obj<'_>, p: &ProcessInfo, flow: Option<&Flow>) {
    type Key = (u64, u64, Option<(u64, weft_core::event::Role)>);
    thread_local! {
        static CACHE: FragmentCache<Key> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let key = (
        p.cgroup_id,
        p.start_time_ns,
        flow.map(|f| (f.cookie, f.role)),
    );
    let hash = p.start_time_ns ^ flow.map_or(0, |f| f.cookie.rotate_left(17));
    members_cached(
        j,
        &CACHE,
        hash,
        |k| *k == key,
        || key,
        |j| write_weft_head(j, p, flow),
    );
}

fn write_weft_head(j: &mut Obj<'_>, p: &ProcessInfo, flow: Option<&Flow>) {
    j.begin("weft");
    j.begin("schema");
    j.str("version", SCHEMA_VERSION);
    j.end();
    j.begin("process");
    j.u64("cgroup_id", p.cgroup_id);
    j.u64("start_time_ns", p.start_time_ns);
    j.end();
    if let Some(flow) = flow {
        j.begin("flow");
        if flow.cookie != 0 {
            j.u64("cookie", flow.cookie);
        }
        j.str("role", http::role_name(flow.role));
        j.end();
    }
}

/// `key: {name: value | [values]}` for the regular (non-pseudo) fields of
/// `headers`: names lower-case, a name seen more than once gets an array of
/// its values in order, names in order of first appearance. Absent when
/// there are no such fields.
fn header_object(j: &mut Obj<'_>, key: &str, headers: &Headers, redact: bool) {
    // Pseudo-header fields (decoders put them first) are not headers here.
    let first = headers.iter().take_while(Field::is_pseudo).count();
    let n = headers.len();
    if headers.regular().next().is_none() {
        return;
    }
    let field = |i: usize| headers.get_index(i);
    j.begin(key);
    // Few fields (the common case): each name is compared with the ones
    // before it, no allocation. Many: grouped through a sorted index.
    if n - first <= 32 {
        for i in first..n {
            let Some(f) = field(i).filter(|f| !f.is_pseudo()) else {
                continue;
            };
            if (first..i).any(|k| field(k).is_some_and(|g| g.name.eq_ignore_ascii_case(f.name))) {
                continue; // written with the first field of its name
            }
            header_key(j, f.name);
            let dup = (i + 1..n)
                .filter_map(field)
                .any(|g| g.name.eq_ignore_ascii_case(f.name));
            if !dup {
                push_json_bytes(j.out, &http::shown_value(&f, redact));
                continue;
            }
            j.out.push(b'[');
            push_json_bytes(j.out, &http::shown_value(&f, redact));
            for g in (i + 1..n).filter_map(field) {
                if g.name.eq_ignore_ascii_case(f.name) {
                    j.out.push(b',');
                    push_json_bytes(j.out, &http::shown_value(&g, redact));
                }
            }
            j.out.push(b']');
        }
        j.end();
        return;
    }
    let regular: Vec<Field<'_>> = headers.regular().collect();
    let lower: Vec<Vec<u8>> = regular
        .iter()
        .map(|f| f.name.to_ascii_lowercase())
        .collect();
    // Group equal names: sort indices by (name, position), then emit the
    // groups in order of their first position.
    let mut order: Vec<usize> = (0..lower.len()).collect();
    order.sort_unstable_by(|&a, &b| lower[a].cmp(&lower[b]).then(a.cmp(&b)));
    let mut groups: Vec<(usize, usize)> = Vec::new(); // ranges of `order`
    let mut start = 0;
    for i in 1..=order.len() {
        if i == order.len() || lower[order[i]] != lower[order[start]] {
            groups.push((start, i));
            start = i;
        }
    }
    groups.sort_unstable_by_key(|&(s, _)| order[s]);
    for (s, e) in groups {
        header_key(j, &lower[order[s]]);
        let value = |i: usize| http::shown_value(&regular[i], redact);
        if e - s == 1 {
            push_json_bytes(j.out, &value(order[s]));
        } else {
            j.out.push(b'[');
            for (k, &i) in order[s..e].iter().enumerate() {
                if k > 0 {
                    j.out.push(b',');
                }
                push_json_bytes(j.out, &value(i));
            }
            j.out.push(b']');
        }
    }
    j.end();
}

/// A header name as a key: lower-case, escaped like any untrusted text.
fn header_key(j: &mut Obj<'_>, name: &[u8]) {
    if !j.first {
        j.out.push(b',');
    }
    j.first = false;
    push_header_key(j.out, name);
}

/// `"name":` for a header name: lower-case, escaped like any untrusted text.
fn push_header_key(out: &mut Vec<u8>, name: &[u8]) {
    if is_plain_ascii(name) && !name.iter().any(u8::is_ascii_uppercase) {
        push_plain(out, name);
    } else if name.iter().any(u8::is_ascii_uppercase) {
        push_json_str(out, &String::from_utf8_lossy(&name.to_ascii_lowercase()));
    } else {
        match std::str::from_utf8(name) {
            Ok(s) => push_json_str(out, s),
            Err(_) => push_json_str(out, &String::from_utf8_lossy(name)),
        }
    }
    out.push(b':');
}

/// ECS `tls.*`: the connection's TLS session facts, the same bytes for
/// every event of the connection: written once per session (the cache holds
/// the `Arc`, so its address cannot be reused for another session while it
/// is cached).
fn ecs_tls(j: &mut Obj<'_>, s: &Arc<TlsSession>) {
    thread_local! {
        static CACHE: FragmentCache<Arc<TlsSession>> = const {
            std::cell::RefCell::new(Vec::new())
        };
    }
    let hash = Arc::as_ptr(s) as usize as u64 >> 4;
    members_cached(
        j,
        &CACHE,
        hash,
        |k| Arc::ptr_eq(k, s),
        || Arc::clone(s),
        |j| write_ecs_tls(j, s, false),
    );
}

/// `tls.*` of `s`: the facts known so far on every event of a connection
/// (`handshake` false), or on its handshake event (`true`: `established`
/// and `client` always there, with the cipher suites the client offered).
fn write_ecs_tls(j: &mut Obj<'_>, s: &TlsSession, handshake: bool) {
    j.begin("tls");
    if let Some(v) = &s.version {
        j.str("version", v);
    }
    if let Some(v) = s.version_protocol {
        j.str("version_protocol", v);
    }
    if let Some(v) = &s.cipher {
        j.str("cipher", v);
    }
    if let Some(v) = &s.next_protocol {
        j.str("next_protocol", v);
    }
    if handshake {
        j.bool("established", s.established == Some(true));
    } else if let Some(v) = s.established {
        j.bool("established", v);
    }
    if handshake || s.server_name.is_some() || s.ja4.is_some() {
        j.begin("client");
        if let Some(v) = &s.server_name {
            j.str("server_name", v);
        }
        if handshake && !s.client_ciphers.is_empty() {
            j.str_iter(
                "supported_ciphers",
                s.client_ciphers
                    .iter()
                    .map(|c| weft_proto::tls::cipher_name(*c)),
            );
        }
        if let Some(v) = &s.ja4 {
            j.str("ja4", v);
        }
        j.end();
    }
    if let Some(v) = &s.ja4s {
        j.begin("server");
        j.str("ja4s", v);
        j.end();
    }
    j.end();
}

/// `weft.tls.*` facts beyond ECS (inside the open `weft.tls` object).
fn weft_tls(j: &mut Obj<'_>, s: &weft_core::event::TlsSession) {
    if !s.alpn_offered.is_empty() {
        j.str_array("alpn_offered", &s.alpn_offered);
    }
    if let Some(ns) = s.handshake_ns {
        j.u64("handshake_duration", ns);
    }
    if let Some(f) = &s.failure {
        j.str("failure", f);
    }
    if s.next_protocol_inferred {
        j.bool("next_protocol_inferred", true);
    }
}

/// `client_versions`: the versions the client offered, named.
fn client_versions(j: &mut Obj<'_>, s: &TlsSession) {
    if !s.client_versions.is_empty() {
        j.str_iter(
            "client_versions",
            s.client_versions
                .iter()
                .map(|v| weft_proto::tls::version_name(*v)),
        );
    }
}

/// A TLS handshake completed or failed (`event.action: tls-handshake`).
fn encode_handshake(h: &weft_core::event::TlsHandshake, out: &mut Vec<u8>) {
    let p = &*h.process;
    let s = &*h.session;
    let mut j = Obj::new(out);
    event_head(
        &mut j,
        h.timestamp_ns,
        "event",
        "[\"network\"]",
        "[\"connection\",\"protocol\"]",
    );
    j.str("action", "tls-handshake");
    j.str(
        "outcome",
        if s.established == Some(true) {
            "success"
        } else {
            "failure"
        },
    );
    if let Some(ns) = s.handshake_ns {
        j.u64("duration", ns);
    }
    j.end();
    process_fields(&mut j, p, None);
    if let Some(flow) = &h.flow {
        connection_fields(&mut j, flow, flow.source(), flow.destination(), None);
    }
    write_ecs_tls(&mut j, s, true);
    weft_head(&mut j, p, h.flow.as_ref());
    j.begin("tls");
    j.str("library", h.library.as_str());
    weft_tls(&mut j, s);
    client_versions(&mut j, s);
    j.end();
    j.end();
    j.finish();
}

/// Recently written fragments of one kind (per thread: each sink thread has
/// its own), in [`SETS`] sets of two (see [`set_lookup`]).
type FragmentCache<K> = std::cell::RefCell<Vec<Option<(K, Box<[u8]>)>>>;

/// Sets of a fragment cache; each holds the two most recently used entries
/// that hash to it.
pub(super) const SETS: usize = 64;

/// The index in a two-way cache of `SETS` sets (`2 * SETS` entries) of the
/// entry that `matches`, moved to the front of its set; or, when neither of
/// the set's two does, of the entry to overwrite (the front one, after the
/// older of the two was dropped for it). Two ways, not one: with one, two
/// contexts busy at the same time that hash to the same set (a connection's
/// client and server side, say) evict each other on every event.
pub(super) fn set_lookup<T>(
    entries: &mut [Option<T>],
    hash: u64,
    matches: impl Fn(&T) -> bool,
) -> (usize, bool) {
    let set = (hash.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize % SETS;
    let front = 2 * set;
    if entries[front].as_ref().is_some_and(&matches) {
        return (front, true);
    }
    entries.swap(front, front + 1);
    (front, entries[front].as_ref().is_some_and(&matches))
}

/// Writes the members `write` produces, or copies them from `cache` when it
/// holds bytes written for a key that `matches` (`hash` picks the set): the
/// fields describing a process or a connection repeat on every one of its
/// events, and copying ~200 bytes costs a fraction of formatting a dozen
/// keys, addresses and numbers. `write` must produce at least one member,
/// from a fresh state (no leading comma); the cached bytes depend on the key
/// alone.
fn members_cached<K>(
    j: &mut Obj<'_>,
    cache: &'static std::thread::LocalKey<FragmentCache<K>>,
    hash: u64,
    matches: impl Fn(&K) -> bool,
    make_key: impl FnOnce() -> K,
    write: impl FnOnce(&mut Obj<'_>),
) {
    if !j.first {
        j.out.push(b',');
    }
    j.first = true;
    cache.with(|c| {
        let Ok(mut slots) = c.try_borrow_mut() else {
            return write(j);
        };
        if slots.is_empty() {
            slots.resize_with(2 * SETS, || None);
        }
        let (i, hit) = set_lookup(&mut slots, hash, |(k, _)| matches(k));
        match &slots[i] {
            Some((_, bytes)) if hit => j.out.extend_from_slice(bytes),
            _ => {
                let start = j.out.len();
                write(j);
                debug_assert!(j.out.len() > start, "a cached fragment wrote nothing");
                slots[i] = Some((make_key(), j.out[start..].into()));
            }
        }
    });
    j.first = false;
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

    /// A constant `"key":` (or `"key":{`, ...), with its comma.
    #[inline]
    fn lit_key(&mut self, key: &'static [u8]) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(key);
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

    /// Untrusted bytes as a string; invalid UTF-8 becomes U+FFFD.
    fn bytes(&mut self, key: &str, value: &[u8]) {
        self.key(key);
        push_json_bytes(self.out, value);
    }

    fn timestamp(&mut self, key: &str, ns: u64) {
        self.key(key);
        self.out.push(b'"');
        push_rfc3339_utc(self.out, ns);
        self.out.push(b'"');
    }

    /// A value that is already JSON (a constant).
    fn raw(&mut self, key: &str, json: &str) {
        self.key(key);
        self.out.extend_from_slice(json.as_bytes());
    }

    fn u64(&mut self, key: &str, value: u64) {
        self.key(key);
        push_uint(self.out, value);
    }

    fn u64_as_str(&mut self, key: &str, value: u64) {
        self.key(key);
        self.out.push(b'"');
        push_digits(self.out, value, 1);
        self.out.push(b'"');
    }

    /// An array of (untrusted) strings.
    fn str_array(&mut self, key: &str, values: &[String]) {
        self.str_iter(key, values.iter());
    }

    fn str_iter<S: AsRef<str>>(&mut self, key: &str, values: impl Iterator<Item = S>) {
        self.key(key);
        self.out.push(b'[');
        for (i, v) in values.enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            push_json_str(self.out, v.as_ref());
        }
        self.out.push(b']');
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

/// Whether every byte is printable ASCII other than `"` and `\\`: such a
/// string is copied as it is (most header names and values, paths, ids),
/// without UTF-8 validation or the escaping loop.
#[inline]
pub(crate) fn is_plain_ascii(bytes: &[u8]) -> bool {
    let word = |w: &[u8]| <[u8; 8]>::try_from(w).map(u64::from_le_bytes);
    if bytes.len() < 8 {
        return bytes
            .iter()
            .all(|&b| b.is_ascii() && BYTE_CLASS[usize::from(b)] == 0);
    }
    // Long runs (bodies) a block at a time, with vector compares.
    let (blocks, rest) = bytes.as_chunks::<PLAIN_BLOCK>();
    if !blocks.iter().all(block_is_plain) {
        return false;
    }
    let mut words = rest.chunks_exact(8);
    for w in &mut words {
        if !word(w).is_ok_and(|w| !word_needs_look(w)) {
            return false;
        }
    }
    // The rest: the last eight bytes, overlapping what was checked.
    words.remainder().is_empty()
        || bytes
            .get(bytes.len() - 8..)
            .is_some_and(|w| word(w).is_ok_and(|w| !word_needs_look(w)))
}

/// Bytes checked together by [`block_is_plain`].
const PLAIN_BLOCK: usize = 64;

/// Whether every byte of `block` is printable ASCII other than `"` and `\`.
/// No branch per byte: the compiler turns the fold into vector compares, a
/// few instructions per block.
#[inline(always)]
fn block_is_plain(block: &[u8; PLAIN_BLOCK]) -> bool {
    let look = block.iter().fold(0u8, |acc, &b| {
        // One signed compare for below 0x20, 0x7f and 0x80 and above (+1
        // moves 0x7f to 0x80 and 0xff to 0), then `"` and `\\`.
        acc | u8::from((b.wrapping_add(1) as i8) < 0x21)
            | u8::from(b == b'"')
            | u8::from(b == b'\\')
    });
    look == 0
}

/// `"bytes"` for bytes that [`is_plain_ascii`].
#[inline]
pub(crate) fn push_plain(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    out.extend_from_slice(bytes);
    out.push(b'"');
}

/// Appends bytes as a JSON string literal, invalid UTF-8 replaced by U+FFFD.
#[inline]
fn push_json_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    if is_plain_ascii(bytes) {
        push_plain(out, bytes);
    } else {
        push_json_bytes_escaped(out, bytes);
    }
}

/// [`push_json_bytes`] for bytes that are not plain ASCII.
#[inline(never)]
fn push_json_bytes_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    // Valid UTF-8 (nearly always) is checked by the fast validator; the
    // lossy conversion is only for the rest.
    match std::str::from_utf8(bytes) {
        Ok(s) => push_json_str(out, s),
        Err(_) => push_json_str(out, &String::from_utf8_lossy(bytes)),
    }
}

/// Appends `s` as a JSON string literal.
///
/// Escapes what JSON requires (`"`, `\`, U+0000..=U+001F) and, so that the
/// output is also safe to print on a terminal, DEL, C1 controls and the
/// invisible format characters [`crate::escape_untrusted`] escapes (bidi
/// controls, zero-width characters, U+2028/U+2029...), as `\uXXXX` (a
/// surrogate pair above U+FFFF). Decoders see the original text unchanged.
pub(crate) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    if is_plain_ascii(s.as_bytes()) {
        return push_plain(out, s.as_bytes());
    }
    push_json_str_escaped(out, s);
}

/// [`push_json_str`] without the plain-ASCII check first (for text known
/// not to pass it; the result is the same either way).
pub(crate) fn push_json_str_escaped(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut run = 0; // start of the pending run of bytes copied as they are
    let mut i = 0;
    while i < bytes.len() {
        // Skip plain ASCII a block, then eight bytes, at a time (the common
        // case: HTTP text).
        if let Some(block) = bytes
            .get(i..i + PLAIN_BLOCK)
            .and_then(|b| <&[u8; PLAIN_BLOCK]>::try_from(b).ok())
            && block_is_plain(block)
        {
            i += PLAIN_BLOCK;
            continue;
        }
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
    if run < bytes.len() {
        out.extend_from_slice(&bytes[run..]);
    }
    out.push(b'"');
}

/// True unless all eight bytes of `w` are printable ASCII other than `"` and
/// `\` (bytes below 0x20, `"`, `\`, 0x7f and above need a look). Exact about
/// whether such a byte exists, which is all the caller asks.
#[inline]
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
    use weft_core::event::{Direction, Endpoint, Flow, Role};

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
            // Computed independently (Python hashlib, per the spec).
            "network": {"transport": "tcp", "type": "ipv4",
                        "community_id": "1:234TTkkACUcVxg4BbOfcRFjfYpw="},
            "weft": {
                "schema": {"version": "1.3"},
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

    fn session() -> weft_core::event::TlsSession {
        weft_core::event::TlsSession {
            version: Some("1.3".into()),
            version_protocol: Some("tls"),
            cipher: Some("TLS_AES_256_GCM_SHA384".into()),
            server_name: Some("bad\u{1b}[31m.example".into()),
            next_protocol: Some("h2".into()),
            next_protocol_inferred: false,
            alpn_offered: vec!["h2".into(), "http/1.1".into()],
            client_versions: vec![0x0304, 0x0303],
            client_ciphers: vec![0x1302],
            established: Some(true),
            handshake_ns: Some(3_000_000),
            failure: None,
            ja4: Some("t13d1516h2_8daaf6152771_e5627efa2ab1".into()),
            ja4s: Some("t130200_1301_234ea6891581".into()),
        }
    }

    #[test]
    fn session_facts_on_a_capture_event() {
        let mut d = sample();
        d.tls = Some(std::sync::Arc::new(session()));
        let v = parse(&encode(&d));
        assert_eq!(
            v["tls"],
            serde_json::json!({
                "version": "1.3", "version_protocol": "tls",
                "cipher": "TLS_AES_256_GCM_SHA384", "next_protocol": "h2",
                "established": true,
                "client": {"server_name": "bad\u{1b}[31m.example",
                           "ja4": "t13d1516h2_8daaf6152771_e5627efa2ab1"},
                "server": {"ja4s": "t130200_1301_234ea6891581"}
            })
        );
        assert_eq!(
            v["weft"]["tls"]["alpn_offered"],
            serde_json::json!(["h2", "http/1.1"])
        );
        assert_eq!(v["weft"]["tls"]["handshake_duration"], 3_000_000);
        assert_eq!(v["weft"]["tls"]["direction"], "write");
    }

    #[test]
    fn dns_answer_has_the_ecs_dns_fields() {
        let d = sample();
        // www.example.com A -> CNAME web.example.com -> A 93.184.216.34
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        m.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0x0e, 0x10, 0, 6]);
        m.extend_from_slice(b"\x03web\xc0\x10");
        m.extend_from_slice(&[0xc0, 45, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 93, 184, 216, 34]);
        let message = weft_proto::dns::parse(&m).expect("parses");
        let ev = Event::Dns(weft_core::event::Dns {
            timestamp_ns: d.timestamp_ns,
            process: d.process.clone(),
            tid: d.tid,
            flow: d.flow,
            direction: weft_core::event::Direction::Read,
            message: Box::new(message),
            tcp: false,
        });
        let mut sink = JsonSink::new(Vec::new());
        sink.write(&ev).expect("write");
        let v = parse(&String::from_utf8(sink.into_inner()).expect("utf-8"));
        assert_eq!(v["event"]["action"], "dns-answer");
        assert_eq!(v["network"]["protocol"], "dns");
        assert_eq!(v["network"]["transport"], "udp");
        assert_eq!(
            v["dns"],
            serde_json::json!({
                "id": 0x1234, "type": "answer",
                "question": {"name": "www.example.com", "type": "A", "class": "IN"},
                "response_code": "NOERROR",
                "answers": [
                    {"name": "www.example.com", "type": "CNAME", "class": "IN", "ttl": 3600,
                     "data": "web.example.com"},
                    {"name": "web.example.com", "type": "A", "class": "IN", "ttl": 60,
                     "data": "93.184.216.34"}
                ],
                "resolved_ip": ["93.184.216.34"]
            })
        );
    }

    #[test]
    fn destination_domain_rides_on_capture_events() {
        let mut d = sample();
        d.destination_domain = Some("api.example".into());
        let v = parse(&encode(&d));
        assert_eq!(v["destination"]["domain"], "api.example");
    }

    #[test]
    fn plaintext_and_first_bytes_captures_say_so() {
        let mut d = sample();
        d.library = weft_core::event::TlsLibrary::None;
        let v = parse(&encode(&d));
        assert_eq!(v["event"]["action"], "plain-write");
        assert_eq!(v["weft"]["tls"]["library"], "none");
        assert!(v["weft"]["payload"].get("first_bytes").is_none());
        d.first_bytes = true;
        let v = parse(&encode(&d));
        assert_eq!(v["weft"]["payload"]["first_bytes"], true);
    }

    #[test]
    fn handshake_event_success_and_failure() {
        let d = sample();
        let mut s = session();
        let mut ev = weft_core::event::TlsHandshake {
            timestamp_ns: d.timestamp_ns,
            process: d.process.clone(),
            flow: d.flow,
            library: d.library,
            session: std::sync::Arc::new(s.clone()),
        };
        let mut sink = JsonSink::new(Vec::new());
        sink.write(&Event::TlsHandshake(ev.clone())).expect("write");
        s.established = Some(false);
        s.failure = Some("alert unknown_ca sent".into());
        ev.session = std::sync::Arc::new(s);
        sink.write(&Event::TlsHandshake(ev)).expect("write");
        // The session stage's input never reaches the output.
        sink.write(&Event::TlsWire(weft_core::event::TlsWire::Alpn {
            cookie: 1,
            protocol: "h2".into(),
        }))
        .expect("write");
        let text = String::from_utf8(sink.into_inner()).expect("utf-8");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("valid JSON"))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let (ok, bad) = (&lines[0], &lines[1]);
        assert_eq!(ok["event"]["action"], "tls-handshake");
        assert_eq!(ok["event"]["outcome"], "success");
        assert_eq!(ok["event"]["duration"], 3_000_000);
        assert_eq!(ok["tls"]["established"], true);
        assert_eq!(
            ok["tls"]["client"]["supported_ciphers"],
            serde_json::json!(["TLS_AES_256_GCM_SHA384"])
        );
        assert_eq!(
            ok["weft"]["tls"]["client_versions"],
            serde_json::json!(["1.3", "1.2"])
        );
        assert_eq!(
            ok["tls"]["client"]["ja4"],
            "t13d1516h2_8daaf6152771_e5627efa2ab1"
        );
        assert_eq!(ok["tls"]["server"]["ja4s"], "t130200_1301_234ea6891581");
        assert_eq!(ok["destination"]["port"], 443);
        assert_eq!(bad["event"]["outcome"], "failure");
        assert_eq!(bad["tls"]["established"], false);
        assert_eq!(bad["weft"]["tls"]["failure"], "alert unknown_ca sent");
        // The untrusted SNI is escaped in the raw line.
        assert!(!text.contains('\u{1b}'));
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

    /// Community IDs are cached per 5-tuple: connections that alternate
    /// keep their own ids (reference values computed outside weft).
    #[test]
    fn community_ids_of_alternating_connections() {
        let a = sample();
        let mut b = sample();
        let fb = b.flow.as_mut().expect("sample has a flow");
        fb.local = Endpoint {
            ip: "128.232.110.120".parse().expect("ip"),
            port: 34855,
        };
        fb.remote = Endpoint {
            ip: "66.35.250.204".parse().expect("ip"),
            port: 80,
        };
        for _ in 0..3 {
            for (d, want) in [
                (&a, "1:234TTkkACUcVxg4BbOfcRFjfYpw="),
                (&b, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
            ] {
                assert_eq!(parse(&encode(d))["network"]["community_id"], want);
            }
        }
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
        // An escape at each position relative to the 8-byte stride and
        // the 64-byte block.
        for len in 0..140 {
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
    fn plain_ascii_is_exact_for_every_byte_at_every_offset() {
        let plain = |b: u8| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\';
        for len in 1..100 {
            for pos in [0, 1, 7, 8, 31, 32, 33, 63, 64, len / 2, len - 1] {
                if pos >= len {
                    continue;
                }
                for b in 0..=255u8 {
                    let mut s = vec![b'x'; len];
                    s[pos] = b;
                    assert_eq!(is_plain_ascii(&s), plain(b), "len {len} at {pos}: {b:#x}");
                }
            }
        }
        assert!(is_plain_ascii(b""));
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

    // ---- HTTP transactions ----

    use weft_core::event::Http;
    use weft_proto::{Body, Transaction};

    use crate::test_support::{GZIP_BODY, h1_event, h2_event};

    fn encode_http_with(h: &Http, opts: JsonOptions) -> Value {
        http_event::tests::assert_same_as_reference(h);
        let mut sink = JsonSink::with_options(Vec::new(), opts);
        sink.write(&Event::Http(h.clone())).expect("write to Vec");
        parse(&String::from_utf8(sink.into_inner()).expect("JSON lines are UTF-8"))
    }

    fn encode_h(h: &Http) -> Value {
        encode_http_with(h, JsonOptions::default())
    }

    fn tx(h: &mut Http) -> &mut Transaction {
        &mut h.transaction
    }

    #[test]
    fn http1_every_field_has_its_exact_value() {
        let v = encode_h(&h1_event());
        let expected = serde_json::json!({
            "@timestamp": "2026-11-27T20:03:44.123456789Z",
            "ecs": {"version": ECS_VERSION},
            "event": {
                "kind": "event",
                "category": ["network", "web"],
                "type": ["access", "protocol"],
                "action": "http-transaction",
                "duration": 293_000_000
            },
            "process": {
                "pid": 1234,
                "name": "curl",
                "executable": "/usr/bin/curl",
                "entity_id": "b1d2c3:1234:99000",
                "parent": {"pid": 1000}
            },
            "user": {"id": "1001"},
            "group": {"id": "1002"},
            "source": {"ip": "10.0.0.5", "port": 51234},
            "destination": {"ip": "93.184.216.34", "port": 443},
            "network": {"transport": "tcp", "type": "ipv4", "protocol": "http",
                        "community_id": "1:234TTkkACUcVxg4BbOfcRFjfYpw="},
            "url": {
                "full": "https://api.example/users?id=7&access_token=[REDACTED]",
                "scheme": "https",
                "domain": "api.example",
                "path": "/users",
                "query": "id=7&access_token=[REDACTED]"
            },
            "http": {
                "version": "1.1",
                "request": {
                    "method": "GET",
                    "headers": {
                        "host": "api.example",
                        "user-agent": "curl/8.5.0",
                        "accept": "*/*",
                        "authorization": "Bearer [REDACTED]",
                        "cookie": "sid=[REDACTED]; theme=[REDACTED]"
                    },
                    "body": {"bytes": 0}
                },
                "response": {
                    "status_code": 200,
                    "mime_type": "application/json",
                    "headers": {
                        "content-type": "application/json; charset=utf-8",
                        "set-cookie": ["sid=[REDACTED]; Path=/; HttpOnly", "theme=[REDACTED]"],
                        "content-length": "36"
                    },
                    "body": {
                        "bytes": 36,
                        "content": "{\"users\":[],\"refresh_token\":\"[REDACTED]\"}"
                    }
                }
            },
            "user_agent": {"original": "curl/8.5.0"},
            "weft": {
                "schema": {"version": SCHEMA_VERSION},
                "process": {"cgroup_id": 4242, "start_time_ns": 99000},
                "flow": {"cookie": 77, "role": "client"},
                "tls": {"library": "openssl"},
                "http": {
                    "stream_id": 1,
                    "role": "client",
                    "end": "complete",
                    "complete": true,
                    "headers_incomplete": false,
                    "headers_truncated": false,
                    "body_truncated": false,
                    "data_lost": false,
                    "redacted": true,
                    "response": {"body": {"kept": 36, "truncated": false, "decoded": false}}
                }
            }
        });
        assert_eq!(v, expected);
    }

    #[test]
    fn http10_exchange_is_version_1_0() {
        let mut h = h1_event();
        tx(&mut h).http1_minor = Some(0);
        assert_eq!(encode_h(&h)["http"]["version"], "1.0");
        tx(&mut h).http1_minor = None;
        assert_eq!(encode_h(&h)["http"]["version"], "1.1");
    }

    #[test]
    fn http2_seen_by_the_server() {
        let v = encode_h(&h2_event());
        assert_eq!(v["http"]["version"], "2");
        assert_eq!(v["http"]["request"]["method"], "POST");
        assert_eq!(
            v["http"]["request"]["mime_type"],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(v["url"]["full"], "https://api.example/login");
        assert!(v["url"].get("query").is_none());
        // The client (source) is the peer that connected to nginx.
        assert_eq!(
            v["source"],
            serde_json::json!({"ip": "10.0.0.5", "port": 48372})
        );
        assert_eq!(
            v["destination"],
            serde_json::json!({"ip": "10.0.0.9", "port": 443})
        );
        assert_eq!(v["weft"]["flow"]["role"], "server");
        assert_eq!(v["weft"]["http"]["role"], "server");
        assert_eq!(v["weft"]["http"]["stream_id"], 3);
        assert_eq!(v["weft"]["tls"]["library"], "boringssl");
        assert_eq!(v["event"]["duration"], 1_500_000);
        assert_eq!(v["user_agent"]["original"], "python-httpx/0.27");
        // Pseudo-header fields are not headers: they are method, url, status.
        let req_headers = v["http"]["request"]["headers"].as_object().expect("object");
        assert_eq!(
            req_headers.keys().collect::<Vec<_>>(),
            ["content-type", "user-agent"]
        );
        // The login form's password is masked; the gzip body is base64, whole.
        let req_body = &v["http"]["request"]["body"];
        assert_eq!(req_body["content"], "user=bob&password=[REDACTED]");
        assert_eq!(req_body["bytes"], 25);
        let resp_body = &v["http"]["response"]["body"];
        assert!(resp_body.get("content").is_none());
        assert_eq!(resp_body["bytes"], 31);
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(resp_body["base64"].as_str().expect("base64"))
            .expect("standard base64");
        assert_eq!(decoded, GZIP_BODY);
        assert_eq!(v["http"]["response"]["headers"]["content-encoding"], "gzip");
    }

    #[test]
    fn no_redact_keeps_every_value() {
        let v = encode_http_with(&h1_event(), JsonOptions::default().redact(false));
        assert_eq!(
            v["url"]["full"],
            "https://api.example/users?id=7&access_token=abc123"
        );
        assert_eq!(v["url"]["query"], "id=7&access_token=abc123");
        let req = &v["http"]["request"]["headers"];
        assert_eq!(req["authorization"], "Bearer s3cr3t");
        assert_eq!(req["cookie"], "sid=xyz; theme=dark");
        let resp = &v["http"]["response"];
        assert_eq!(
            resp["headers"]["set-cookie"],
            serde_json::json!(["sid=n3w; Path=/; HttpOnly", "theme=light"])
        );
        assert_eq!(
            resp["body"]["content"],
            "{\"users\":[],\"refresh_token\":\"r-123\"}"
        );
        assert_eq!(v["weft"]["http"]["redacted"], false);
        let v = encode_http_with(&h2_event(), JsonOptions::default().redact(false));
        assert_eq!(
            v["http"]["request"]["body"]["content"],
            "user=bob&password=hunter2"
        );
    }

    #[test]
    fn default_encode_event_redacts() {
        let mut out = Vec::new();
        encode_event(&Event::Http(h1_event()), &mut out);
        let text = String::from_utf8(out).expect("UTF-8");
        assert!(!text.contains("s3cr3t") && !text.contains("abc123") && !text.contains("r-123"));
        assert!(JsonSink::new(Vec::new()).options().redact);
    }

    #[test]
    fn repeated_headers_become_arrays_in_first_seen_order() {
        let mut h = h1_event();
        tx(&mut h).request.headers = [
            (":method", "GET"),
            (":path", "/"),
            ("x-b", "1"),
            ("accept", "a"),
            ("X-B", "2"),
            ("x-a", "only"),
            ("x-b", "3"),
            ("Accept", "b"),
        ]
        .into_iter()
        .collect();
        let mut out = Vec::new();
        encode_event(&Event::Http(h), &mut out);
        let text = String::from_utf8(out).expect("UTF-8");
        // Order is part of the written line even if JSON does not care.
        assert!(
            text.contains(r#""headers":{"x-b":["1","2","3"],"accept":["a","b"],"x-a":"only"}"#),
            "{text}"
        );
        parse(&(text + "\n"));
    }

    #[test]
    fn never_indexed_fields_are_masked() {
        // HPACK: `:method: GET`, `:path: /` (static table), then two literals
        // never indexed (the sender's mark for sensitive values) with new
        // names: `x-custom: abc`, `authorization: Bearer t`.
        let mut headers = weft_proto::Headers::new();
        let mut dec = weft_proto::hpack::Decoder::new(&weft_proto::Limits::default());
        dec.decode(
            b"\x82\x84\x10\x08x-custom\x03abc\x10\x0dauthorization\x08Bearer t",
            &mut headers,
        )
        .expect("valid block");
        assert_eq!(headers.iter().filter(|f| f.sensitive).count(), 2);
        let mut h = h2_event();
        tx(&mut h).request.headers = headers;
        let v = encode_h(&h);
        let req = &v["http"]["request"]["headers"];
        assert_eq!(req["x-custom"], "[REDACTED]");
        assert_eq!(req["authorization"], "Bearer [REDACTED]");
        let v = encode_http_with(&h, JsonOptions::default().redact(false));
        assert_eq!(v["http"]["request"]["headers"]["x-custom"], "abc");
    }

    #[test]
    fn incomplete_transaction_fields() {
        let mut h = h2_event();
        let t = tx(&mut h);
        t.end = weft_proto::End::Reset {
            by: weft_proto::Direction::ClientToServer,
            error_code: 8,
        };
        t.promised_by = Some(1);
        t.interim = vec![
            [(":status", "100")].into_iter().collect(),
            [(":status", "103"), ("link", "</s.css>")]
                .into_iter()
                .collect(),
        ];
        t.response = weft_proto::Message::default();
        t.request.headers_truncated = true;
        t.request.body.truncated = true;
        t.request.trailers = [("x-checksum", "1"), ("x-api-key", "k")]
            .into_iter()
            .collect();
        h.duration_ns = None;
        h.transaction.request.first_ns = 0;
        let v = encode_h(&h);
        assert!(v["event"].get("duration").is_none());
        assert!(v["http"].get("response").is_none());
        let w = &v["weft"]["http"];
        assert_eq!(w["end"], "reset");
        assert_eq!(w["reset_by"], "client");
        assert_eq!(w["error_code"], 8);
        assert_eq!(w["promised_by"], 1);
        assert_eq!(w["complete"], false);
        assert_eq!(w["headers_truncated"], true);
        assert_eq!(w["headers_incomplete"], false);
        assert_eq!(w["body_truncated"], true);
        assert_eq!(w["interim"], serde_json::json!([100, 103]));
        assert_eq!(
            w["request"]["trailers"],
            serde_json::json!({"x-checksum": "1", "x-api-key": "[REDACTED]"})
        );
        assert!(w.get("response").is_none());

        let t = tx(&mut h);
        t.end = weft_proto::End::GoAway { error_code: 2 };
        let v = encode_h(&h);
        assert_eq!(v["weft"]["http"]["end"], "goaway");
        assert_eq!(v["weft"]["http"]["error_code"], 2);
        assert!(v["weft"]["http"].get("reset_by").is_none());
        for (end, name) in [
            (weft_proto::End::ConnectionClosed, "connection_closed"),
            (weft_proto::End::Evicted, "evicted"),
            (weft_proto::End::Desync, "desync"),
        ] {
            tx(&mut h).end = end;
            assert_eq!(encode_h(&h)["weft"]["http"]["end"], name);
        }

        // Only a response seen (joined mid-way): no request, no URL.
        let mut h = h1_event();
        tx(&mut h).request = weft_proto::Message::default();
        let v = encode_h(&h);
        assert!(v["http"].get("request").is_none());
        assert!(v.get("url").is_none());
        assert!(v.get("user_agent").is_none());
        assert_eq!(v["http"]["response"]["status_code"], 200);
    }

    #[test]
    fn url_fallbacks() {
        // No host header: the server address is the authority.
        let mut h = h1_event();
        tx(&mut h).request.headers = [(":method", "GET"), (":path", "/a?")].into_iter().collect();
        let v = encode_h(&h);
        assert_eq!(v["url"]["full"], "https://93.184.216.34:443/a?");
        assert_eq!(v["url"]["domain"], "93.184.216.34");
        assert_eq!(v["url"]["port"], 443);
        assert_eq!(v["url"]["query"], "");
        // And no connection either: only the path is known.
        h.flow = None;
        let v = encode_h(&h);
        assert_eq!(v["url"], serde_json::json!({"path": "/a", "query": ""}));
        for absent in ["source", "destination", "network"] {
            assert!(v.get(absent).is_none(), "{absent}");
        }
        assert!(v["weft"].get("flow").is_none());
        assert_eq!(v["weft"]["http"]["role"], "client");
        // Referrer (ECS http.request.referrer) redacted like a URL.
        let mut h = h1_event();
        tx(&mut h)
            .request
            .headers
            .push(b"referer", b"https://app.example/cb?code=xyz&x=1");
        let v = encode_h(&h);
        assert_eq!(
            v["http"]["request"]["referrer"],
            "https://app.example/cb?code=[REDACTED]&x=1"
        );
        assert_eq!(
            v["http"]["request"]["headers"]["referer"],
            "https://app.example/cb?code=[REDACTED]&x=1"
        );
    }

    #[test]
    fn bodies_text_or_base64() {
        let mut h = h1_event();
        let resp = &mut tx(&mut h).response;
        // Cut by the body limit inside "é": the text stops before it.
        resp.headers = [(":status", "200"), ("content-type", "text/plain")]
            .into_iter()
            .collect();
        resp.body = Body {
            data: "café".as_bytes()[..4].to_vec(),
            size: 1000,
            truncated: true,
            ..Body::default()
        };
        let v = encode_h(&h);
        assert_eq!(
            v["http"]["response"]["body"],
            serde_json::json!({"bytes": 1000, "content": "caf"})
        );
        assert_eq!(v["weft"]["http"]["body_truncated"], true);
        // The same bytes, not cut: invalid UTF-8, so base64.
        let resp = &mut tx(&mut h).response;
        resp.body.truncated = false;
        let v = encode_h(&h);
        assert_eq!(v["http"]["response"]["body"]["base64"], "Y2Fmww==");
        // Text with controls stays text (JSON escapes it).
        let resp = &mut tx(&mut h).response;
        resp.body.data = b"a\0\x1b".to_vec();
        let v = encode_h(&h);
        assert_eq!(v["http"]["response"]["body"]["content"], "a\0\x1b");
    }

    #[test]
    fn hostile_http_fields_stay_inside_their_strings() {
        let mut h = h1_event();
        let t = tx(&mut h);
        t.request.headers.push(b"x-\"evil\":1,\"", b"\"}\n\xff\xfe");
        t.request.headers.push(b"X-UPPER", "\u{202e}".as_bytes());
        t.request.headers.push(b":method", b"ignored-second-method");
        let mut out = Vec::new();
        encode_event(&Event::Http(h), &mut out);
        let line = String::from_utf8(out).expect("UTF-8");
        assert!(!line.contains('\n'));
        assert!(line.contains("\\u202e"));
        let v = parse(&(line + "\n"));
        let headers = &v["http"]["request"]["headers"];
        assert_eq!(headers["x-\"evil\":1,\""], "\"}\n\u{fffd}\u{fffd}");
        assert_eq!(headers["x-upper"], "\u{202e}");
        assert!(headers.get(":method").is_none());
        assert_eq!(v["http"]["request"]["method"], "GET");
    }

    #[test]
    fn decoded_bodies_and_how_they_came_about() {
        // The decoder removed the gzip coding: the content is the JSON text,
        // redacted; `bytes` stays the size on the wire.
        let mut h = h2_event();
        let body = &mut tx(&mut h).response.body;
        body.decoded = Some(weft_proto::Decoded {
            data: br#"{"user":[],"id_token":"eyJ"}"#.to_vec(),
            size: 27,
            truncated: false,
            error: None,
        });
        body.sniffed_type = None;
        let v = encode_h(&h);
        assert_eq!(
            v["http"]["response"]["body"],
            serde_json::json!({"bytes": 31, "content": "{\"user\":[],\"id_token\":\"[REDACTED]\"}"})
        );
        assert_eq!(
            v["weft"]["http"]["response"]["body"],
            serde_json::json!({"kept": 31, "truncated": false, "decoded": true, "decoded_bytes": 27})
        );
        assert_eq!(v["weft"]["http"]["request"]["body"]["decoded"], false);

        // Decoding stopped early: what was decoded is shown, flagged partial.
        let body = &mut tx(&mut h).response.body;
        body.decoded = Some(weft_proto::Decoded {
            data: "{\"a\":\"é".as_bytes()[..7].to_vec(),
            size: 7,
            truncated: true,
            error: Some(weft_proto::DecodeError::OutputLimit),
        });
        let v = encode_h(&h);
        assert_eq!(v["http"]["response"]["body"]["content"], "{\"a\":\"");
        let w = &v["weft"]["http"];
        assert_eq!(w["body_truncated"], true);
        assert_eq!(w["response"]["body"]["truncated"], true);
        assert_eq!(
            w["response"]["body"]["decode_error"],
            "decompressed output reached Limits::max_decompressed_size"
        );

        // Not decodable at all: the bytes as sent, base64, and why.
        let body = &mut tx(&mut h).response.body;
        body.decoded = Some(weft_proto::Decoded {
            error: Some(weft_proto::DecodeError::Unsupported),
            ..Default::default()
        });
        body.sniffed_type = Some("application/gzip");
        let v = encode_h(&h);
        assert!(v["http"]["response"]["body"].get("base64").is_some());
        assert_eq!(
            v["weft"]["http"]["response"]["body"],
            serde_json::json!({
                "kept": 31, "truncated": false, "decoded": false,
                "decode_error": "unsupported content coding",
                "sniffed_type": "application/gzip"
            })
        );
    }

    #[test]
    fn grpc_message_counts() {
        let mut h = h2_event();
        let body = &mut tx(&mut h).response.body;
        let msg = |compressed| weft_proto::GrpcMessage {
            compressed,
            trailers: false,
            length: 1,
            offset: 5,
            kept: 1,
            decoded: None,
        };
        body.grpc = Some(Box::new(weft_proto::GrpcMessages {
            messages: vec![msg(true), msg(false)],
            dropped: 3,
            error: Some(weft_proto::grpc::GrpcError::Truncated),
        }));
        let v = encode_h(&h);
        assert_eq!(
            v["weft"]["http"]["response"]["grpc"],
            serde_json::json!({"messages": 5, "compressed": 1, "error": "gRPC body ends inside a message"})
        );
    }
}

#[cfg(test)]
mod loss_tests {
    use super::*;
    use weft_core::event::Loss;

    #[test]
    fn loss_event_lists_each_reason() {
        let mut out = Vec::new();
        encode_event(
            &Event::Loss(Loss {
                timestamp_ns: 1_700_000_000_000_000_000,
                interval_ns: 10_000_000_000,
                counts: vec![("ring_full_data", 3), ("truncated", 1)],
            }),
            &mut out,
        );
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(v["event"]["action"], "weft-loss");
        assert_eq!(v["event"]["kind"], "metric");
        assert_eq!(v["event"]["duration"], 10_000_000_000u64);
        assert_eq!(v["weft"]["loss"]["ring_full_data"], 3);
        assert_eq!(v["weft"]["loss"]["truncated"], 1);
        assert_eq!(out.last(), Some(&b'\n'));
    }
}
