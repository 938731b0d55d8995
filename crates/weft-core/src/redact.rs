//! Masking credentials before anything leaves weft.
//!
//! weft shows decoded HTTP traffic, which routinely carries secrets: bearer
//! tokens, session cookies, API keys, passwords in login forms, OAuth codes in
//! redirect URLs. Every output masks them by default (`--no-redact` shows
//! them); these functions decide what is masked and how. They are pure, need
//! only `std` (and weft-proto's HTTP/2 frame checks), and borrow their input
//! whenever nothing needs masking, so the common case costs a scan and no
//! allocation.
//!
//! What is masked (every comparison ASCII case-insensitive):
//!
//! * **Header values** ([`mask_header_value`]) of credential headers
//!   ([`is_credential_header`]). What identifies the *kind* of credential is
//!   kept: the scheme of `Authorization` (`Bearer [REDACTED]`), cookie names
//!   (`sid=[REDACTED]; theme=[REDACTED]`), the attributes of `Set-Cookie`
//!   (`sid=[REDACTED]; Path=/; HttpOnly`).
//! * **URLs** ([`redact_query`]): values of credential-looking parameters
//!   ([`is_credential_param`]) in the query and in the fragment (OAuth's
//!   implicit flow returns tokens there). URL-valued headers (`:path`,
//!   `Referer`, `Location`, `Content-Location`) go through the same rules.
//! * **Bodies** ([`redact_body`]): `application/x-www-form-urlencoded` bodies
//!   like a query; JSON bodies (`application/json`, `*/*+json`) have the
//!   string and number values of credential-looking keys masked (an OAuth
//!   token response, a login request).
//!
//! * **Capture payloads** (`--raw`, undecoded traffic), in place and byte for
//!   byte with [`MASK_BYTE`] so lengths stay true: HTTP/1 text through
//!   [`Http1PayloadMasker`] (the header and query rules above, across
//!   payload boundaries), HTTP/2 through [`Http2PayloadMasker`] (header
//!   blocks blanked whole: HPACK cannot be masked field by field).
//!
//! Masking replaces a value with [`MASK`]; empty values stay empty (there is
//! nothing to hide, and showing that a token was empty is useful). Redaction
//! is a safety net for people and logs, not a guarantee: a secret in a header
//! or parameter with an unremarkable name, in the URL path, or in a body of
//! another type, is shown as it is.

use std::borrow::Cow;

/// What a masked value is replaced with.
pub const MASK: &[u8] = b"[REDACTED]";

/// Header names whose values are credentials (compared case-insensitively).
/// [`header_kind`] decides with a faster equivalent; the tests hold the two
/// together.
#[cfg(test)]
const CREDENTIAL_HEADERS: &[&[u8]] = &[
    b"authorization",
    b"proxy-authorization",
    b"cookie",
    b"set-cookie",
    b"x-api-key",
    b"api-key",
    b"x-auth-token",
    b"x-access-token",
    b"x-amz-security-token",
    b"x-goog-api-key",
    b"x-csrf-token",
    b"x-xsrf-token",
];

/// A header whose name contains one of these is taken as a credential too
/// (`x-upstream-token`, `x-client-secret`, `x-session-id`,
/// `x-forwarded-authorization`, ...).
const CREDENTIAL_HEADER_PARTS: &[&[u8]] = &[
    b"token",
    b"secret",
    b"password",
    b"passwd",
    b"api-key",
    b"apikey",
    b"api_key",
    b"session",
    b"authorization",
    b"credential",
];

/// Query, form and JSON parameter names whose values are credentials.
const CREDENTIAL_PARAMS: &[&[u8]] = &[
    b"token",
    b"access_token",
    b"id_token",
    b"refresh_token",
    b"api_key",
    b"apikey",
    b"key",
    b"password",
    b"passwd",
    b"pwd",
    b"secret",
    b"client_secret",
    b"sig",
    b"signature",
    b"x-amz-signature",
    b"x-amz-credential",
    b"x-amz-security-token",
    b"auth",
    b"session",
    b"sessionid",
    b"sid",
    b"code",
    b"jwt",
    b"access_key",
    b"private_key",
    b"subscription-key",
    b"subscription_key",
];

/// A parameter whose (decoded) name contains one of these is taken as a
/// credential too (`auth_token`, `user[password]`, `X-Goog-Signature`, ...).
const CREDENTIAL_PARAM_PARTS: &[&[u8]] = &[
    b"token",
    b"secret",
    b"password",
    b"passwd",
    b"apikey",
    b"api_key",
    b"api-key",
    b"session",
    b"signature",
    b"credential",
];

/// Names that contain a credential word but hold none (OAuth's
/// `token_type=Bearer`).
const NOT_CREDENTIAL_PARAMS: &[&[u8]] = &[b"token_type", b"token_type_hint"];

/// Headers whose value is a URL (or a request target): their query and
/// fragment are redacted like a request's.
#[cfg(test)]
const URL_HEADERS: &[&[u8]] = &[b":path", b"referer", b"location", b"content-location"];

/// `Set-Cookie` attributes that describe the cookie and are never secret.
const COOKIE_ATTRIBUTES: &[&[u8]] = &[
    b"expires",
    b"max-age",
    b"domain",
    b"path",
    b"secure",
    b"httponly",
    b"samesite",
    b"partitioned",
    b"priority",
];

/// Longest `Authorization` scheme kept in front of the mask
/// (`AWS4-HMAC-SHA256` is 16). A longer first word is more likely a bare
/// token than a scheme, and is masked with the rest.
const MAX_SCHEME_LEN: usize = 24;

/// Whether the value of header `name` is a credential: one of
/// `Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie`,
/// `X-Api-Key`, `Api-Key`, `X-Auth-Token`, `X-Access-Token`,
/// `X-Amz-Security-Token`, `X-Goog-Api-Key`, `X-Csrf-Token`, `X-Xsrf-Token`,
/// or a name containing `token`, `secret`, `password`, `passwd`, `api-key`,
/// `apikey`, `api_key`, `session`, `authorization` or `credential`.
/// Pseudo-header fields (`:path`, ...) are never credentials.
pub fn is_credential_header(name: &[u8]) -> bool {
    !matches!(header_kind(name), HeaderKind::Plain | HeaderKind::Url)
}

/// What redaction does with a header, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderKind {
    Plain,
    /// A URL or request target: its query is redacted.
    Url,
    Authorization,
    Cookie,
    SetCookie,
    /// Any other credential: masked whole.
    Credential,
}

/// Longest header name classified without allocating; longer ones (rare,
/// and never a listed name) take the slow path.
const FAST_NAME: usize = 64;

/// The name's kind, from one lower-casing pass and a few comparisons: this
/// runs for every header of every event shown.
fn header_kind(name: &[u8]) -> HeaderKind {
    if name.first() == Some(&b':') {
        return if name.eq_ignore_ascii_case(b":path") {
            HeaderKind::Url
        } else {
            HeaderKind::Plain
        };
    }
    let mut buf = [0u8; FAST_NAME];
    let Some(lower) = buf.get_mut(..name.len()) else {
        let lower = name.to_ascii_lowercase();
        return kind_of_lower(&lower);
    };
    for (d, s) in lower.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    kind_of_lower(lower)
}

