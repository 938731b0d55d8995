//! The `http` event (`docs/schema.md`, "The http event"): the event kind
//! there is one of per HTTP transaction, so the one whose cost per event
//! decides the sink's throughput.
//!
//! Written with as little work per event as the output allows:
//! - runs of keys that are the same on every event are one constant copy
//!   (`","ecs":{"version":...},"event":{"kind":"event",...`);
//! - what depends only on the process, the connection and its TLS session
//!   (`process`, `user`, `group`, `source`, `destination`, `network`, `tls`,
//!   `weft.process`, `weft.flow`, `weft.tls`) is written once per context
//!   into a per-thread two-way cache ([`set_lookup`]) and copied after that:
//!   one lookup for the event, two copies;
//! - each header list is read once for every value the event needs (method,
//!   target, authority, referrer, user agent, content type, status) instead
//!   of one scan per name, and the URL's parts are found in one pass over
//!   the authority and one over the target;
//! - a header list seen recently (byte for byte: a client repeating its
//!   request, a server its response headers) gives its facts, the members
//!   of its side's object before `"body"` (method or status, media type,
//!   referrer, `"headers"`), a request's `"url"` and the last small body
//!   member written with it from a per-thread cache ([`Lists`]) instead of
//!   being read and written again;
//! - when all of that came from kept parts, the event's middle (from the
//!   context's first fragment to its last) is the context's [`Template`]
//!   of the same entries: one copy instead of a dozen;
//! - a header object whose names are distinct and whose names are common
//!   ones redaction leaves alone is written field by field without the
//!   redaction rules or the grouping, its keys as constants; anything else
//!   (repeated names, many fields, sensitive fields, URLs that need
//!   escaping, absolute-form targets, userinfo) takes the general path
//!   ([`header_object`], [`HttpUrl`]), which gives the same bytes for every
//!   input.
//!
//! The output is byte for byte what the general writers produce: the tests
//! compare the two on every event shape they have.

use std::borrow::Cow;
use std::cell::{Cell, OnceCell, RefCell};
use std::sync::Arc;

use weft_core::event::{Flow, Http, ProcessInfo, Role, TlsLibrary, TlsSession};
use weft_proto::{Body, End, Field, Headers, Message};

use super::{
    BYTE_CLASS, JsonOptions, Obj, SETS, header_object, push_header_key, push_json_bytes,
    set_lookup, weft_tls, write_connection_fields, write_ecs_tls, write_process_fields,
    write_weft_head,
};
use crate::datetime::{push_rfc3339_utc, push_uint};
use crate::http::{self, HttpUrl};

/// Everything from `","ecs"` to the action: the same on every http event.
macro_rules! head {
    () => {
        "\",\"ecs\":{\"version\":\"8.11.0\"},\"event\":{\"kind\":\"event\",\
\"category\":[\"network\",\"web\"],\"type\":[\"access\",\"protocol\"],\
\"action\":\"http-transaction\""
    };
}
const HEAD: &[u8] = head!().as_bytes();
/// [`HEAD`] and the key of `event.duration`.
const HEAD_DURATION: &[u8] = concat!(head!(), ",\"duration\":").as_bytes();

/// `,"role":...` to `"redacted"` of `weft.http` for a complete transaction
/// without interim responses or anything lost, by role (as `Role as
/// usize`) and redaction option.
const COMPLETE: [[&[u8]; 2]; 3] = {
    macro_rules! ending {
        ($role:literal, $redacted:literal) => {
            concat!(
                ",\"role\":\"",
                $role,
                "\",\"end\":\"complete\",\"complete\":true,\"headers_incomplete\":false,\
\"headers_truncated\":false,\"body_truncated\":false,\"data_lost\":false,\"redacted\":",
                $redacted
            )
            .as_bytes()
        };
    }
    let mut t: [[&[u8]; 2]; 3] = [[b""; 2]; 3];
    t[Role::Client as usize] = [ending!("client", "false"), ending!("client", "true")];
    t[Role::Server as usize] = [ending!("server", "false"), ending!("server", "true")];
    t[Role::Unknown as usize] = [ending!("unknown", "false"), ending!("unknown", "true")];
    t
};

/// What the event needs from one header list, found in one pass: the value
/// of the first field of each name (ASCII case-insensitive), as
/// [`Headers::get`] would give it, and the regular (not pseudo) fields.
struct Facts<'a> {
    method: Option<&'a [u8]>,
    path: Option<&'a [u8]>,
    authority: Option<&'a [u8]>,
    host: Option<&'a [u8]>,
    referer: Option<&'a [u8]>,
    user_agent: Option<&'a [u8]>,
    content_type: Option<&'a [u8]>,
    status: Option<&'a [u8]>,
    /// The first [`FAST_FIELDS`] regular fields, in order.
    fields: [Field<'a>; FAST_FIELDS],
    regular: usize,
    /// There were more regular fields than that.
    overflow: bool,
}

const NO_FIELD: Field<'static> = Field {
    name: &[],
    value: &[],
    sensitive: false,
};

impl<'a> Facts<'a> {
    /// Nothing found yet.
    const EMPTY: Facts<'static> = Facts {
        method: None,
        path: None,
        authority: None,
        host: None,
        referer: None,
        user_agent: None,
        content_type: None,
        status: None,
        fields: [NO_FIELD; FAST_FIELDS],
        regular: 0,
        overflow: false,
    };

    /// Fills an [`EMPTY`](Self::EMPTY) value from `headers` (in place: the
    /// value is ~700 bytes, not worth copying out of a constructor).
    fn scan(&mut self, headers: &'a Headers) {
        let f = self;
        for field in headers.iter() {
            let name = field.name;
            if !field.is_pseudo() {
                match f.fields.get_mut(f.regular) {
                    Some(slot) => {
                        *slot = field;
                        f.regular += 1;
                    }
                    None => f.overflow = true,
                }
            }
            let slot = match name.len() {
                4 if is(name, b"host") => &mut f.host,
                5 if is(name, b":path") => &mut f.path,
                7 if is(name, b":method") => &mut f.method,
                7 if is(name, b":status") => &mut f.status,
                7 if is(name, b"referer") => &mut f.referer,
                10 if is(name, b":authority") => &mut f.authority,
                10 if is(name, b"user-agent") => &mut f.user_agent,
                12 if is(name, b"content-type") => &mut f.content_type,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(field.value);
            }
        }
    }

    /// The values found, in a fixed order (see [`Facts::set_values`]).
    fn values(&self) -> [Option<&'a [u8]>; 8] {
        [
            self.method,
            self.path,
            self.authority,
            self.host,
            self.referer,
            self.user_agent,
            self.content_type,
            self.status,
        ]
    }

    /// Sets the values [`Facts::values`] gives, in its order.
    fn set_values(&mut self, v: [Option<&'a [u8]>; 8]) {
        let [
            method,
            path,
            authority,
            host,
            referer,
            user_agent,
            content_type,
            status,
        ] = v;
        self.method = method;
        self.path = path;
        self.authority = authority;
        self.host = host;
        self.referer = referer;
        self.user_agent = user_agent;
        self.content_type = content_type;
        self.status = status;
    }

    /// `Transaction::status`: three digits.
    fn status_code(&self) -> Option<u16> {
        match self.status? {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_digit) => {
                Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
            }
            _ => None,
        }
    }

    /// `http::mime_type`: the media type of `content-type`, when not empty.
    fn mime_type(&self) -> Option<&'a [u8]> {
        self.content_type
            .map(weft_core::redact::mime_type)
            .filter(|m| !m.is_empty())
    }
}

/// Slots of the header-list cache (direct-mapped).
const LIST_SLOTS: usize = 64;
/// Lists whose storage, or whose members, are larger than this are not kept
/// (storage, head, URL, user agent and body member: at most 64 x ~10 KiB
/// per thread, far less in practice).
const LIST_MAX: usize = 2048;
/// Bodies whose content is longer than this are not kept.
const BODY_MAX: usize = 64;

/// Which side of a transaction a kept list was written for: the members
/// before `"body"` differ (a request's method, a response's status).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
enum Side {
    #[default]
    Request,
    Response,
}

