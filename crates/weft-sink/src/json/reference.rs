//! The http event by the general writers, as it was written before
//! `http_event`: the tests hold the fast writer to these bytes.

use std::borrow::Cow;

use weft_core::event::Http;
use weft_proto::{Body, End, Message};

use super::*;
use crate::http::HttpUrl;

/// One decoded HTTP transaction (see `docs/schema.md`, "The http event"),
/// written by the general writers: what `http_event::encode_http` must
/// give byte for byte (the tests compare the two).
pub(super) fn encode_http(h: &Http, opts: &JsonOptions, out: &mut Vec<u8>) {
    let p = &*h.process;
    let t = &*h.transaction;
    let redact = opts.redact;
    let ends = http::endpoints(h);
    let url = HttpUrl::with_scheme(
        t,
        ends.map(|(_, server)| server),
        redact,
        h.library != weft_core::event::TlsLibrary::None,
    );
    let mut j = Obj::new(out);

    event_head(
        &mut j,
        h.timestamp_ns,
        "event",
        "[\"network\",\"web\"]",
        "[\"access\",\"protocol\"]",
    );
    j.str("action", "http-transaction");
    if let Some(ns) = http::duration_ns(h) {
        j.u64("duration", ns);
    }
    j.end();

    process_fields(&mut j, p, None);
    if let (Some(flow), Some((client, server))) = (&h.flow, ends) {
        connection_fields_domain(
            &mut j,
            flow,
            client,
            server,
            Some("http"),
            h.destination_domain.as_deref(),
        );
    }

    if !url.is_empty() {
        j.begin("url");
        if let Some(full) = url.full() {
            j.bytes("full", full);
            j.str(
                "scheme",
                if h.library == weft_core::event::TlsLibrary::None {
                    "http"
                } else {
                    "https"
                },
            );
        }
        if let Some(domain) = url.domain() {
            j.bytes("domain", domain);
        }
        if let Some(port) = url.port() {
            j.u64("port", u64::from(port));
        }
        if let Some(path) = url.path() {
            j.bytes("path", path);
        }
        if let Some(query) = url.query() {
            j.bytes("query", query);
        }
        if let Some(fragment) = url.fragment() {
            j.bytes("fragment", fragment);
        }
        j.end();
    }

    j.begin("http");
    j.str("version", t.version());
    let req = &t.request;
    if req.seen {
        j.begin("request");
        if let Some(method) = t.method() {
            j.bytes("method", method);
        }
        if let Some(mime) = http::mime_type(req) {
            j.bytes("mime_type", mime);
        }
        if let Some(referrer) = req.headers.get(b"referer") {
            let shown = if redact {
                weft_core::redact::mask_header_value(b"referer", referrer)
            } else {
                Cow::Borrowed(referrer)
            };
            j.bytes("referrer", &shown);
        }
        header_object(&mut j, "headers", &req.headers, redact);
        body_object(&mut j, req, redact);
        j.end();
    }
    let resp = &t.response;
    if resp.seen {
        j.begin("response");
        if let Some(status) = t.status() {
            j.u64("status_code", u64::from(status));
        }
        if let Some(mime) = http::mime_type(resp) {
            j.bytes("mime_type", mime);
        }
        header_object(&mut j, "headers", &resp.headers, redact);
        body_object(&mut j, resp, redact);
        j.end();
    }
    j.end();

    if let Some(ua) = req.headers.get(b"user-agent") {
        j.begin("user_agent");
        j.bytes("original", ua);
        j.end();
    }

    if let Some(s) = &h.tls {
        ecs_tls(&mut j, s);
    }
    weft_head(&mut j, p, h.flow.as_ref());
    j.begin("tls");
    j.str("library", h.library.as_str());
    if let Some(s) = &h.tls {
        weft_tls(&mut j, s);
    }
    j.end();
    j.begin("http");
    j.u64("stream_id", u64::from(t.stream_id));
    if let Some(parent) = t.promised_by {
        j.u64("promised_by", u64::from(parent));
    }
    j.str("role", http::role_name(h.role));
    j.str("end", http::end_name(t.end));
    match t.end {
        End::Reset { by, error_code } => {
            j.str("reset_by", http::direction_side(by));
            j.u64("error_code", u64::from(error_code));
        }
        End::GoAway { error_code } => j.u64("error_code", u64::from(error_code)),
        _ => {}
    }
    let both = [req, resp];
    j.bool("complete", t.is_complete());
    j.bool(
        "headers_incomplete",
        both.iter().any(|m| m.headers_incomplete),
    );
    j.bool(
        "headers_truncated",
        both.iter().any(|m| m.headers_truncated),
    );
    j.bool(
        "body_truncated",
        both.iter().any(|m| http::content_is_partial(&m.body)),
    );
    j.bool("data_lost", both.iter().any(|m| m.data_lost));
    if !t.interim.is_empty() {
        j.key("interim");
        j.out.push(b'[');
        for (i, status) in http::interim_statuses(t).enumerate() {
            if i > 0 {
                j.out.push(b',');
            }
            push_digits(j.out, u64::from(status), 1);
        }
        j.out.push(b']');
    }
    j.bool("redacted", redact);
    for (key, m) in [("request", req), ("response", resp)] {
        let has_body = m.body.size > 0 || !m.body.data.is_empty();
        let has_trailers = m.trailers.regular().next().is_some();
        if m.seen && (has_body || has_trailers) {
            j.begin(key);
            if has_body {
                weft_body_object(&mut j, &m.body);
            }
            header_object(&mut j, "trailers", &m.trailers, redact);
            j.end();
        }
    }
    j.end();
    j.end();

    j.finish();
}

/// `body: {bytes, content | base64}`: the real size on the wire, and the
/// body's content (decoded when a content coding was removed; redacted) as
/// text when it is UTF-8 (a character cut by a limit is dropped), else as
/// base64. No content for an empty body.
fn body_object(j: &mut Obj<'_>, m: &Message, redact: bool) {
    j.begin("body");
    j.u64("bytes", m.body.size);
    let data = http::shown_body(m, redact);
    if !data.is_empty() {
        match http::text_prefix(&data, http::content_is_partial(&m.body)) {
            Some(text) => j.str("content", text),
            None => j.base64("base64", &data),
        }
    }
    j.end();
}

/// `weft.http.<side>.body` and `weft.http.<side>.grpc`: how the content
/// shown came about.
fn weft_body_object(j: &mut Obj<'_>, b: &Body) {
    j.begin("body");
    j.u64("kept", b.data.len() as u64);
    j.bool("truncated", http::content_is_partial(b));
    let decoded = http::is_decoded(b);
    j.bool("decoded", decoded);
    if let Some(d) = &b.decoded {
        if decoded {
            j.u64("decoded_bytes", d.size);
        }
        if let Some(e) = &d.error {
            j.str("decode_error", &e.to_string());
        }
    }
    if let Some(t) = b.sniffed_type {
        j.str("sniffed_type", t);
    }
    j.end();
    if let Some(g) = &b.grpc {
        j.begin("grpc");
        j.u64("messages", g.messages.len() as u64 + g.dropped);
        j.u64(
            "compressed",
            g.messages.iter().filter(|m| m.compressed).count() as u64,
        );
        if let Some(e) = &g.error {
            j.str("error", &e.to_string());
        }
        j.end();
    }
}