fn kind_of_lower(lower: &[u8]) -> HeaderKind {
    match lower {
        // The most common names first: nothing more to check.
        b"content-type" | b"content-length" | b"user-agent" | b"accept" | b"accept-encoding"
        | b"accept-language" | b"date" | b"server" | b"host" | b"connection" | b"cache-control"
        | b"content-encoding" | b"vary" | b"etag" | b"last-modified" | b"te" | b"upgrade"
        | b"origin" | b"grpc-status" | b"grpc-message" => HeaderKind::Plain,
        b"referer" | b"location" | b"content-location" => HeaderKind::Url,
        b"authorization" | b"proxy-authorization" => HeaderKind::Authorization,
        b"cookie" => HeaderKind::Cookie,
        b"set-cookie" => HeaderKind::SetCookie,
        _ if contains_part(lower) => HeaderKind::Credential,
        _ => HeaderKind::Plain,
    }
}

/// Whether lower-case `name` contains one of [`CREDENTIAL_HEADER_PARTS`]:
/// one pass, comparing only where a part's first letter is.
fn contains_part(name: &[u8]) -> bool {
    (0..name.len()).any(|i| {
        matches!(name[i], b't' | b's' | b'p' | b'a' | b'c')
            && CREDENTIAL_HEADER_PARTS
                .iter()
                .any(|part| name[i..].starts_with(part))
    })
}

/// Whether a query, form or JSON parameter called `name` (already decoded)
/// holds a credential: one of `token`, `access_token`, `id_token`,
/// `refresh_token`, `api_key`, `apikey`, `key`, `password`, `passwd`, `pwd`,
/// `secret`, `client_secret`, `sig`, `signature`, `x-amz-signature`,
/// `x-amz-credential`, `x-amz-security-token`, `auth`, `session`,
/// `sessionid`, `sid`, `code`, `jwt`, `access_key`, `private_key`,
/// `subscription-key`, `subscription_key`, or a name containing `token`,
/// `secret`, `password`, `passwd`, `apikey`, `api_key`, `api-key`,
/// `session`, `signature` or `credential` (except OAuth's `token_type` and
/// `token_type_hint`).
pub fn is_credential_param(name: &[u8]) -> bool {
    if NOT_CREDENTIAL_PARAMS
        .iter()
        .any(|p| name.eq_ignore_ascii_case(p))
    {
        return false;
    }
    CREDENTIAL_PARAMS
        .iter()
        .any(|p| name.eq_ignore_ascii_case(p))
        || CREDENTIAL_PARAM_PARTS
            .iter()
            .any(|part| contains_ignore_case(name, part))
}

/// The value of header `name` as it may be shown.
///
/// * Credential headers ([`is_credential_header`]) are masked, keeping what
///   says which kind of credential it is: `Authorization: Bearer [REDACTED]`
///   (a value without a scheme word is masked whole), `Cookie: a=[REDACTED];
///   b=[REDACTED]`, `Set-Cookie: sid=[REDACTED]; Path=/; HttpOnly`.
/// * URL-valued headers (`:path`, `Referer`, `Location`,
///   `Content-Location`) have their query and fragment redacted
///   ([`redact_query`]).
/// * Anything else, and empty values, come back unchanged (borrowed).
pub fn mask_header_value<'a>(name: &[u8], value: &'a [u8]) -> Cow<'a, [u8]> {
    let kind = header_kind(name);
    if kind == HeaderKind::Url {
        return redact_query(value);
    }
    if value.is_empty() {
        return Cow::Borrowed(value);
    }
    match kind {
        HeaderKind::Plain | HeaderKind::Url => Cow::Borrowed(value),
        HeaderKind::Authorization => Cow::Owned(mask_authorization(value)),
        HeaderKind::Cookie => Cow::Owned(mask_cookie(value)),
        HeaderKind::SetCookie => Cow::Owned(mask_set_cookie(value)),
        HeaderKind::Credential => Cow::Owned(MASK.to_vec()),
    }
}

/// `Bearer abc` -> `Bearer [REDACTED]`; `abc` -> `[REDACTED]`.
fn mask_authorization(value: &[u8]) -> Vec<u8> {
    let v = value.trim_ascii_start();
    let scheme_len = v.iter().take_while(|&&b| is_tchar(b)).count();
    let rest = &v[scheme_len..];
    let mut out = Vec::with_capacity(MAX_SCHEME_LEN + 1 + MASK.len());
    if (1..=MAX_SCHEME_LEN).contains(&scheme_len)
        && v[0].is_ascii_alphabetic()
        && matches!(rest.first(), Some(b' ' | b'\t'))
    {
        out.extend_from_slice(&v[..scheme_len]);
        out.push(b' ');
    }
    out.extend_from_slice(MASK);
    out
}

/// `a=1; b=2` -> `a=[REDACTED]; b=[REDACTED]`.
fn mask_cookie(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 16);
    for pair in value.split(|&b| b == b';') {
        let pair = pair.trim_ascii();
        if pair.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.extend_from_slice(b"; ");
        }
        push_masked_pair(&mut out, pair);
    }
    out
}

/// `sid=1; Path=/; HttpOnly; X=y` -> `sid=[REDACTED]; Path=/; HttpOnly; X=[REDACTED]`.
fn mask_set_cookie(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 16);
    for (i, part) in value.split(|&b| b == b';').enumerate() {
        let part = part.trim_ascii();
        if i > 0 && part.is_empty() {
            continue;
        }
        if i > 0 {
            out.extend_from_slice(b"; ");
        }
        let name = part.split(|&b| b == b'=').next().unwrap_or_default();
        let known = COOKIE_ATTRIBUTES
            .iter()
            .any(|a| name.trim_ascii().eq_ignore_ascii_case(a));
        if i > 0 && (known || !part.contains(&b'=')) {
            out.extend_from_slice(part);
        } else {
            push_masked_pair(&mut out, part);
        }
    }
    out
}

/// `name=value` -> `name=[REDACTED]`, `name=` stays, a bare `value` (a
/// nameless cookie) -> `[REDACTED]`.
fn push_masked_pair(out: &mut Vec<u8>, pair: &[u8]) {
    match pair.iter().position(|&b| b == b'=') {
        Some(eq) => {
            out.extend_from_slice(&pair[..=eq]);
            if !pair[eq + 1..].trim_ascii().is_empty() {
                out.extend_from_slice(MASK);
            }
        }
        None => out.extend_from_slice(MASK),
    }
}

/// A request target or URL (`/cb?code=x&state=y`, `https://h/p#access_token=x`)
/// with the values of credential-looking parameters ([`is_credential_param`])
/// masked: `/cb?code=[REDACTED]&state=y`.
///
/// Parameters are what follows the first `?` or `#`, separated by `&` or `;`
/// (some servers split on either, so both are treated as separators). The
/// fragment is redacted like the query. Names are matched after
/// percent-decoding (`%74oken` is `token`); values are masked whole, as sent.
/// A parameter without `=` or with an empty value is left alone, as is
/// everything before the `?`. Borrowed when nothing is masked.
pub fn redact_query(target: &[u8]) -> Cow<'_, [u8]> {
    match target.iter().position(|&b| b == b'?' || b == b'#') {
        Some(start) => redact_params(target, start + 1),
        None => Cow::Borrowed(target),
    }
}

/// An `application/x-www-form-urlencoded` body with credential values masked,
/// by the rules of [`redact_query`] (`user=bob&password=[REDACTED]`).
pub fn redact_form(body: &[u8]) -> Cow<'_, [u8]> {
    redact_params(body, 0)
}