/// What a header list gives an event, kept by the list's storage
/// ([`Headers::storage`], byte for byte), the side it was written for and
/// the redaction option; each part is a function of those alone (or of
/// those and what is kept beside it):
/// - the [`Facts`] values, as offsets into the storage (equal storage,
///   equal offsets);
/// - `head`: the side's object members before `"body"` exactly as
///   [`request_head`] or [`response_head`] wrote them (no leading comma;
///   empty when they wrote nothing);
/// - for a request, `user_agent`: `,"user_agent":{...}` (empty when the
///   list has none);
/// - for a request, `url`: `,"url":{...}` as [`url_fast`] wrote it for the
///   scheme `url_tls` says (a function of the facts, the scheme and the
///   option);
/// - `body_member`: the last `"body":{...}` [`body_member`] wrote with this
///   list (a function of the list's content type, the option, the body's
///   size, whether it is partial and its content, kept in `body` and
///   `body_content`), for bodies up to [`BODY_MAX`] bytes.
#[derive(Default)]
struct ListEntry {
    storage: Vec<u8>,
    redact: bool,
    side: Side,
    facts: [Option<(u32, u32)>; 8],
    head: Vec<u8>,
    user_agent: Vec<u8>,
    url_tls: Option<bool>,
    url: Vec<u8>,
    body: Option<(u64, bool)>,
    body_content: Vec<u8>,
    body_member: Vec<u8>,
    /// [`Lists::generation`] when the entry last changed: equal
    /// generations, equal bytes.
    generation: u64,
}

/// The per-thread header-list cache (see [`ListEntry`]).
struct Lists {
    slots: Vec<ListEntry>,
    /// Counts changes to entries (see [`ListEntry::generation`]).
    generation: u64,
}

thread_local! {
    static LISTS: RefCell<Lists> = const { RefCell::new(Lists {
        slots: Vec::new(),
        generation: 0,
    }) };
}

/// What one side of an event found in the cache and wrote that can be kept
/// once the event is written (keeping it earlier could evict the entry of
/// the event's other list): ranges of the output, without leading commas.
#[derive(Default)]
struct Note {
    /// The list's slot, when the list can be kept.
    slot: Option<usize>,
    /// The slot holds the list's entry.
    hit: bool,
    head: Option<std::ops::Range<usize>>,
    url: Option<std::ops::Range<usize>>,
    body: Option<std::ops::Range<usize>>,
    /// `,"user_agent":{...}` (empty: none), for a request.
    user_agent: Option<std::ops::Range<usize>>,
}

impl Note {
    /// Something to keep once the event is written.
    fn pending(&self) -> bool {
        self.slot.is_some() && (!self.hit || self.url.is_some() || self.body.is_some())
    }
}

impl Lists {
    /// The slot of a list's storage: a hash of all of it, sixteen bytes
    /// per folded multiply.
    fn slot(storage: &[u8]) -> usize {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let fold = |h: u64, x: u128| {
            let m = u128::from(h ^ x as u64) * u128::from((x >> 64) as u64 ^ K);
            m as u64 ^ (m >> 64) as u64
        };
        let (blocks, rest) = storage.as_chunks::<16>();
        let mut h = storage.len() as u64;
        for b in blocks {
            h = fold(h, u128::from_le_bytes(*b));
        }
        if !rest.is_empty() {
            let mut last = [0u8; 16];
            last[..rest.len()].copy_from_slice(rest);
            h = fold(h, u128::from_le_bytes(last));
        }
        (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize % LIST_SLOTS
    }

    /// Where `headers` written for `side` with `redact` is kept or would
    /// be: its slot (none when the list cannot be kept) and whether the
    /// slot holds it (a [`Note`]'s first two members: returned as a pair,
    /// not as a `Note`, which the caller copied in pieces). `hint` is the slot of the list the same
    /// context's previous event had on that side: when it holds this list
    /// (a connection repeating its headers), the list is not hashed.
    fn find(&self, headers: &Headers, side: Side, redact: bool, hint: u8) -> (Option<usize>, bool) {
        let storage = headers.storage();
        if storage.is_empty() || storage.len() > LIST_MAX {
            return (None, false);
        }
        let holds = |slot: usize| {
            self.slots
                .get(slot)
                .is_some_and(|e| e.redact == redact && e.side == side && e.storage == storage)
        };
        let hint = usize::from(hint);
        if holds(hint) {
            return (Some(hint), true);
        }
        let slot = Lists::slot(storage);
        (Some(slot), holds(slot))
    }

    /// The entry `note` found, if it holds the list.
    fn kept(&self, note: &Note) -> Option<&ListEntry> {
        note.slot
            .filter(|_| note.hit)
            .and_then(|i| self.slots.get(i))
    }

    /// After an event: adds what the event wrote (`out`) to the entry its
    /// list hit, or keeps the list in its slot when it missed (its `facts`,
    /// values inside its storage as [`Facts::scan`] finds them). Entries
    /// that hit are to be updated before any list is kept.
    #[allow(clippy::too_many_arguments)]
    fn note(
        &mut self,
        note: &Note,
        headers: &Headers,
        side: Side,
        redact: bool,
        facts: Option<&Facts<'_>>,
        body: &Body,
        tls: bool,
        out: &[u8],
    ) {
        let Some(slot) = note.slot else { return };
        let storage = headers.storage();
        let piece = |r: &Option<std::ops::Range<usize>>| {
            r.clone()
                .and_then(|r| out.get(r))
                .filter(|p| p.len() <= LIST_MAX)
        };
        if !note.hit {
            // (Escaping can make the members several times the list: bound both.)
            let (Some(head), Some(facts)) = (piece(&note.head), facts) else {
                return;
            };
            let user_agent = match side {
                Side::Request => match piece(&note.user_agent) {
                    Some(ua) => ua,
                    None => return,
                },
                Side::Response => &[],
            };
            let base = storage.as_ptr() as usize;
            let mut offsets = [None; 8];
            for (o, v) in offsets.iter_mut().zip(facts.values()) {
                let Some(v) = v else { continue };
                // Each value is a slice of the storage; anything else is not kept.
                let start = (v.as_ptr() as usize).wrapping_sub(base);
                if start > storage.len() || v.len() > storage.len() - start {
                    return;
                }
                *o = Some((start as u32, v.len() as u32));
            }
            if self.slots.is_empty() {
                self.slots.resize_with(LIST_SLOTS, ListEntry::default);
            }
            let Some(e) = self.slots.get_mut(slot) else {
                return;
            };
            e.storage.clear();
            e.storage.extend_from_slice(storage);
            e.redact = redact;
            e.side = side;
            e.facts = offsets;
            e.head.clear();
            e.head.extend_from_slice(head);
            e.user_agent.clear();
            e.user_agent.extend_from_slice(user_agent);
            e.url_tls = None;
            e.body = None;
        }
        let Some(e) = self.slots.get_mut(slot) else {
            return;
        };
        // Whatever a template copied from this entry is now stale.
        self.generation += 1;
        e.generation = self.generation;
        if let Some(url) = piece(&note.url) {
            e.url_tls = Some(tls);
            e.url.clear();
            e.url.extend_from_slice(url);
        }
        if let Some(member) = piece(&note.body) {
            let content = body.content();
            if content.len() <= BODY_MAX {
                e.body = Some((body.size, http::content_is_partial(body)));
                e.body_content.clear();
                e.body_content.extend_from_slice(content);
                e.body_member.clear();
                e.body_member.extend_from_slice(member);
            }
        }
    }
}

impl ListEntry {
    /// The facts of `headers`, whose storage is this entry's.
    fn facts<'a>(&self, headers: &'a Headers) -> Facts<'a> {
        let storage = headers.storage();
        let get = |r: Option<(u32, u32)>| {
            let (o, n) = r?;
            storage.get(o as usize..o as usize + n as usize)
        };
        let mut f = Facts::EMPTY;
        f.set_values(self.facts.map(get));
        f
    }

    /// The body member kept for `body`, if it is the last one written.
    fn body_member(&self, body: &Body) -> Option<&[u8]> {
        let (size, partial) = self.body?;
        (size == body.size
            && same_bytes(&self.body_content, body.content())
            && partial == http::content_is_partial(body))
        .then_some(&self.body_member[..])
    }
}

/// `a == b`, without calling `memcmp` for empty slices: glibc's AVX-512
/// `memcmp` reads short inputs with a masked load, and a masked load from
/// an empty `Vec`'s dangling address (page 0) takes a fault-suppression
/// assist of hundreds of cycles. Comparing an empty body's content (every
/// GET request) cost more time than the rest of the event's writing.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

/// The object members of one side before `"body"`, from the cache when
/// kept, else written by `write` and noted in `note`.
fn head_cached(
    j: &mut Obj<'_>,
    kept: Option<&ListEntry>,
    note: &mut Note,
    write: impl FnOnce(&mut Obj<'_>),
) {
    if let Some(e) = kept {
        j.out.extend_from_slice(&e.head);
        j.first = e.head.is_empty();
        return;
    }
    let start = j.out.len();
    write(j);
    note.head = Some(start..j.out.len());
}

/// The `"body"` member, from the cache when the list's entry holds it, else
/// written and noted in `note`.
/// One message's member (`key` opens it): its head, kept or written by
/// `head`, then its body member.
fn message_member<'a>(
    out: &mut Vec<u8>,
    key: &[u8],
    (kept, note): (Option<&ListEntry>, &mut Note),
    m: &Message,
    redact: bool,
    head: impl FnOnce(&mut Obj<'_>),
    content_type: impl FnOnce() -> Option<&'a [u8]>,
) {
    out.extend_from_slice(key);
    let mut j = Obj {
        out: &mut *out,
        first: true,
    };
    head_cached(&mut j, kept, note, head);
    body_cached(&mut j, kept, note, m, redact, content_type);
    out.push(b'}');
}

fn body_cached<'a>(
    j: &mut Obj<'_>,
    kept: Option<&ListEntry>,
    note: &mut Note,
    m: &Message,
    redact: bool,
    content_type: impl FnOnce() -> Option<&'a [u8]>,
) {
    if !j.first {
        j.out.push(b',');
    }
    j.first = true;
    if let Some(member) = kept.and_then(|e| e.body_member(&m.body)) {
        j.out.extend_from_slice(member);
        j.first = false;
        return;
    }
    let start = j.out.len();
    body_member(j, m, content_type(), redact);
    note.body = Some(start..j.out.len());
}

/// `name` is `lower` (ASCII case-insensitive); decoders give names in lower
/// case, so the exact comparison nearly always decides.
#[inline]
fn is(name: &[u8], lower: &[u8]) -> bool {
    name == lower || name.eq_ignore_ascii_case(lower)
}

/// The fragments of one context (process, connection, role, TLS library and
/// session, destination name): `bytes[..split]` is `},` (the end of
/// `event`) and `process` .. `network`, `bytes[split..]` is `,` and `tls`
/// .. `"weft":{"http":{"stream_id":`.
struct Context {
    process: Arc<ProcessInfo>,
    flow: Option<Flow>,
    role: Role,
    library: TlsLibrary,
    tls: Option<Arc<TlsSession>>,
    domain: Option<Arc<str>>,
    bytes: Box<[u8]>,
    split: usize,
    /// The list slots of the last event's request and response
    /// ([`Lists::find`]'s hints; [`NO_SLOT`] when none).
    hints: Cell<[u8; 2]>,
    /// The event's middle as the last event written entirely from kept
    /// parts wrote it.
    template: RefCell<Template>,
}

/// An event's bytes from the context's first fragment to its last (`},`
/// .. `"stream_id":`), written entirely from the context and kept parts of
/// two lists: the URL, both sides' heads and body members, the user agent.
/// Those parts are functions of the list entries (their slots and
/// generations) and the event's bodies (which the entries' body members
/// must match), so with the same key and matching bodies the bytes are
/// the same.
#[derive(Default)]
struct Template {
    key: Option<TemplateKey>,
    bytes: Vec<u8>,
}

/// What a [`Template`] was written from: the request's and the response's
/// list entries (slot and generation) and the HTTP version.
#[derive(Clone, Copy, PartialEq, Eq)]
struct TemplateKey {
    request: (usize, u64),
    response: (usize, u64),
    version: &'static str,
}

/// Templates longer than this are not kept.
const TEMPLATE_MAX: usize = 4096;

/// No list slot (past [`LIST_SLOTS`]).
const NO_SLOT: u8 = u8::MAX;
const _: () = assert!(LIST_SLOTS < NO_SLOT as usize);

thread_local! {
    static CONTEXTS: RefCell<Vec<Option<Context>>> = const { RefCell::new(Vec::new()) };
}

impl Context {
    /// Whether the fragments were written for `h`'s context. The cache holds
    /// the `Arc`s, so an address cannot be reused while cached; a different
    /// `Arc` with equal contents gives the same bytes.
    fn matches(&self, h: &Http) -> bool {
        self.flow == h.flow
            && self.role == h.role
            && self.library == h.library
            && (Arc::ptr_eq(&self.process, &h.process) || *self.process == *h.process)
            && match (&self.tls, &h.tls) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || **a == **b,
                _ => false,
            }
            && self.domain.as_deref() == h.destination_domain.as_deref()
    }

    fn new(h: &Http) -> Self {
        let p = &*h.process;
        let mut bytes = Vec::with_capacity(1024);
        bytes.extend_from_slice(b"},");
        let mut j = Obj {
            out: &mut bytes,
            first: true,
        };
        write_process_fields(&mut j, p, None);
        if let (Some(flow), Some((client, server))) = (&h.flow, http::endpoints(h)) {
            write_connection_fields(
                &mut j,
                flow,
                client,
                server,
                Some("http"),
                h.destination_domain.as_deref(),
            );
        }
        let split = bytes.len();
        bytes.push(b',');
        let mut j = Obj {
            out: &mut bytes,
            first: true,
        };
        if let Some(s) = &h.tls {
            write_ecs_tls(&mut j, s, false);
        }
        write_weft_head(&mut j, p, h.flow.as_ref());
        j.begin("tls");
        j.str("library", h.library.as_str());
        if let Some(s) = &h.tls {
            weft_tls(&mut j, s);
        }
        j.end();
        j.begin("http");
        j.key("stream_id");
        Context {
            process: Arc::clone(&h.process),
            flow: h.flow,
            role: h.role,
            library: h.library,
            tls: h.tls.clone(),
            domain: h.destination_domain.clone(),
            bytes: bytes.into(),
            split,
            hints: Cell::new([NO_SLOT; 2]),
            template: RefCell::default(),
        }
    }
}

/// One decoded HTTP transaction.
pub(super) fn encode_http(h: &Http, opts: &JsonOptions, out: &mut Vec<u8>) {
    CONTEXTS.with(|c| {
        let Ok(mut slots) = c.try_borrow_mut() else {
            let ctx = Context::new(h);
            return write_http(h, opts, out, &ctx, None);
        };
        if slots.is_empty() {
            slots.resize_with(2 * SETS, || None);
        }
        let p = &*h.process;
        let hash = u64::from(p.pid)
            ^ p.start_time_ns
            ^ h.flow.map_or(0, |f| {
                f.cookie.rotate_left(17) ^ u64::from(f.local.port) << 32 ^ u64::from(f.remote.port)
            })
            ^ (h.role as u64) << 48
            ^ (h.library as u64) << 52;
        let (i, hit) = set_lookup(&mut slots, hash, |ctx| ctx.matches(h));
        let entry = &mut slots[i];
        if !hit {
            *entry = Some(Context::new(h));
        }
        LISTS.with(|l| {
            let mut lists = l.try_borrow_mut().ok();
            match entry {
                Some(ctx) => write_http(h, opts, out, ctx, lists.as_deref_mut()),
                None => write_http(h, opts, out, &Context::new(h), lists.as_deref_mut()),
            }
        })
    })
}