/// Masks parameter values in `s[start..]` (pairs split on `&`, `;`, `#`).
fn redact_params(s: &[u8], start: usize) -> Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0; // s[..copied] is in `out`
    let mut pos = start;
    let mut name_buf = Vec::new();
    while pos <= s.len() {
        let end = s[pos..]
            .iter()
            .position(|&b| matches!(b, b'&' | b';' | b'#'))
            .map_or(s.len(), |i| pos + i);
        let pair = &s[pos..end];
        if let Some(eq) = pair.iter().position(|&b| b == b'=') {
            let (value_start, value_end) = (pos + eq + 1, end);
            if value_end > value_start
                && is_credential_param(percent_decode(&pair[..eq], &mut name_buf))
            {
                let o = out.get_or_insert_with(|| Vec::with_capacity(s.len() + MASK.len()));
                o.extend_from_slice(&s[copied..value_start]);
                o.extend_from_slice(MASK);
                copied = value_end;
            }
        }
        pos = end + 1;
    }
    match out {
        Some(mut o) => {
            o.extend_from_slice(&s[copied..]);
            Cow::Owned(o)
        }
        None => Cow::Borrowed(s),
    }
}

/// `name` with `%XX` decoded and `+` as a space (form encoding), borrowed
/// when there is nothing to decode. Malformed escapes stay as they are.
fn percent_decode<'a>(name: &'a [u8], buf: &'a mut Vec<u8>) -> &'a [u8] {
    if !name.iter().any(|&b| b == b'%' || b == b'+') {
        return name;
    }
    buf.clear();
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'%' => match (
                name.get(i + 1).and_then(|&b| hex_value(b)),
                name.get(i + 2).and_then(|&b| hex_value(b)),
            ) {
                (Some(hi), Some(lo)) => {
                    buf.push(hi << 4 | lo);
                    i += 3;
                }
                _ => {
                    buf.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                buf.push(b' ');
                i += 1;
            }
            b => {
                buf.push(b);
                i += 1;
            }
        }
    }
    buf
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A message body with credentials masked, chosen by its `Content-Type`:
/// form-encoded bodies by [`redact_form`], JSON (`application/json`,
/// `text/json`, `*/*+json`) by [`redact_json`]. Other bodies come back
/// unchanged (borrowed).
pub fn redact_body<'a>(content_type: Option<&[u8]>, body: &'a [u8]) -> Cow<'a, [u8]> {
    let Some(ct) = content_type else {
        return Cow::Borrowed(body);
    };
    let mime = mime_type(ct);
    if mime.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
        redact_form(body)
    } else if mime.eq_ignore_ascii_case(b"application/json")
        || mime.eq_ignore_ascii_case(b"text/json")
        || (mime.len() > 5 && mime[mime.len() - 5..].eq_ignore_ascii_case(b"+json"))
    {
        redact_json(body)
    } else {
        Cow::Borrowed(body)
    }
}

/// The media type of a `Content-Type` value, without parameters or
/// surrounding whitespace: `application/json; charset=utf-8` ->
/// `application/json`.
pub fn mime_type(content_type: &[u8]) -> &[u8] {
    content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii()
}

/// A JSON text (possibly cut short) with the values of credential-looking
/// keys ([`is_credential_param`]) masked: string values become
/// `"[REDACTED]"`, number values `"[REDACTED]"` too; objects, arrays,
/// booleans and `null` are left (keys inside nested objects are checked in
/// turn). Not a validating parser: it follows strings and `key:` pairs, so it
/// never misreads a string's contents as structure, and it tolerates any
/// input, including text that is not JSON at all. Borrowed when nothing is
/// masked.
pub fn redact_json(body: &[u8]) -> Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut key_buf = Vec::new();
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'"' {
            i += 1;
            continue;
        }
        let (key_end, key_closed) = string_end(body, i);
        let after = skip_ws(body, key_end);
        if !key_closed || body.get(after) != Some(&b':') {
            i = key_end;
            continue;
        }
        // A closed string: `key_end - 1` is its closing quote.
        let key = unescape_key(&body[i + 1..key_end - 1], &mut key_buf);
        let value = skip_ws(body, after + 1);
        i = value;
        if !is_credential_param(key) {
            continue;
        }
        // The value's extent, as (start, end) of what the mask replaces.
        let span = match body.get(value) {
            Some(b'"') => {
                let (end, closed) = string_end(body, value);
                let inner_end = if closed { end - 1 } else { end };
                i = end;
                (inner_end > value + 1).then_some((value + 1, inner_end, false))
            }
            Some(b'-' | b'0'..=b'9') => {
                let end = value
                    + body[value..]
                        .iter()
                        .take_while(|&&b| {
                            matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                        })
                        .count();
                i = end;
                Some((value, end, true))
            }
            _ => None,
        };
        if let Some((start, end, quote)) = span {
            let o = out.get_or_insert_with(|| Vec::with_capacity(body.len() + MASK.len()));
            o.extend_from_slice(&body[copied..start]);
            if quote {
                o.push(b'"');
            }
            o.extend_from_slice(MASK);
            if quote {
                o.push(b'"');
            }
            copied = end;
        }
    }
    match out {
        Some(mut o) => {
            o.extend_from_slice(&body[copied..]);
            Cow::Owned(o)
        }
        None => Cow::Borrowed(body),
    }
}

/// Index just past the string starting with the quote at `start` (past its
/// closing quote), and whether it was closed (else the end of input).
fn string_end(s: &[u8], start: usize) -> (usize, bool) {
    let mut i = start + 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return (i + 1, true),
            _ => i += 1,
        }
    }
    (s.len(), false)
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while matches!(s.get(i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

/// A JSON key's characters for matching: simple escapes and `\u00XX`
/// decoded (so `"\u0074oken"` is `token`); anything else kept as is.
fn unescape_key<'a>(raw: &'a [u8], buf: &'a mut Vec<u8>) -> &'a [u8] {
    if !raw.contains(&b'\\') {
        return raw;
    }
    buf.clear();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' && i + 1 < raw.len() {
            let esc = raw[i + 1];
            if esc == b'u'
                && let Some(hex) = raw.get(i + 2..i + 6)
                && hex[0] == b'0'
                && hex[1] == b'0'
                && let (Some(hi), Some(lo)) = (hex_value(hex[2]), hex_value(hex[3]))
            {
                buf.push(hi << 4 | lo);
                i += 6;
                continue;
            }
            buf.push(esc);
            i += 2;
        } else {
            buf.push(raw[i]);
            i += 1;
        }
    }
    buf
}

/// RFC 9110 `tchar`: the characters of a token such as an auth scheme.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

// ---------------------------------------------------------------------------
// Capture payloads (`--raw`, and traffic no decoder understands): masked in
// place, byte for byte, so a payload keeps its length, `captured` and
// `length` stay true, and offsets into it still mean what they meant.
// ---------------------------------------------------------------------------

/// What each masked byte of a capture payload is overwritten with.
pub const MASK_BYTE: u8 = b'*';

/// Overwrites `b` with [`MASK_BYTE`]; whether there was anything to mask.
fn star(b: &mut [u8]) -> bool {
    b.fill(MASK_BYTE);
    !b.is_empty()
}

/// `b` without leading and trailing spaces and tabs.
fn trim_mut(b: &mut [u8]) -> &mut [u8] {
    let start = b.iter().take_while(|c| matches!(c, b' ' | b'\t')).count();
    let b = &mut b[start..];
    let end = b.len()
        - b.iter()
            .rev()
            .take_while(|c| matches!(c, b' ' | b'\t'))
            .count();
    &mut b[..end]
}

/// `name=value` -> `name=*****`; a bare `value` -> `*****`.
fn star_pair(pair: &mut [u8]) -> bool {
    let pair = trim_mut(pair);
    match pair.iter().position(|&b| b == b'=') {
        Some(eq) => star(trim_mut(&mut pair[eq + 1..])),
        None => star(pair),
    }
}

/// [`mask_header_value`]'s rules, applied in place: what it would replace by
/// [`MASK`] is overwritten with [`MASK_BYTE`] (the `Authorization` scheme,
/// cookie names and `Set-Cookie` attributes stay readable). Returns whether
/// anything was masked.
pub fn mask_header_value_in_place(name: &[u8], value: &mut [u8]) -> bool {
    let kind = header_kind(name);
    if kind == HeaderKind::Url {
        return redact_query_in_place(value);
    }
    let v = trim_mut(value);
    match kind {
        HeaderKind::Plain | HeaderKind::Url => false,
        HeaderKind::Authorization => {
            let scheme_len = v.iter().take_while(|&&b| is_tchar(b)).count();
            let keep = if (1..=MAX_SCHEME_LEN).contains(&scheme_len)
                && v[0].is_ascii_alphabetic()
                && matches!(v.get(scheme_len), Some(b' ' | b'\t'))
            {
                scheme_len
            } else {
                0
            };
            star(trim_mut(&mut v[keep..]))
        }
        HeaderKind::Cookie => {
            let mut any = false;
            for pair in v.split_mut(|&b| b == b';') {
                any |= star_pair(pair);
            }
            any
        }
        HeaderKind::SetCookie => {
            let mut any = false;
            for (i, part) in v.split_mut(|&b| b == b';').enumerate() {
                let attr = part.split(|&b| b == b'=').next().unwrap_or_default();
                let known = COOKIE_ATTRIBUTES
                    .iter()
                    .any(|a| attr.trim_ascii().eq_ignore_ascii_case(a));
                if i == 0 || (!known && part.contains(&b'=')) {
                    any |= star_pair(part);
                }
            }
            any
        }
        HeaderKind::Credential => star(v),
    }
}

/// [`redact_query`]'s rules, applied in place: the values of
/// credential-looking parameters in the query and fragment are overwritten
/// with [`MASK_BYTE`]. Returns whether anything was masked.
pub fn redact_query_in_place(target: &mut [u8]) -> bool {
    let Some(start) = target.iter().position(|&b| b == b'?' || b == b'#') else {
        return false;
    };
    let mut any = false;
    let mut name_buf = Vec::new();
    for pair in target[start + 1..].split_mut(|&b| matches!(b, b'&' | b';' | b'#')) {
        if let Some(eq) = pair.iter().position(|&b| b == b'=') {
            let (name, value) = pair.split_at_mut(eq);
            if value.len() > 1 && is_credential_param(percent_decode(name, &mut name_buf)) {
                any |= star(&mut value[1..]);
            }
        }
    }
    any
}

/// Longest header name or method the payload masker follows.
const MAX_TOKEN: usize = 64;

/// Masks credentials in the HTTP/1 text of one direction of a connection,
/// payload by payload, in place ([`MASK_BYTE`], same length): values of
/// credential headers ([`mask_header_value_in_place`]), and credential
/// query parameters of request lines and URL-valued headers
/// ([`redact_query_in_place`]).
///
/// Lines may be cut anywhere between payloads: a header name is carried
/// over, and the rest of a credential value (or of a query) that began in
/// an earlier payload is masked whole, up to the end of its line (or the
/// space after the request target). Lines are looked at wherever they are,
/// so a `Password: x` line inside a text body is masked too; form and JSON
/// bodies are not (the decoded HTTP events mask those).
#[derive(Debug, Clone, Default)]
pub struct Http1PayloadMasker {
    state: LineState,
    /// The line's first token so far (a header name or a method).
    token: Vec<u8>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum LineState {
    /// At the start of a line.
    #[default]
    Start,
    /// In the line's first token (kept in `token`).
    Token,
    /// Nothing to mask up to the end of the line.
    Skip,
    /// In a credential header value that began in an earlier payload.
    Secret,
    /// In a URL (request target, or URL-valued header when `request` is
    /// false) before its query.
    Target { request: bool },
    /// In the query or fragment of such a URL.
    Query { request: bool },
}

/// Whether `t` is a plausible request method (`GET`, `M-SEARCH`, ...).
fn is_method(t: &[u8]) -> bool {
    (3..=16).contains(&t.len()) && t.iter().all(|&b| b.is_ascii_uppercase() || b == b'-')
}

impl Http1PayloadMasker {
    /// Forget where the previous payload ended (bytes were skipped).
    pub fn reset(&mut self) {
        self.state = LineState::Start;
        self.token.clear();
    }