fn write_http(
    h: &Http,
    opts: &JsonOptions,
    out: &mut Vec<u8>,
    ctx: &Context,
    lists: Option<&mut Lists>,
) {
    let t = &*h.transaction;
    let req = &t.request;
    let resp = &t.response;
    let redact = opts.redact;
    let tls = h.library != TlsLibrary::None;
    let [rq_hint, rs_hint] = ctx.hints.get();
    let look = |headers: &Headers, side, hint| {
        let (slot, hit) = match lists.as_deref() {
            Some(l) => l.find(headers, side, redact, hint),
            None => (None, false),
        };
        Note {
            slot,
            hit,
            ..Note::default()
        }
    };
    let (mut rq_note, mut rs_note) = (
        look(&req.headers, Side::Request, rq_hint),
        look(&resp.headers, Side::Response, rs_hint),
    );
    let hint = |note: &Note| note.slot.and_then(|s| u8::try_from(s).ok());
    ctx.hints.set([
        hint(&rq_note).unwrap_or(NO_SLOT),
        hint(&rs_note).unwrap_or(NO_SLOT),
    ]);
    let kept = |note: &Note| lists.as_deref().and_then(|l| l.kept(note));
    let (rq_kept, rs_kept) = (kept(&rq_note), kept(&rs_note));
    let facts = |kept: Option<&ListEntry>, headers| match kept {
        Some(e) => e.facts(headers),
        None => {
            let mut f = Facts::EMPTY;
            f.scan(headers);
            f
        }
    };
    // Read only when something is written from them: a kept list's parts
    // are mostly copied as they are.
    let (rq_facts, rs_facts) = (OnceCell::new(), OnceCell::new());
    let rq = || rq_facts.get_or_init(|| facts(rq_kept, &req.headers));
    let rs = || rs_facts.get_or_init(|| facts(rs_kept, &resp.headers));
    let (head, tail) = ctx.bytes.split_at(ctx.split);
    out.reserve(head.len() + tail.len() + 1024);

    out.extend_from_slice(b"{\"@timestamp\":\"");
    push_rfc3339_utc(out, h.timestamp_ns);
    match http::duration_ns(h) {
        Some(ns) => {
            out.extend_from_slice(HEAD_DURATION);
            push_uint(out, ns);
        }
        None => out.extend_from_slice(HEAD),
    }
    // Everything from kept parts (both lists and their bodies, the URL):
    // the middle of the event is the context's template when it was
    // written from the same entries.
    let key = match (rq_kept, rs_kept) {
        (Some(re), Some(se))
            if req.seen
                && resp.seen
                && re.url_tls == Some(tls)
                && re.body_member(&req.body).is_some()
                && se.body_member(&resp.body).is_some() =>
        {
            rq_note.slot.zip(rs_note.slot).map(|(q, s)| TemplateKey {
                request: (q, re.generation),
                response: (s, se.generation),
                version: t.version(),
            })
        }
        _ => None,
    };
    let mut template = ctx.template.try_borrow_mut().ok();
    match template.as_deref_mut() {
        Some(tpl) if key.is_some() && tpl.key == key => out.extend_from_slice(&tpl.bytes),
        tpl => {
            let start = out.len();
            out.extend_from_slice(head);

            if req.seen {
                match rq_kept.filter(|e| e.url_tls == Some(tls)) {
                    Some(e) => out.extend_from_slice(&e.url),
                    None => {
                        let start = out.len();
                        if url_fast(out, rq(), tls, redact) {
                            rq_note.url = Some(start..out.len());
                        } else {
                            url_general(out, h, redact);
                        }
                    }
                }
            }

            out.extend_from_slice(b",\"http\":{\"version\":\"");
            out.extend_from_slice(t.version().as_bytes());
            out.push(b'"');
            if req.seen {
                let head = |j: &mut Obj<'_>| request_head(j, &req.headers, rq(), redact);
                let side = (rq_kept, &mut rq_note);
                message_member(out, b",\"request\":{", side, req, redact, head, || {
                    rq().content_type
                });
            }
            if resp.seen {
                let head = |j: &mut Obj<'_>| response_head(j, &resp.headers, rs(), redact);
                let side = (rs_kept, &mut rs_note);
                message_member(out, b",\"response\":{", side, resp, redact, head, || {
                    rs().content_type
                });
            }
            out.push(b'}');

            match rq_kept {
                Some(e) => out.extend_from_slice(&e.user_agent),
                None => {
                    let start = out.len();
                    if let Some(ua) = rq().user_agent {
                        out.extend_from_slice(b",\"user_agent\":{\"original\":");
                        push_json_bytes(out, ua);
                        out.push(b'}');
                    }
                    rq_note.user_agent = Some(start..out.len());
                }
            }

            out.extend_from_slice(tail);
            if let (Some(tpl), Some(key)) = (tpl, key) {
                let bytes = out.get(start..).unwrap_or_default();
                tpl.key = None;
                tpl.bytes.clear();
                if bytes.len() <= TEMPLATE_MAX {
                    tpl.bytes.extend_from_slice(bytes);
                    tpl.key = Some(key);
                }
            }
        }
    }
    push_uint(out, u64::from(t.stream_id));
    if let Some(parent) = t.promised_by {
        out.extend_from_slice(b",\"promised_by\":");
        push_uint(out, u64::from(parent));
    }
    let complete = t.is_complete();
    let headers_incomplete = req.headers_incomplete || resp.headers_incomplete;
    let headers_truncated = req.headers_truncated || resp.headers_truncated;
    let body_truncated =
        http::content_is_partial(&req.body) || http::content_is_partial(&resp.body);
    let data_lost = req.data_lost || resp.data_lost;
    if matches!(t.end, End::Complete)
        && complete
        && !headers_incomplete
        && !headers_truncated
        && !body_truncated
        && !data_lost
        && t.interim.is_empty()
    {
        // The common ending, one constant per role and option.
        out.extend_from_slice(COMPLETE[h.role as usize % 3][usize::from(redact)]);
    } else {
        write_ending(out, h, redact);
    }
    weft_sides(out, req, resp, redact);
    if let Some(lists) = lists
        && (rq_note.pending() || rs_note.pending())
    {
        let sides = [
            (
                &rq_note,
                &req.headers,
                Side::Request,
                rq_facts.get(),
                &req.body,
            ),
            (
                &rs_note,
                &resp.headers,
                Side::Response,
                rs_facts.get(),
                &resp.body,
            ),
        ];
        // Entries that hit first: keeping a list that missed may evict one.
        for hit in [true, false] {
            for (note, headers, side, facts, body) in sides {
                if note.hit == hit {
                    lists.note(note, headers, side, redact, facts, body, tls, out);
                }
            }
        }
    }
}

/// `,"role":...` to `"redacted"` of `weft.http` for any event.
fn write_ending(out: &mut Vec<u8>, h: &Http, redact: bool) {
    let t = &*h.transaction;
    let (req, resp) = (&t.request, &t.response);
    match h.role {
        Role::Client => out.extend_from_slice(b",\"role\":\"client\",\"end\":\""),
        Role::Server => out.extend_from_slice(b",\"role\":\"server\",\"end\":\""),
        Role::Unknown => out.extend_from_slice(b",\"role\":\"unknown\",\"end\":\""),
    }
    match t.end {
        End::Complete => out.extend_from_slice(b"complete\""),
        End::Reset { by, error_code } => {
            out.extend_from_slice(b"reset\",\"reset_by\":\"");
            out.extend_from_slice(http::direction_side(by).as_bytes());
            out.extend_from_slice(b"\",\"error_code\":");
            push_uint(out, u64::from(error_code));
        }
        End::GoAway { error_code } => {
            out.extend_from_slice(b"goaway\",\"error_code\":");
            push_uint(out, u64::from(error_code));
        }
        end => {
            out.extend_from_slice(http::end_name(end).as_bytes());
            out.push(b'"');
        }
    }
    let complete = t.is_complete();
    let headers_incomplete = req.headers_incomplete || resp.headers_incomplete;
    let headers_truncated = req.headers_truncated || resp.headers_truncated;
    let body_truncated =
        http::content_is_partial(&req.body) || http::content_is_partial(&resp.body);
    let data_lost = req.data_lost || resp.data_lost;
    if complete && !headers_incomplete && !headers_truncated && !body_truncated && !data_lost {
        out.extend_from_slice(
            b",\"complete\":true,\"headers_incomplete\":false,\"headers_truncated\":false,\
\"body_truncated\":false,\"data_lost\":false",
        );
    } else {
        push_bool(out, b",\"complete\":", complete);
        push_bool(out, b",\"headers_incomplete\":", headers_incomplete);
        push_bool(out, b",\"headers_truncated\":", headers_truncated);
        push_bool(out, b",\"body_truncated\":", body_truncated);
        push_bool(out, b",\"data_lost\":", data_lost);
    }
    if !t.interim.is_empty() {
        out.extend_from_slice(b",\"interim\":[");
        for (i, status) in http::interim_statuses(t).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_uint(out, u64::from(status));
        }
        out.push(b']');
    }
    if redact {
        out.extend_from_slice(b",\"redacted\":true");
    } else {
        out.extend_from_slice(b",\"redacted\":false");
    }
}