    /// Masks `p`, the next payload of this direction; returns whether
    /// anything was masked.
    pub fn mask(&mut self, p: &mut [u8]) -> bool {
        let mut masked = false;
        let mut i = 0;
        while i < p.len() {
            match self.state {
                LineState::Start | LineState::Token => {
                    let b = p[i];
                    if b == b':' && self.state == LineState::Token {
                        let eol = p[i..].iter().position(|&c| c == b'\n').map(|e| i + e);
                        let mut end = eol.unwrap_or(p.len());
                        if eol.is_some() && end > i + 1 && p[end - 1] == b'\r' {
                            end -= 1;
                        }
                        let name = std::mem::take(&mut self.token);
                        let kind = header_kind(&name);
                        let url = kind == HeaderKind::Url;
                        let cred = !matches!(kind, HeaderKind::Plain | HeaderKind::Url);
                        if url || cred {
                            masked |= mask_header_value_in_place(&name, &mut p[i + 1..end]);
                        }
                        self.state = match eol {
                            Some(_) => LineState::Start,
                            None if cred => LineState::Secret,
                            None if url && p[i + 1..].iter().any(|&c| c == b'?' || c == b'#') => {
                                LineState::Query { request: false }
                            }
                            None if url => LineState::Target { request: false },
                            None => LineState::Skip,
                        };
                        self.token = name;
                        self.token.clear();
                        i = eol.map_or(p.len(), |e| e + 1);
                    } else if b == b' ' && self.state == LineState::Token && is_method(&self.token)
                    {
                        self.token.clear();
                        let start = i + 1;
                        let end = p[start..]
                            .iter()
                            .position(|&c| matches!(c, b' ' | b'\r' | b'\n'))
                            .map(|e| start + e);
                        let stop = end.unwrap_or(p.len());
                        masked |= redact_query_in_place(&mut p[start..stop]);
                        self.state = match end {
                            Some(_) => LineState::Skip,
                            None if p[start..].iter().any(|&c| c == b'?' || c == b'#') => {
                                LineState::Query { request: true }
                            }
                            None => LineState::Target { request: true },
                        };
                        i = stop;
                    } else if is_tchar(b) && self.token.len() < MAX_TOKEN {
                        self.token.push(b);
                        self.state = LineState::Token;
                        i += 1;
                    } else {
                        self.token.clear();
                        self.state = if b == b'\n' {
                            LineState::Start
                        } else {
                            LineState::Skip
                        };
                        i += 1;
                    }
                }
                LineState::Skip => match p[i..].iter().position(|&c| c == b'\n') {
                    Some(e) => {
                        self.state = LineState::Start;
                        i += e + 1;
                    }
                    None => i = p.len(),
                },
                LineState::Secret => {
                    let e = p[i..]
                        .iter()
                        .position(|&c| c == b'\r' || c == b'\n')
                        .map_or(p.len(), |e| i + e);
                    masked |= star(&mut p[i..e]);
                    if e < p.len() {
                        self.state = LineState::Skip;
                    }
                    i = e;
                }
                LineState::Target { request } | LineState::Query { request } => {
                    let in_query = matches!(self.state, LineState::Query { .. });
                    let end = p[i..]
                        .iter()
                        .position(|&c| c == b'\r' || c == b'\n' || (request && c == b' '))
                        .map_or(p.len(), |e| i + e);
                    let (from, query) = if in_query {
                        (i, true)
                    } else {
                        match p[i..end].iter().position(|&c| c == b'?' || c == b'#') {
                            Some(q) => (i + q + 1, true),
                            None => (end, false),
                        }
                    };
                    // A query cut by a payload boundary: the rest is masked
                    // whole (its parameter names may be cut too).
                    masked |= star(&mut p[from..end]);
                    if end < p.len() {
                        self.state = LineState::Skip;
                    } else if query {
                        self.state = LineState::Query { request };
                    }
                    i = end;
                }
            }
        }
        masked
    }
}

/// Blanks the header blocks in the HTTP/2 bytes of one direction of a
/// connection, payload by payload, in place: the payload of every HEADERS,
/// PUSH_PROMISE and CONTINUATION frame is overwritten with [`MASK_BYTE`]
/// (HPACK cannot be masked field by field without re-encoding it, and its
/// dynamic table makes any one field depend on earlier blocks). Frame
/// headers, DATA and control frames are kept.
///
/// It follows frame boundaries across payloads from the client preface or a
/// plausible frame header at the start of a payload; until it has found
/// them (a connection joined mid-way, bytes lost), whole payloads are
/// blanked: nothing HPACK-coded is shown unmasked.
#[derive(Debug, Clone, Default)]
pub struct Http2PayloadMasker {
    walk: Walk,
}

#[derive(Debug, Clone, Copy, Default)]
enum Walk {
    /// Frame boundaries unknown.
    #[default]
    Lost,
    /// Client preface bytes left.
    Preface(usize),
    /// In a frame header (`n` of 9 bytes seen).
    Header { buf: [u8; 9], n: usize },
    /// In a frame payload.
    Payload { left: u32, blank: bool },
}

impl Http2PayloadMasker {
    /// Bytes were lost: boundaries are unknown until a payload starts with
    /// a plausible frame header.
    pub fn lost(&mut self) {
        self.walk = Walk::Lost;
    }