/// `weft.http.request` and `.response` (bodies, trailers) and the end of
/// the event.
fn weft_sides(out: &mut Vec<u8>, req: &Message, resp: &Message, redact: bool) {
    weft_side(
        out,
        b",\"request\":{",
        b",\"request\":{\"body\":{\"kept\":",
        req,
        redact,
    );
    weft_side(
        out,
        b",\"response\":{",
        b",\"response\":{\"body\":{\"kept\":",
        resp,
        redact,
    );
    out.extend_from_slice(b"}}}");
}

/// `weft.http.<side>` (`key`: its key and brace; `body_key`: the same and
/// the body's first key), when the side has a body or trailers.
#[inline]
fn weft_side(out: &mut Vec<u8>, key: &[u8], body_key: &[u8], m: &Message, redact: bool) {
    let has_body = m.body.size > 0 || !m.body.data.is_empty();
    let has_trailers = !m.trailers.is_empty() && m.trailers.regular().next().is_some();
    if m.seen && (has_body || has_trailers) {
        let mut j = Obj {
            out: &mut *out,
            first: true,
        };
        if has_body {
            // The object's key and the body's first key as one copy.
            j.out.extend_from_slice(body_key);
            j.first = false;
            weft_body_rest(&mut j, &m.body);
        } else {
            j.out.extend_from_slice(key);
        }
        if has_trailers {
            header_object(&mut j, "trailers", &m.trailers, redact);
        }
        out.push(b'}');
    }
}

/// The request object's members before `"body"`.
fn request_head(j: &mut Obj<'_>, headers: &Headers, rq: &Facts<'_>, redact: bool) {
    if let Some(method) = rq.method {
        j.lit_key(b"\"method\":");
        push_json_bytes(j.out, method);
    }
    if let Some(mime) = rq.mime_type() {
        j.lit_key(b"\"mime_type\":");
        push_json_bytes(j.out, mime);
    }
    if let Some(referrer) = rq.referer {
        let shown = if redact {
            weft_core::redact::mask_header_value(b"referer", referrer)
        } else {
            Cow::Borrowed(referrer)
        };
        j.lit_key(b"\"referrer\":");
        push_json_bytes(j.out, &shown);
    }
    headers_member(j, headers, rq, redact);
}

/// The response object's members before `"body"`.
fn response_head(j: &mut Obj<'_>, headers: &Headers, rs: &Facts<'_>, redact: bool) {
    if let Some(status) = rs.status_code() {
        j.lit_key(b"\"status_code\":");
        push_uint(j.out, u64::from(status));
    }
    if let Some(mime) = rs.mime_type() {
        j.lit_key(b"\"mime_type\":");
        push_json_bytes(j.out, mime);
    }
    headers_member(j, headers, rs, redact);
}

fn push_bool(out: &mut Vec<u8>, key: &[u8], value: bool) {
    out.extend_from_slice(key);
    if value {
        out.extend_from_slice(b"true");
    } else {
        out.extend_from_slice(b"false");
    }
}

/// `,"url":{...}` for the common request: an authority from `:authority`
/// or `host`, an origin-form target, no userinfo, all of it printable ASCII
/// (so the parts need no escaping and concatenating them is concatenating
/// their JSON). False, with nothing written, for anything else.
fn url_fast(out: &mut Vec<u8>, rq: &Facts<'_>, tls: bool, redact: bool) -> bool {
    if rq
        .method
        .is_some_and(|m| m.eq_ignore_ascii_case(b"CONNECT"))
    {
        return false;
    }
    let Some(authority) = rq.authority.or(rq.host).filter(|a| !a.is_empty()) else {
        return false;
    };
    // One pass over the authority: printable ASCII without `"`, `\\` or
    // userinfo, and its last colon.
    let mut colon = None;
    for (i, &b) in authority.iter().enumerate() {
        if !plain_byte(b) || b == b'@' {
            return false;
        }
        if b == b':' {
            colon = Some(i);
        }
    }
    let target = rq.path.filter(|p| !p.is_empty());
    let mut seps = (None, None);
    if let Some(p) = target {
        if p.first().is_some_and(|&b| b | 0x20 == b'h') && http::absolute_form(p).is_some() {
            return false;
        }
        match query_and_fragment(p) {
            Some(qf) => seps = qf,
            None => return false,
        }
    }
    let target = match target {
        // Without `?` or `#` there is no query to mask.
        Some(p) if redact && (seps.0.is_some() || seps.1.is_some()) => {
            let masked = weft_core::redact::redact_query(p);
            if let Cow::Owned(m) = &masked {
                match query_and_fragment(m) {
                    Some(qf) => seps = qf,
                    None => return false, // cannot happen: the mask is plain ASCII
                }
            }
            Some(masked)
        }
        Some(p) => Some(Cow::Borrowed(p)),
        None => None,
    };
    let rest: &[u8] = target.as_deref().unwrap_or_default();
    out.reserve(2 * (authority.len() + rest.len()) + 128);
    if tls {
        out.extend_from_slice(b",\"url\":{\"full\":\"https://");
    } else {
        out.extend_from_slice(b",\"url\":{\"full\":\"http://");
    }
    out.extend_from_slice(authority);
    out.extend_from_slice(rest);
    if tls {
        out.extend_from_slice(b"\",\"scheme\":\"https\"");
    } else {
        out.extend_from_slice(b"\",\"scheme\":\"http\"");
    }
    // `http::split_host_port`, from the colon found above.
    let (host, port) = match colon {
        _ if authority.first() == Some(&b'[') => http::split_host_port(authority),
        None => (authority, None),
        Some(c) => match &authority[c + 1..] {
            [] => (&authority[..c], None),
            p if p.iter().all(u8::is_ascii_digit) => (&authority[..c], Some(p)),
            _ => (authority, None),
        },
    };
    if !host.is_empty() {
        out.extend_from_slice(b",\"domain\":\"");
        out.extend_from_slice(host);
        out.push(b'"');
    }
    if let Some(port) = port.and_then(parse_port) {
        out.extend_from_slice(b",\"port\":");
        push_uint(out, u64::from(port));
    }
    if target.is_some() {
        let (q, f) = seps;
        let path_end = q.or(f).map_or(rest.len(), |i| i.min(f.unwrap_or(i)));
        out.extend_from_slice(b",\"path\":\"");
        out.extend_from_slice(&rest[..path_end]);
        out.push(b'"');
        if let Some(q) = q.filter(|&q| f.is_none_or(|f| q < f)) {
            out.extend_from_slice(b",\"query\":\"");
            out.extend_from_slice(&rest[q + 1..f.unwrap_or(rest.len())]);
            out.push(b'"');
        }
        if let Some(f) = f {
            out.extend_from_slice(b",\"fragment\":\"");
            out.extend_from_slice(&rest[f + 1..]);
            out.push(b'"');
        }
    }
    out.push(b'}');
    true
}

/// Whether `b` is printable ASCII other than `"` and `\\` ([`super::is_plain_ascii`]
/// of one byte).
#[inline]
fn plain_byte(b: u8) -> bool {
    b.is_ascii() && BYTE_CLASS[usize::from(b)] == 0
}

/// The first `?` and the first `#` of a request target, when all of it is
/// printable ASCII without `"` or `\\` (else none).
fn query_and_fragment(target: &[u8]) -> Option<(Option<usize>, Option<usize>)> {
    let (mut q, mut f) = (None, None);
    for (i, &b) in target.iter().enumerate() {
        if !plain_byte(b) {
            return None;
        }
        if b == b'?' && q.is_none() {
            q = Some(i);
        } else if b == b'#' && f.is_none() {
            f = Some(i);
        }
    }
    Some((q, f))
}

/// Decimal digits (already checked) as a port; none above 65535, as
/// `str::parse::<u16>`.
fn parse_port(digits: &[u8]) -> Option<u16> {
    digits.iter().try_fold(0u16, |n, &d| {
        n.checked_mul(10)?
            .checked_add(u16::from(d.wrapping_sub(b'0')))
    })
}