    /// Masks `p`, the next payload of this direction; returns whether
    /// anything was blanked.
    pub fn mask(&mut self, p: &mut [u8]) -> bool {
        use weft_proto::http2::{PrefaceMatch, match_preface, plausible_frame_header};
        if matches!(self.walk, Walk::Lost) {
            if !p.is_empty() && match_preface(p) != PrefaceMatch::Mismatch {
                self.walk = Walk::Preface(weft_proto::http2::PREFACE.len());
            } else if plausible_frame_header(p) {
                self.walk = Walk::Header { buf: [0; 9], n: 0 };
            } else {
                return star(p);
            }
        }
        let mut masked = false;
        let mut i = 0;
        while i < p.len() {
            match &mut self.walk {
                Walk::Lost => return star(&mut p[i..]) || masked,
                Walk::Preface(left) => {
                    let k = (*left).min(p.len() - i);
                    *left -= k;
                    i += k;
                    if *left == 0 {
                        self.walk = Walk::Header { buf: [0; 9], n: 0 };
                    }
                }
                Walk::Header { buf, n } => {
                    let k = (9 - *n).min(p.len() - i);
                    buf[*n..*n + k].copy_from_slice(&p[i..i + k]);
                    *n += k;
                    i += k;
                    if *n == 9 {
                        let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]);
                        // HEADERS, PUSH_PROMISE, CONTINUATION.
                        let blank = matches!(buf[3], 0x1 | 0x5 | 0x9);
                        self.walk = if len == 0 {
                            Walk::Header { buf: [0; 9], n: 0 }
                        } else {
                            Walk::Payload { left: len, blank }
                        };
                    }
                }
                Walk::Payload { left, blank } => {
                    let k = (*left as usize).min(p.len() - i);
                    if *blank {
                        masked |= star(&mut p[i..i + k]);
                    }
                    *left -= k as u32;
                    i += k;
                    if *left == 0 {
                        self.walk = Walk::Header { buf: [0; 9], n: 0 };
                    }
                }
            }
        }
        masked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition [`header_kind`] must agree with, written plainly.
    fn is_credential_header_slow(name: &[u8]) -> bool {
        name.first() != Some(&b':')
            && (CREDENTIAL_HEADERS
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h))
                || CREDENTIAL_HEADER_PARTS
                    .iter()
                    .any(|part| contains_ignore_case(name, part)))
    }

    #[test]
    fn fast_header_classification_matches_the_definition() {
        let mut names: Vec<Vec<u8>> = [
            "Authorization",
            "proxy-authorization",
            "Cookie",
            "SET-COOKIE",
            "x-api-key",
            "X-Goog-Api-Key",
            "x-upstream-token",
            "X-Client-Secret",
            "x-session-id",
            "x-forwarded-authorization",
            "content-type",
            "Content-Length",
            "user-agent",
            "accept",
            "date",
            "server",
            "x-request-id",
            "x-tokens",
            "tok",
            "sessio",
            "passwd-hint",
            "my-credentials",
            "apikey",
            "api_key",
            "te",
            "",
            ":path",
            ":authority",
            ":x-token",
            "referer",
            "LOCATION",
            "content-location",
            "a",
            "t",
        ]
        .iter()
        .map(|n| n.as_bytes().to_vec())
        .collect();
        names.extend(CREDENTIAL_HEADERS.iter().map(|h| h.to_vec()));
        // Past the fast path's buffer.
        names.push([b"x-".as_slice(), &[b'a'; 70], b"-token"].concat());
        names.push(vec![b'b'; 100]);
        for n in &names {
            assert_eq!(
                is_credential_header(n),
                is_credential_header_slow(n),
                "{}",
                String::from_utf8_lossy(n)
            );
            let url = URL_HEADERS.iter().any(|h| n.eq_ignore_ascii_case(h));
            assert_eq!(
                header_kind(n) == HeaderKind::Url,
                url,
                "{}",
                String::from_utf8_lossy(n)
            );
        }
    }

    fn s(c: Cow<'_, [u8]>) -> String {
        String::from_utf8(c.into_owned()).expect("UTF-8 in tests")
    }

    fn header(name: &str, value: &str) -> String {
        s(mask_header_value(name.as_bytes(), value.as_bytes()))
    }

    fn query(target: &str) -> String {
        s(redact_query(target.as_bytes()))
    }

    fn json(body: &str) -> String {
        s(redact_json(body.as_bytes()))
    }

    #[test]
    fn credential_header_names() {
        for name in [
            "authorization",
            "Authorization",
            "PROXY-AUTHORIZATION",
            "cookie",
            "Set-Cookie",
            "x-api-key",
            "api-key",
            "X-Auth-Token",
            "x-access-token",
            "x-amz-security-token",
            "x-goog-api-key",
            "x-csrf-token",
            "X-XSRF-TOKEN",
            "x-upstream-token",
            "x-client-secret",
            "x-db-password",
            "x-apikey",
            "x-session-id",
            "x-forwarded-authorization",
        ] {
            assert!(is_credential_header(name.as_bytes()), "{name}");
        }
        for name in [
            "content-type",
            "user-agent",
            "host",
            "accept",
            "sec-websocket-key",
            "www-authenticate",
            "x-request-id",
            ":authority",
            ":path",
            "",
        ] {
            assert!(!is_credential_header(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn authorization_keeps_its_scheme() {
        assert_eq!(
            header("authorization", "Bearer eyJhbGciOi.x.y"),
            "Bearer [REDACTED]"
        );
        assert_eq!(
            header("Authorization", "Basic dXNlcjpwYXNz"),
            "Basic [REDACTED]"
        );
        assert_eq!(
            header(
                "proxy-authorization",
                "  Digest username=\"a\", response=\"b\""
            ),
            "Digest [REDACTED]"
        );
        assert_eq!(
            header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIA/20130524/us-east-1/s3/aws4_request, Signature=fe5f"
            ),
            "AWS4-HMAC-SHA256 [REDACTED]"
        );
        // A bare token (no scheme word) is masked whole.
        assert_eq!(header("authorization", "sk_live_abcdef"), "[REDACTED]");
        assert_eq!(header("authorization", "Bearer"), "[REDACTED]");
        // A "scheme" too long to be one is more likely a token.
        assert_eq!(
            header("authorization", &format!("{} x", "a".repeat(40))),
            "[REDACTED]"
        );
        assert_eq!(header("authorization", "=== x"), "[REDACTED]");
        assert_eq!(header("authorization", ""), "");
    }

    #[test]
    fn cookies_keep_their_names() {
        assert_eq!(header("cookie", "a=1; b=2"), "a=[REDACTED]; b=[REDACTED]");
        assert_eq!(
            header("Cookie", "a=1;b=xyz;;  c=\"q\" ;"),
            "a=[REDACTED]; b=[REDACTED]; c=[REDACTED]"
        );
        // Empty value stays empty; a nameless cookie is all value.
        assert_eq!(header("cookie", "a=; lonely"), "a=; [REDACTED]");
        // Only the first `=` splits: base64 padding stays inside the value.
        assert_eq!(header("cookie", "s=YWJj=="), "s=[REDACTED]");
    }

    #[test]
    fn set_cookie_keeps_attributes() {
        assert_eq!(
            header(
                "set-cookie",
                "sid=abc123; Path=/; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Secure; HttpOnly; SameSite=Lax"
            ),
            "sid=[REDACTED]; Path=/; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Secure; HttpOnly; SameSite=Lax"
        );
        assert_eq!(
            header("Set-Cookie", "sid=x; Domain=example.com; X-Extra=leak"),
            "sid=[REDACTED]; Domain=example.com; X-Extra=[REDACTED]"
        );
        assert_eq!(header("set-cookie", "sid=; Max-Age=0"), "sid=; Max-Age=0");
        assert_eq!(header("set-cookie", "bare"), "[REDACTED]");
    }

    #[test]
    fn other_credentials_are_masked_whole() {
        assert_eq!(header("x-api-key", "k-123"), "[REDACTED]");
        assert_eq!(header("X-Session-Token", "abc"), "[REDACTED]");
        assert_eq!(header("x-api-key", ""), "");
    }

    #[test]
    fn ordinary_headers_are_borrowed_unchanged() {
        let v = b"curl/8.5.0";
        assert!(matches!(mask_header_value(b"user-agent", v), Cow::Borrowed(x) if x == v));
        assert!(matches!(
            mask_header_value(b":path", b"/a?b=c"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn url_headers_have_their_query_redacted() {
        assert_eq!(
            header(":path", "/cb?code=abc&state=xyz"),
            "/cb?code=[REDACTED]&state=xyz"
        );
        assert_eq!(
            header(
                "Location",
                "https://app.example/cb#access_token=t0k&token_type=bearer"
            ),
            "https://app.example/cb#access_token=[REDACTED]&token_type=bearer"
        );
        assert_eq!(
            header("referer", "https://a/?q=1&sig=zz"),
            "https://a/?q=1&sig=[REDACTED]"
        );
    }

    #[test]
    fn query_parameters() {
        assert_eq!(
            query("/users?id=7&token=abc"),
            "/users?id=7&token=[REDACTED]"
        );
        assert_eq!(
            query("/x?ACCESS_TOKEN=a&Api_Key=b&page=2"),
            "/x?ACCESS_TOKEN=[REDACTED]&Api_Key=[REDACTED]&page=2"
        );
        // S3 presigned URL.
        assert_eq!(
            query(
                "/obj?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIA%2F2024&X-Amz-Signature=ab12&X-Amz-Expires=60"
            ),
            "/obj?X-Amz-Algorithm=AWS4&X-Amz-Credential=[REDACTED]&X-Amz-Signature=[REDACTED]&X-Amz-Expires=60"
        );
        // Names containing a credential word.
        assert_eq!(
            query("/?auth_token=1&user%5Bpassword%5D=2"),
            "/?auth_token=[REDACTED]&user%5Bpassword%5D=[REDACTED]"
        );
        // `key` only as a whole name.
        assert_eq!(
            query("/?key=1&keyword=rust&monkey=2"),
            "/?key=[REDACTED]&keyword=rust&monkey=2"
        );
    }

    #[test]
    fn query_tricky_inputs() {
        // Nothing to do: borrowed.
        for t in [
            "/",
            "",
            "/plain/path",
            "/?",
            "/?a=1&b=2",
            "/?token",
            "/?token=",
            "/?=x",
            "?&&;",
        ] {
            assert!(
                matches!(redact_query(t.as_bytes()), Cow::Borrowed(_)),
                "{t}"
            );
        }
        // No `=`, empty values, repeated parameters.
        assert_eq!(
            query("/?token&token=&token=a&token=b"),
            "/?token&token=&token=[REDACTED]&token=[REDACTED]"
        );
        // Only the first `=` separates; the whole value is masked.
        assert_eq!(query("/?code=a=b=c&x=1"), "/?code=[REDACTED]&x=1");
        // `;` separates too; `?` inside the query is just a character.
        assert_eq!(query("/?a=1;sid=2?3&b"), "/?a=1;sid=[REDACTED]&b");
        // Fragments are redacted like the query.
        assert_eq!(query("/p?q=1#frag"), "/p?q=1#frag");
        assert_eq!(
            query("/p?password=x#id_token=y&s=1"),
            "/p?password=[REDACTED]#id_token=[REDACTED]&s=1"
        );
        assert_eq!(query("/p#token=x"), "/p#token=[REDACTED]");
        // Percent-encoded names are decoded for matching, values kept encoded.
        assert_eq!(
            query("/?%74oken=a%20b&%zz=1&pass%77ord=x"),
            "/?%74oken=[REDACTED]&%zz=1&pass%77ord=[REDACTED]"
        );
        assert_eq!(
            query("/?client+secret=1&Client_Secret=2"),
            "/?client+secret=[REDACTED]&Client_Secret=[REDACTED]"
        );
        // The path before the `?` is never touched, even if it looks like a parameter.
        assert_eq!(query("/token=abc/x?y=1"), "/token=abc/x?y=1");
        // A trailing `%` and other malformed escapes.
        assert_eq!(
            query("/?sig%=1&sig%4=2&sig=3%"),
            "/?sig%=1&sig%4=2&sig=[REDACTED]"
        );
        // Non-UTF-8 bytes survive.
        assert_eq!(
            redact_query(b"/?\xff=1&pwd=\xfe").into_owned(),
            b"/?\xff=1&pwd=[REDACTED]".to_vec()
        );
    }

    #[test]
    fn form_bodies() {
        assert_eq!(
            s(redact_form(b"user=bob&password=hunter2&remember=1")),
            "user=bob&password=[REDACTED]&remember=1"
        );
        assert_eq!(
            s(redact_form(
                b"grant_type=refresh_token&refresh_token=r1&client_id=c"
            )),
            "grant_type=refresh_token&refresh_token=[REDACTED]&client_id=c"
        );
        assert!(matches!(redact_form(b"a=1"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_bodies() {
        assert_eq!(
            json(
                r#"{"access_token":"eyJ.x.y","token_type":"Bearer","expires_in":3600,"refresh_token":"r"}"#
            ),
            r#"{"access_token":"[REDACTED]","token_type":"Bearer","expires_in":3600,"refresh_token":"[REDACTED]"}"#
        );
        // Nested objects, whitespace, numbers, non-string values.
        assert_eq!(
            json(
                "{\"user\": {\"name\": \"bob\", \"Password\" :\n \"p\\\"w\"}, \"pin\": 1, \"sessionId\": 12345, \"apiKey\": null, \"secret\": {\"a\": 1}}"
            ),
            "{\"user\": {\"name\": \"bob\", \"Password\" :\n \"[REDACTED]\"}, \"pin\": 1, \"sessionId\": \"[REDACTED]\", \"apiKey\": null, \"secret\": {\"a\": 1}}"
        );
        // A credential word inside a string value is not a key.
        assert!(matches!(
            redact_json(br#"{"note":"token: abc","x":"\"password\":"}"#),
            Cow::Borrowed(_)
        ));
        // Arrays of objects; escaped key.
        assert_eq!(
            json(r#"[{"\u0074oken":"a"},{"token":""}]"#),
            r#"[{"\u0074oken":"[REDACTED]"},{"token":""}]"#
        );
        // Cut short inside the value: masked to the end.
        assert_eq!(
            json(r#"{"id_token":"eyJhbGciOiJSUzI1"#),
            r#"{"id_token":"[REDACTED]"#
        );
        assert_eq!(json(r#"{"id_token":"#), r#"{"id_token":"#);
        // Not JSON at all: unchanged, no panic.
        for junk in [
            &b"\"\""[..],
            b"\":",
            b"\"token\"",
            b"\"token\":",
            b"\\\"",
            b"\xff\"token\":\"\xfe",
        ] {
            let _ = redact_json(junk);
        }
        assert_eq!(
            redact_json(b"\xff\"token\":\"\xfe\"").into_owned(),
            b"\xff\"token\":\"[REDACTED]\"".to_vec()
        );
    }

    #[test]
    fn bodies_by_content_type() {
        let form = b"password=x";
        assert_eq!(
            s(redact_body(
                Some(b"application/x-www-form-urlencoded; charset=UTF-8"),
                form
            )),
            "password=[REDACTED]"
        );
        let js = br#"{"password":"x"}"#;
        for ct in [
            &b"application/json"[..],
            b"Application/JSON;charset=utf-8",
            b"application/vnd.api+json",
            b" text/json ",
        ] {
            assert_eq!(
                s(redact_body(Some(ct), js)),
                r#"{"password":"[REDACTED]"}"#,
                "{ct:?}"
            );
        }
        for ct in [None, Some(&b"text/plain"[..]), Some(b"json"), Some(b"")] {
            assert!(matches!(redact_body(ct, js), Cow::Borrowed(_)));
        }
    }

    #[test]
    fn mime_type_strips_parameters() {
        assert_eq!(mime_type(b"text/html; charset=utf-8"), b"text/html");
        assert_eq!(mime_type(b"  application/json  "), b"application/json");
        assert_eq!(mime_type(b""), b"");
    }

    #[test]
    fn never_panics_on_short_or_odd_inputs() {
        let alphabet: &[u8] = b"=&;#?%\"\\:{}[] a0tokenTOKEN\xff";
        let mut input = Vec::new();
        // Every string of length <= 3 over the alphabet, and some longer mixes.
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    for len in 1..=3 {
                        input.clear();
                        input.extend_from_slice(&[*a, *b, *c][..len]);
                        let _ = redact_query(&input);
                        let _ = redact_form(&input);
                        let _ = redact_json(&input);
                        let _ = mask_header_value(b"cookie", &input);
                        let _ = mask_header_value(b"set-cookie", &input);
                        let _ = mask_header_value(b"authorization", &input);
                    }
                }
            }
        }
        let _ = redact_json(b"{\"token\":\"\\");
        let _ = redact_json(b"{\"token\":-");
        let _ = redact_query(b"?token=%");
    }
    fn in_place(name: &str, value: &str) -> String {
        let mut v = value.as_bytes().to_vec();
        mask_header_value_in_place(name.as_bytes(), &mut v);
        assert_eq!(v.len(), value.len(), "same length");
        String::from_utf8(v).expect("ascii")
    }

    #[test]
    fn header_values_masked_in_place_keep_their_length() {
        assert_eq!(in_place("Authorization", "Bearer s3cr3t"), "Bearer ******");
        assert_eq!(
            in_place("authorization", " dXNlcjpwYXNz "),
            " ************ "
        );
        assert_eq!(
            in_place("Cookie", "sid=xyz; theme=dark"),
            "sid=***; theme=****"
        );
        assert_eq!(
            in_place("Set-Cookie", "sid=n3w; Path=/; HttpOnly; X=y"),
            "sid=***; Path=/; HttpOnly; X=*"
        );
        assert_eq!(in_place("X-Api-Key", "k-123"), "*****");
        assert_eq!(
            in_place("Location", "/cb?code=abc&state=1#access_token=t"),
            "/cb?code=***&state=1#access_token=*"
        );
        assert_eq!(in_place("Content-Type", "text/plain"), "text/plain");
        let mut t = b"/u?id=7&access_token=abc123&%74oken=x".to_vec();
        assert!(redact_query_in_place(&mut t));
        assert_eq!(t, b"/u?id=7&access_token=******&%74oken=*");
        let mut t = b"/plain/path".to_vec();
        assert!(!redact_query_in_place(&mut t));
    }

    const H1_REQ: &[u8] = b"GET /users?id=7&access_token=abc123 HTTP/1.1\r\nHost: api.example\r\n\
        Authorization: Bearer s3cr3t\r\nCookie: sid=xyz; theme=dark\r\nAccept: */*\r\n\r\n\
        POST /login HTTP/1.1\r\nX-Upstream-Token: tok-9\r\nContent-Length: 2\r\n\r\nok";
    const H1_REQ_MASKED: &[u8] =
        b"GET /users?id=7&access_token=****** HTTP/1.1\r\nHost: api.example\r\n\
        Authorization: Bearer ******\r\nCookie: sid=***; theme=****\r\nAccept: */*\r\n\r\n\
        POST /login HTTP/1.1\r\nX-Upstream-Token: *****\r\nContent-Length: 2\r\n\r\nok";
    const H1_RESP: &[u8] = b"HTTP/1.1 302 Found\r\nSet-Cookie: sid=n3w; Path=/; HttpOnly\r\n\
        Location: https://app.example/cb?code=c0de&state=s1\r\nContent-Length: 0\r\n\r\n";
    const H1_RESP_MASKED: &[u8] =
        b"HTTP/1.1 302 Found\r\nSet-Cookie: sid=***; Path=/; HttpOnly\r\n\
        Location: https://app.example/cb?code=****&state=s1\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn http1_payloads_are_masked_in_place() {
        for (input, want) in [(H1_REQ, H1_REQ_MASKED), (H1_RESP, H1_RESP_MASKED)] {
            let mut p = input.to_vec();
            assert!(Http1PayloadMasker::default().mask(&mut p));
            assert_eq!(String::from_utf8_lossy(&p), String::from_utf8_lossy(want));
        }
        // Nothing to mask: untouched.
        let mut p = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello: world".to_vec();
        assert!(!Http1PayloadMasker::default().mask(&mut p));
    }

    #[test]
    fn http1_secrets_cut_by_payload_boundaries_stay_masked() {
        // Wherever the text is cut into two or three payloads, every byte a
        // whole-payload pass masks is masked (a cut value or query may be
        // masked more widely, never less).
        for (input, want) in [(H1_REQ, H1_REQ_MASKED), (H1_RESP, H1_RESP_MASKED)] {
            for a in 0..=input.len() {
                for b in (a..=input.len()).step_by(7) {
                    let mut m = Http1PayloadMasker::default();
                    let mut out = Vec::new();
                    for part in [&input[..a], &input[a..b], &input[b..]] {
                        let mut p = part.to_vec();
                        m.mask(&mut p);
                        out.extend_from_slice(&p);
                    }
                    assert_eq!(out.len(), input.len());
                    for (i, (&o, &w)) in out.iter().zip(want).enumerate() {
                        assert!(
                            w != MASK_BYTE || o == MASK_BYTE || input[i] == MASK_BYTE,
                            "cut at {a},{b}: byte {i} not masked: {}",
                            String::from_utf8_lossy(&out)
                        );
                    }
                }
            }
        }
    }

    /// An HTTP/2 frame.
    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn http2_header_blocks_are_blanked_and_the_rest_kept() {
        // A literal "authorization: Bearer s3cr3t" without indexing, as HPACK sends it.
        let mut block = vec![0x00, 13];
        block.extend_from_slice(b"authorization");
        block.push(13);
        block.extend_from_slice(b"Bearer s3cr3t");
        let (a, b) = block.split_at(10);
        let mut input = weft_proto::http2::PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]));
        input.extend(frame(0x1, 0x1, 1, a)); // HEADERS without END_HEADERS
        input.extend(frame(0x9, 0x4, 1, b)); // CONTINUATION
        input.extend(frame(0x0, 0x1, 1, b"form=data"));
        let mut want = input.clone();
        let mut whole = input.clone();
        assert!(Http2PayloadMasker::default().mask(&mut whole));
        // Exactly the two header-block fragments are blanked.
        let first = weft_proto::http2::PREFACE.len() + 15 + 9;
        want[first..first + a.len()].fill(MASK_BYTE);
        let second = first + a.len() + 9;
        want[second..second + b.len()].fill(MASK_BYTE);
        assert_eq!(whole, want);
        assert!(!whole.windows(6).any(|w| w == b"s3cr3t"));
        // Cut anywhere: the same bytes.
        for cut in 0..=input.len() {
            let mut m = Http2PayloadMasker::default();
            let (mut x, mut y) = (input[..cut].to_vec(), input[cut..].to_vec());
            m.mask(&mut x);
            m.mask(&mut y);
            x.extend(y);
            assert_eq!(x, want, "cut at {cut}");
        }
    }

    #[test]
    fn http2_without_frame_boundaries_blanks_whole_payloads() {
        let mut m = Http2PayloadMasker::default();
        // Joined mid-frame: nothing to go by.
        let mut p = b"\x82\x86authorization\x0dBearer s3cr3t".to_vec();
        assert!(m.mask(&mut p));
        assert!(p.iter().all(|&b| b == MASK_BYTE));
        // A payload that starts with a plausible frame header: followed again.
        let mut p = frame(0x0, 0x1, 3, b"visible");
        m.mask(&mut p);
        assert!(p.ends_with(b"visible"));
        // Bytes lost: blank until a payload starts on a frame again.
        m.lost();
        let mut p = b"ible tail of a frame".to_vec();
        m.mask(&mut p);
        assert!(p.iter().all(|&b| b == MASK_BYTE));
    }

    #[test]
    fn payload_maskers_never_panic_on_odd_inputs() {
        let alphabet: &[u8] = b"GET /?=&:\r\n \x00\x01\x04\x09tokenCookie";
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    let mut h1 = Http1PayloadMasker::default();
                    let mut h2 = Http2PayloadMasker::default();
                    for p in [[*a, *b, *c], [*c, *a, *b]] {
                        let mut x = p.to_vec();
                        h1.mask(&mut x);
                        assert_eq!(x.len(), 3);
                        let mut x = p.to_vec();
                        h2.mask(&mut x);
                        assert_eq!(x.len(), 3);
                    }
                }
            }
        }
    }
    #[test]
    fn payload_maskers_keep_length_on_random_payload_streams() {
        // A small xorshift generator: reproducible, no dependency.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let pieces: &[&[u8]] = &[
            b"GET /?token=a&b=c HTTP/1.1\r\n",
            b"Authorization: Basic x\r\n",
            b"Cookie: a=b; c\r\n",
            b"Location: /x#id_token=q\r\n",
            b"\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"\x00\x00\x05\x01\x04\x00\x00\x00\x01",
            b"\x00\x00\x03\x00\x01\x00\x00\x00\x03",
            b"\xff\xfe:\n ",
        ];
        for _ in 0..2_000 {
            let mut stream = Vec::new();
            for _ in 0..(next() % 12) {
                let p = pieces[(next() % pieces.len() as u64) as usize];
                stream.extend_from_slice(p);
                if next() % 4 == 0 {
                    stream.push((next() & 0xff) as u8);
                }
            }
            let mut h1 = Http1PayloadMasker::default();
            let mut h2 = Http2PayloadMasker::default();
            let mut rest = &stream[..];
            while !rest.is_empty() {
                let n = 1 + (next() % rest.len() as u64) as usize;
                let (a, b) = rest.split_at(n);
                for masker in 0..2 {
                    let mut p = a.to_vec();
                    if masker == 0 {
                        h1.mask(&mut p);
                    } else {
                        h2.mask(&mut p);
                    }
                    assert_eq!(p.len(), a.len());
                    // Only ever overwritten with the mask byte.
                    assert!(p.iter().zip(a).all(|(o, i)| o == i || *o == MASK_BYTE));
                }
                if next() % 8 == 0 {
                    h1.reset();
                    h2.lost();
                }
                rest = b;
            }
        }
    }
}