/// `,"url":{...}` by [`HttpUrl`], for every request.
fn url_general(out: &mut Vec<u8>, h: &Http, redact: bool) {
    let t = &*h.transaction;
    let url = HttpUrl::with_scheme(
        t,
        http::endpoints(h).map(|(_, server)| server),
        redact,
        h.library != TlsLibrary::None,
    );
    if url.is_empty() {
        return;
    }
    let mut j = Obj {
        out: &mut *out,
        first: false,
    };
    j.begin("url");
    if let Some(full) = url.full() {
        j.bytes("full", full);
        j.str(
            "scheme",
            if h.library == TlsLibrary::None {
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

/// Regular fields kept on the stack for the fast header object; a list with
/// more takes the general path.
const FAST_FIELDS: usize = 16;

/// `headers: {name: value, ...}` as [`header_object`] writes it. Without
/// repeated names every field is its own member, in order; a field whose
/// name redaction never touches (and not marked sensitive) is written as
/// it is, the rest through [`http::shown_value`].
fn headers_member(j: &mut Obj<'_>, headers: &Headers, facts: &Facts<'_>, redact: bool) {
    if facts.overflow {
        return header_object(j, "headers", headers, redact);
    }
    let fields = &facts.fields[..facts.regular.min(FAST_FIELDS)];
    if fields.is_empty() {
        return;
    }
    for (i, f) in fields.iter().enumerate().skip(1) {
        if fields[..i]
            .iter()
            .any(|g| g.name.len() == f.name.len() && g.name.eq_ignore_ascii_case(f.name))
        {
            return header_object(j, "headers", headers, redact);
        }
    }
    j.lit_key(b"\"headers\":{");
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            j.out.push(b',');
        }
        if !(redact && f.sensitive) && push_kept_key(j.out, f.name) {
            push_json_bytes(j.out, f.value);
        } else {
            push_header_key(j.out, f.name);
            push_json_bytes(j.out, &http::shown_value(f, redact));
        }
    }
    j.out.push(b'}');
}

/// For the common header names (exactly, in lower case) whose values
/// redaction shows as they are, writes the key `"name":` as one constant
/// copy and returns true; false (nothing written) for any other name. Each
/// name is `HeaderKind::Plain` in `weft_core::redact` (a test holds the two
/// together).
fn push_kept_key(out: &mut Vec<u8>, name: &[u8]) -> bool {
    macro_rules! kept {
        ($($lit:literal),+) => {{
            $(
                if name == $lit.as_bytes() {
                    out.extend_from_slice(concat!("\"", $lit, "\":").as_bytes());
                    return true;
                }
            )+
        }};
    }
    match name.len() {
        2 => kept!("te"),
        4 => kept!("date", "host", "vary", "etag"),
        6 => kept!("server", "accept", "origin"),
        7 => kept!("upgrade"),
        10 => kept!("user-agent", "connection"),
        11 => kept!("grpc-status"),
        12 => kept!("content-type", "grpc-message"),
        13 => kept!("cache-control", "last-modified"),
        14 => kept!("content-length"),
        15 => kept!("accept-encoding", "accept-language"),
        16 => kept!("content-encoding"),
        _ => {}
    }
    false
}

#[cfg(test)]
pub(super) const KEPT_AS_IS: &[&[u8]] = &[
    b"te",
    b"date",
    b"host",
    b"vary",
    b"etag",
    b"server",
    b"accept",
    b"origin",
    b"upgrade",
    b"user-agent",
    b"connection",
    b"grpc-status",
    b"content-type",
    b"grpc-message",
    b"cache-control",
    b"last-modified",
    b"content-length",
    b"accept-encoding",
    b"accept-language",
    b"content-encoding",
];

#[cfg(test)]
pub(super) fn is_kept_as_is(name: &[u8]) -> bool {
    let mut key = Vec::new();
    let kept = push_kept_key(&mut key, name);
    assert_eq!(kept, !key.is_empty());
    if kept {
        assert_eq!(key, [&b"\""[..], name, b"\":"].concat());
    }
    kept
}

/// `body: {bytes, content | base64}` as `body_object` writes it, with the
/// UTF-8 check of the content done once when redaction leaves it as it is.
fn body_member(j: &mut Obj<'_>, m: &Message, content_type: Option<&[u8]>, redact: bool) {
    j.lit_key(b"\"body\":{\"bytes\":");
    push_uint(j.out, m.body.size);
    let content = m.body.content();
    // An empty body has no content, masked or not.
    if !content.is_empty() {
        let partial = http::content_is_partial(&m.body);
        let whole = redact.then(|| body_text(content, true));
        match whole {
            // Text: masked by its type's rules.
            Some(Some(prefix)) => {
                match weft_core::redact::redact_body(content_type, content) {
                    Cow::Borrowed(_) => {
                        // `body_text(content, partial)` from the check above.
                        if prefix.len() == content.len() || partial {
                            push_content(j.out, prefix);
                        } else {
                            push_base64(j.out, content);
                        }
                    }
                    Cow::Owned(masked) => match body_text(&masked, partial) {
                        Some(text) => push_content(j.out, text),
                        None => push_base64(j.out, &masked),
                    },
                }
            }
            // Not text (shown as it is, base64), or not redacting.
            _ => match body_text(content, partial) {
                Some(text) => push_content(j.out, text),
                None => push_base64(j.out, content),
            },
        }
    }
    j.out.push(b'}');
}

/// A body's text as [`http::text_prefix`] finds it, and whether it is plain
/// ASCII (nothing to escape): most bodies are, and are then checked in one
/// fast pass instead of a UTF-8 validation and an escaping scan.
#[derive(Clone, Copy)]
enum Text<'a> {
    /// Printable ASCII without `"` or `\\`: copied as it is.
    Plain(&'a [u8]),
    /// Valid UTF-8 with something to escape.
    Str(&'a str),
}

impl Text<'_> {
    fn len(self) -> usize {
        match self {
            Text::Plain(b) => b.len(),
            Text::Str(s) => s.len(),
        }
    }
}

/// [`http::text_prefix`] (`data` as text, or its valid prefix when `cut`),
/// telling plain ASCII apart.
fn body_text(data: &[u8], cut: bool) -> Option<Text<'_>> {
    if super::is_plain_ascii(data) {
        Some(Text::Plain(data))
    } else {
        http::text_prefix(data, cut).map(Text::Str)
    }
}

fn push_content(out: &mut Vec<u8>, text: Text<'_>) {
    out.extend_from_slice(b",\"content\":");
    match text {
        Text::Plain(b) => super::push_plain(out, b),
        Text::Str(s) => super::push_json_str_escaped(out, s),
    }
}

fn push_base64(out: &mut Vec<u8>, data: &[u8]) {
    let mut j = Obj { out, first: false };
    j.base64("base64", data);
}

/// `weft.http.<side>.body` (and `grpc`) as `weft_body_object` writes it,
/// after `"body":{"kept":`.
fn weft_body_rest(j: &mut Obj<'_>, b: &Body) {
    push_uint(j.out, b.data.len() as u64);
    let decoded = http::is_decoded(b);
    match (http::content_is_partial(b), decoded) {
        (false, false) => j
            .out
            .extend_from_slice(b",\"truncated\":false,\"decoded\":false"),
        (true, false) => j
            .out
            .extend_from_slice(b",\"truncated\":true,\"decoded\":false"),
        (false, true) => j
            .out
            .extend_from_slice(b",\"truncated\":false,\"decoded\":true"),
        (true, true) => j
            .out
            .extend_from_slice(b",\"truncated\":true,\"decoded\":true"),
    }
    j.first = false;
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

#[cfg(test)]
pub(super) mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use weft_core::event::Endpoint;
    use weft_proto::{Decoded, Transaction};

    use super::*;
    use crate::json::reference;
    use crate::test_support::{h1_event, h2_event};

    /// The fast writer gives the general writers' bytes, with and without
    /// redaction, twice in a row (the second time from the context cache).
    pub(in crate::json) fn assert_same_as_reference(h: &Http) {
        for redact in [true, false] {
            for _ in 0..2 {
                assert_same_with(h, redact);
            }
        }
    }

    /// The fast writer gives the general writers' bytes with `redact`.
    fn assert_same_with(h: &Http, redact: bool) {
        let opts = JsonOptions::default().redact(redact);
        let mut want = Vec::new();
        reference::encode_http(h, &opts, &mut want);
        let mut got = Vec::new();
        encode_http(h, &opts, &mut got);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "redact {redact}"
        );
    }

    fn tx(h: &mut Http) -> &mut Transaction {
        &mut h.transaction
    }

    fn with_request_headers(h: &Http, fields: &[(&[u8], &[u8])]) -> Http {
        let mut h = h.clone();
        tx(&mut h).request.headers = Headers::new();
        for (n, v) in fields {
            tx(&mut h).request.headers.push(n, v);
        }
        h
    }

    #[test]
    fn kept_names_are_plain_for_redaction() {
        // Every name the fast path writes as it is must be one whose values
        // redaction never touches: not a credential, not a URL (a URL's
        // query would be masked).
        for name in KEPT_AS_IS {
            assert!(is_kept_as_is(name));
            assert!(!weft_core::redact::is_credential_header(name), "{name:?}");
            for value in [&b"/p?password=x&token=y"[..], b"Bearer abc", b"sid=1"] {
                assert!(
                    matches!(
                        weft_core::redact::mask_header_value(name, value),
                        Cow::Borrowed(_)
                    ),
                    "{name:?}"
                );
            }
        }
        for name in [
            &b"Date"[..],
            b"cookie",
            b"referer",
            b"location",
            b"x-api-key",
        ] {
            assert!(!is_kept_as_is(name));
        }
        // The constant head names this schema's ECS version.
        assert!(
            HEAD.windows(crate::ECS_VERSION.len())
                .any(|w| w == crate::ECS_VERSION.as_bytes())
        );
    }

    #[test]
    fn kept_lists_answer_only_for_their_own_side_scheme_and_body() {
        // Two header lists shared by events whose bodies, schemes and sides
        // differ: a kept URL, object head or body member must answer only
        // for what it was written for.
        let request: Headers = [
            (":method", "POST"),
            (":path", "/x?token=1&a=2"),
            ("host", "h.example:8443"),
            ("content-type", "application/x-www-form-urlencoded"),
            ("referer", "https://r/?code=1"),
            ("user-agent", "ua/1"),
        ]
        .into_iter()
        .collect();
        let response: Headers = [(":status", "200"), ("content-type", "application/json")]
            .into_iter()
            .collect();
        let bodies: &[(&[u8], u64, bool)] = &[
            (b"ok\n", 3, false),
            (b"ok\n", 4, true),
            (b"ok\n", 4, false),
            (b"ok!", 3, false),
            (b"", 0, false),
            (b"", 5, false),
            (br#"{"password":"x"}"#, 16, false),
            (b"password=x&b=1", 14, false),
            (b"\xc3", 2, true),
            (b"\xc3", 1, false),
            (b"\xc3", 2, false),
            (&[b'a'; BODY_MAX], BODY_MAX as u64, false),
            (&[b'a'; BODY_MAX + 1], BODY_MAX as u64 + 1, false),
        ];
        let mut events = Vec::new();
        for &(data, size, truncated) in bodies {
            for library in [TlsLibrary::OpenSsl, TlsLibrary::None] {
                let mut h = h1_event();
                h.library = library;
                let t = tx(&mut h);
                t.request.headers = request.clone();
                t.response.headers = response.clone();
                for m in [&mut t.request, &mut t.response] {
                    m.body = Body {
                        data: data.to_vec(),
                        size,
                        truncated,
                        ..Body::default()
                    };
                }
                events.push(h.clone());
                // The same lists and bodies in another HTTP version.
                let mut h10 = h.clone();
                tx(&mut h10).http1_minor = Some(0);
                events.push(h10);
                // The same content, decoded from other bytes and cut short.
                tx(&mut h).response.body = Body {
                    data: b"zz".to_vec(),
                    size: 2,
                    decoded: Some(Decoded {
                        data: data.to_vec(),
                        size,
                        truncated: true,
                        error: None,
                    }),
                    ..Body::default()
                };
                events.push(h.clone());
                // Each list on the other side.
                let t = tx(&mut h);
                std::mem::swap(&mut t.request.headers, &mut t.response.headers);
                events.push(h);
            }
        }
        // A side not seen, with the same lists.
        for seen in [[false, true], [true, false]] {
            let mut h = events[0].clone();
            tx(&mut h).request.seen = seen[0];
            tx(&mut h).response.seen = seen[1];
            events.push(h);
        }
        // Every event after every other one written twice (which keeps the
        // other's lists and bodies, and a template of them).
        for redact in [true, false] {
            for a in &events {
                for b in &events {
                    assert_same_with(a, redact);
                    assert_same_with(a, redact);
                    assert_same_with(b, redact);
                }
            }
        }
        // With one redaction option at a time (the entries are kept per
        // option), in order and scrambled.
        for redact in [true, false] {
            for h in &events {
                assert_same_with(h, redact);
            }
            let mut x: u64 = 0x2545_f491_4f6c_dd1d;
            for _ in 0..8 * events.len() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                assert_same_with(&events[(x % events.len() as u64) as usize], redact);
            }
        }
    }

    #[test]
    fn same_bytes_is_slice_equality() {
        let empty: Vec<u8> = Vec::new();
        for (a, b) in [
            (&empty[..], &b""[..]),
            (b"", b"x"),
            (b"x", b""),
            (b"ok\n", b"ok\n"),
            (b"ok\n", b"ok\r"),
            (b"ok", b"ok\n"),
        ] {
            assert_eq!(same_bytes(a, b), a == b, "{a:?} {b:?}");
        }
    }

    const LONG: [u8; 100] = [b'a'; 100];
    /// Plain ASCII, then the first byte of a two-byte character.
    const LONG_CUT: [u8; 70] = {
        let mut b = [b'a'; 70];
        b[69] = 0xc3;
        b
    };
    const LONG_QUOTE: [u8; 70] = {
        let mut b = [b'a'; 70];
        b[40] = b'"';
        b
    };

    #[test]
    fn fast_writer_matches_the_general_one() {
        let mut events = vec![h1_event(), h2_event()];
        let base = h1_event();
        let requests: &[&[(&[u8], &[u8])]] = &[
            &[
                (b":method", b"GET"),
                (b":path", b"/a?b=1#frag"),
                (b"host", b"h"),
            ],
            &[
                (b":method", b"GET"),
                (b":path", b"/a#f?x"),
                (b"host", b"h:0443"),
            ],
            &[
                (b":method", b"GET"),
                (b":path", b"/"),
                (b"host", b"h:99999"),
            ],
            &[(b":method", b"GET"), (b":path", b"/"), (b"host", b"h:")],
            &[(b":method", b"GET"), (b":path", b"/"), (b"host", b"h:8x")],
            &[
                (b":method", b"GET"),
                (b":path", b"/"),
                (b"host", b"[::1]:8443"),
            ],
            &[(b":method", b"GET"), (b":path", b"/"), (b"host", b"[::1]")],
            &[(b":method", b"GET"), (b":path", b"/"), (b"host", b":80")],
            &[
                (b":method", b"GET"),
                (b":path", b"/"),
                (b"host", b"u:pw@h:1"),
            ],
            &[
                (b":method", b"GET"),
                (b":path", b"/x?password=1"),
                (b"host", b"u@h"),
            ],
            &[
                (b":method", b"GET"),
                (b":path", b"http://p.example/x?token=1"),
            ],
            &[(b":method", b"GET"), (b":path", b"HTTPS://p.example")],
            &[
                (b":method", b"GET"),
                (b":path", b"HTTP:/x"),
                (b"host", b"[::1"),
            ],
            &[
                (b":method", b"GET"),
                (b":path", b"h?a=1?token=2#c#d?e"),
                (b"host", b"h:1:2"),
            ],
            &[
                (b":method", b"GET"),
                (b":path", b"/#?password=1"),
                (b"host", b"[::1]x"),
            ],
            &[
                (b":method", b"GET"),
                (b":path", b"/?password=1#f"),
                (b"host", b"h\x7f"),
            ],
            &[
                (b":method", b"connect"),
                (b":path", b"h:443"),
                (b"host", b"h:443"),
            ],
            &[(b":method", b"CONNECT"), (b":authority", b"h:443")],
            &[(b":method", b"GET"), (b":authority", b""), (b"host", b"h")],
            &[(b":method", b"GET"), (b":authority", b"a"), (b"host", b"h")],
            &[(b":method", b"GET"), (b":path", b"")],
            &[(b":method", b"GET"), (b"host", b"h")],
            &[
                (b":method", b"GET"),
                (b":path", b"/\xc3\xa9?q=\xff"),
                (b"host", b"h"),
            ],
            &[
                (b":method", b"GET"),
                (b":path", b"/\"\\"),
                (b"host", b"h\x01"),
            ],
            &[
                (b":method", b"GET"),
                (b":path", b"/?a&access_token=s"),
                (b"host", b"h"),
            ],
            &[(b":METHOD", b"GET"), (b":Path", b"/up"), (b"Host", b"UP")],
            &[
                (b":method", b"GET"),
                (b":path", b"/"),
                (b"host", b"h"),
                (b"referer", b"https://r/?code=1"),
                (b"Referer", b"second"),
                (b"user-agent", b"ua \xe2\x80\xae"),
                (b"User-Agent", b"second"),
            ],
            &[
                (b":method", b"GET"),
                (b":path", b"/"),
                (b"Host", b"h"),
                (b"HOST", b"h2"),
                (b"Content-Type", b"text/plain"),
                (b"x-\"q", b"v\n"),
                (b"\xff", b"\xfe"),
                (b":late", b"pseudo after regular"),
                (b"accept", b""),
                (b"cookie", b""),
                (b"cookie", b"a=1"),
                (b"authorization", b"Basic x"),
                (b"x-api-key", b"k"),
                (b"location", b"/l?password=p"),
            ],
        ];
        for fields in requests {
            events.push(with_request_headers(&base, fields));
        }
        // Many fields (past the fast path's stack array), some repeated.
        let many: Vec<(Vec<u8>, Vec<u8>)> = (0..40)
            .map(|i| {
                (
                    format!("x-h{}", i % 23).into_bytes(),
                    format!("v{i}").into_bytes(),
                )
            })
            .collect();
        let mut fields: Vec<(&[u8], &[u8])> = vec![(b":method", b"GET"), (b":path", b"/")];
        fields.extend(many.iter().map(|(n, v)| (&n[..], &v[..])));
        events.push(with_request_headers(&base, &fields));
        let distinct: Vec<(Vec<u8>, Vec<u8>)> = (0..17)
            .map(|i| (format!("x-d{i}").into_bytes(), b"v".to_vec()))
            .collect();
        let mut fields: Vec<(&[u8], &[u8])> = vec![(b":method", b"GET")];
        fields.extend(distinct.iter().map(|(n, v)| (&n[..], &v[..])));
        events.push(with_request_headers(&base, &fields));

        // Sensitive (never-indexed) fields.
        let mut h = h2_event();
        let mut headers = Headers::new();
        let mut dec = weft_proto::hpack::Decoder::new(&weft_proto::Limits::default());
        dec.decode(
            b"\x82\x84\x10\x04date\x03abc\x10\x0dauthorization\x08Bearer t\x10\x01x\x00",
            &mut headers,
        )
        .expect("valid block");
        tx(&mut h).request.headers = headers;
        events.push(h);

        // Bodies: JSON and form (masked), cut text, invalid UTF-8, decoded.
        for (ct, body, truncated) in [
            (
                &b"application/json"[..],
                &br#"{"password":"x","a":1}"#[..],
                false,
            ),
            (b"application/json", "{\"a\":\"\u{e9}\"}".as_bytes(), false),
            (
                b"Application/JSON; charset=utf-8",
                b"{\"token\":\"\xc3",
                true,
            ),
            (b"application/json", b"{\"token\":\"\xc3", false),
            (b"application/x-www-form-urlencoded", b"a=1&secret=2", false),
            (b"text/plain", "caf\u{e9}".as_bytes(), false),
            (b"text/plain", &"caf\u{e9}".as_bytes()[..4], true),
            (b"text/plain", &"caf\u{e9}".as_bytes()[..4], false),
            (b"text/plain", b"\xff\xfe", true),
            (b"", b"a\0\x1b\x7f", false),
            (b"application/vnd.x+json", br#"{"api_key":5}"#, false),
            // Past the 64-byte block of the plain-ASCII check.
            (b"text/plain", &LONG[..], false),
            (b"text/plain", &LONG[..71], true),
            (b"text/plain", &LONG_CUT[..], true),
            (b"text/plain", &LONG_CUT[..], false),
            (b"text/plain", &LONG_QUOTE[..], false),
        ] {
            for side in [false, true] {
                let mut h = h1_event();
                let m = if side {
                    &mut tx(&mut h).response
                } else {
                    &mut tx(&mut h).request
                };
                m.headers = [(":status", "200"), (":method", "POST"), (":path", "/")]
                    .into_iter()
                    .collect();
                m.headers.push(b"content-type", ct);
                m.body = Body {
                    data: body.to_vec(),
                    size: body.len() as u64 + u64::from(truncated),
                    truncated,
                    ..Body::default()
                };
                events.push(h);
            }
        }
        let mut h = h2_event();
        tx(&mut h).response.body.decoded = Some(Decoded {
            data: br#"{"id_token":"e"}"#.to_vec(),
            size: 16,
            truncated: true,
            error: Some(weft_proto::DecodeError::OutputLimit),
        });
        events.push(h);

        // Transaction ends, flags, interim responses, trailers, statuses.
        for end in [
            End::Reset {
                by: weft_proto::Direction::ServerToClient,
                error_code: 8,
            },
            End::GoAway { error_code: 0 },
            End::ConnectionClosed,
            End::Evicted,
            End::Desync,
        ] {
            let mut h = h2_event();
            tx(&mut h).end = end;
            events.push(h);
        }
        let mut h = h2_event();
        let t = tx(&mut h);
        t.promised_by = Some(1);
        t.interim = vec![[(":status", "103")].into_iter().collect()];
        t.request.headers_incomplete = true;
        t.response.data_lost = true;
        t.response.trailers = [("grpc-status", "0"), ("x-token", "t")]
            .into_iter()
            .collect();
        t.request.trailers = [(":pseudo", "only")].into_iter().collect();
        t.response.headers = [(":status", "2000"), ("content-type", " ; x")]
            .into_iter()
            .collect();
        events.push(h);
        // Otherwise complete, with an interim response.
        let mut h = h1_event();
        tx(&mut h).interim = vec![[(":status", "100")].into_iter().collect()];
        events.push(h);
        let mut h = h2_event();
        tx(&mut h).request = Message::default();
        events.push(h);
        let mut h = h2_event();
        tx(&mut h).response = Message::default();
        tx(&mut h).request.headers_truncated = true;
        events.push(h);

        // Contexts: no flow, plaintext, roles, TLS facts, names, IPv6.
        let mut h = h1_event();
        h.flow = None;
        events.push(h.clone());
        h.library = TlsLibrary::None;
        events.push(h);
        for role in [Role::Server, Role::Unknown] {
            let mut h = h1_event();
            h.role = role;
            events.push(h);
        }
        let mut h = h1_event();
        h.library = TlsLibrary::None;
        h.destination_domain = Some("api.example".into());
        h.tls = Some(Arc::new(TlsSession {
            version: Some("1.3".into()),
            next_protocol: Some("h2".into()),
            alpn_offered: vec!["h2".into(), "http/1.1".into()],
            handshake_ns: Some(5),
            failure: Some("x".into()),
            next_protocol_inferred: true,
            established: Some(true),
            ..TlsSession::default()
        }));
        events.push(h.clone());
        if let Some(f) = &mut h.flow {
            f.local = Endpoint {
                ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
                port: 1,
            };
            f.remote = Endpoint {
                ip: IpAddr::V6(Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped()),
                port: 443,
            };
            f.cookie = 0;
        }
        tx(&mut h).request.headers = [(":method", "GET"), (":path", "/")].into_iter().collect();
        events.push(h);
        let mut h = h1_event();
        h.duration_ns = None;
        tx(&mut h).http1_minor = Some(0);
        events.push(h);

        for h in &events {
            assert_same_as_reference(h);
        }
        // The same events again, in another order: cached contexts must
        // not leak from one event into another.
        for h in events.iter().rev() {
            assert_same_as_reference(h);
        }
        // And in a scrambled order, many times: a kept header list must
        // answer only for its own bytes and redaction option.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..4 * events.len() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            assert_same_as_reference(&events[(x % events.len() as u64) as usize]);
        }
    }
}
