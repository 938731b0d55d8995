//! [`Headers`]: an ordered list of header fields stored in one byte buffer.

use std::fmt;
use std::ops::Range;

/// An ordered list of header fields (name/value byte strings).
///
/// Names, values and the index that finds them live in one buffer: the
/// field bytes first, then one fixed-size record per field, so a list of
/// any length costs one allocation (a decoder sizes it once). Order and
/// duplicates are preserved. Decoders put pseudo-header fields (`:method`,
/// `:path`, `:status`, ...) first and lower-case every name; see
/// [`Headers::regular`] to skip the pseudo-header fields.
///
/// The buffer is limited to 2 GiB; decoders enforce far smaller limits, and
/// [`Headers::push`] ignores a field that would not fit.
#[derive(Clone, Default)]
pub struct Headers {
    /// Field bytes in `..index`, then a [`REC`]-byte record per field.
    buf: Vec<u8>,
    index: usize,
}

/// Bytes of one field's record in the index.
const REC: usize = 16;
/// Most bytes of names and values (offsets keep a flag in their top bit).
const MAX_BYTES: usize = i32::MAX as usize;
/// The flag bit of `Span::end` that marks a sensitive field.
const SENSITIVE: u32 = 1 << 31;

/// Where one field's name and value are in the buffer. The value need not
/// follow the name: an HTTP/1 header section is copied whole and its fields
/// point into the copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    name_end: u32,
    value_start: u32,
    end: u32,
    sensitive: bool,
}

impl Span {
    /// The span of name `name` and value `value` (byte ranges), if they fit
    /// the limit.
    #[inline]
    fn new(name: Range<usize>, value: Range<usize>, sensitive: bool) -> Option<Span> {
        if name.start > name.end || value.start > value.end || name.end.max(value.end) > MAX_BYTES {
            return None;
        }
        Some(Span {
            start: name.start as u32,
            name_end: name.end as u32,
            value_start: value.start as u32,
            end: value.end as u32,
            sensitive,
        })
    }

    #[inline]
    fn encode(self) -> [u8; REC] {
        let mut r = [0u8; REC];
        let end = self.end | if self.sensitive { SENSITIVE } else { 0 };
        for (i, v) in [self.start, self.name_end, self.value_start, end]
            .into_iter()
            .enumerate()
        {
            r[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        r
    }

    #[inline]
    fn decode(r: &[u8; REC]) -> Span {
        let [
            a0,
            a1,
            a2,
            a3,
            b0,
            b1,
            b2,
            b3,
            c0,
            c1,
            c2,
            c3,
            d0,
            d1,
            d2,
            d3,
        ] = *r;
        let end = u32::from_le_bytes([d0, d1, d2, d3]);
        Span {
            start: u32::from_le_bytes([a0, a1, a2, a3]),
            name_end: u32::from_le_bytes([b0, b1, b2, b3]),
            value_start: u32::from_le_bytes([c0, c1, c2, c3]),
            end: end & !SENSITIVE,
            sensitive: end & SENSITIVE != 0,
        }
    }

    fn name(&self) -> Range<usize> {
        self.start as usize..self.name_end as usize
    }

    fn value(&self) -> Range<usize> {
        self.value_start as usize..self.end as usize
    }
}

/// One header field, borrowed from a [`Headers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    /// The field name (lower-case when produced by a decoder).
    pub name: &'a [u8],
    /// The field value, as received.
    pub value: &'a [u8],
    /// The sender marked this field never-to-be-indexed (HPACK §6.2.3):
    /// typically credentials or cookies. Sinks may want to redact it.
    pub sensitive: bool,
}

impl<'a> Field<'a> {
    /// Whether this is a pseudo-header field (name starts with `:`).
    pub fn is_pseudo(&self) -> bool {
        self.name.first() == Some(&b':')
    }
}

/// Two lists are equal when they hold the same fields in the same order,
/// however their bytes are laid out.
impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl Headers {
    /// An empty list (no allocation).
    pub fn new() -> Self {
        Headers::default()
    }

    /// An empty list with room for `fields` fields of `bytes` bytes in total.
    pub fn with_capacity(fields: usize, bytes: usize) -> Self {
        Headers {
            buf: crate::recycle::buffer(bytes.saturating_add(fields.saturating_mul(REC))),
            index: 0,
        }
    }

    /// A copy of the list, in a spare buffer when this thread has one
    /// (see [`crate::recycle`]).
    pub(crate) fn clone_pooled(&self) -> Self {
        let mut buf = crate::recycle::buffer(self.buf.len());
        buf.extend_from_slice(&self.buf);
        Headers {
            buf,
            index: self.index,
        }
    }

    /// The list's buffer, emptied (for [`crate::recycle`]).
    pub(crate) fn into_buffer(self) -> Vec<u8> {
        let mut buf = self.buf;
        buf.clear();
        buf
    }

    /// The index records, one per field.
    fn records(&self) -> &[[u8; REC]] {
        self.buf.get(self.index..).unwrap_or_default().as_chunks().0
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        (self.buf.len() - self.index) / REC
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.buf.len() == self.index
    }

    /// Removes every field, keeping the allocation.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.index = 0;
    }

    /// Total bytes of names and values (for HTTP/1, of the header section
    /// they were taken from).
    pub fn bytes_len(&self) -> usize {
        self.index
    }

    /// Appends a field as given.
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        self.push_field(name, value, false);
    }

    /// Appends a field from one name and one value slice. Ignored if the
    /// buffer would exceed 2 GiB.
    pub(crate) fn push_field(&mut self, name: &[u8], value: &[u8], sensitive: bool) {
        self.insert_bytes([name, value], name.len(), sensitive);
    }

    /// Inserts `parts` (the name is the first `name_len` bytes) before the
    /// index and appends their record.
    fn insert_bytes(&mut self, parts: [&[u8]; 2], name_len: usize, sensitive: bool) {
        let start = self.index;
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let Some(span) = Span::new(
            start..start + name_len,
            start + name_len..start + total,
            sensitive,
        ) else {
            return;
        };
        self.buf.reserve(total + REC);
        if self.is_empty() {
            self.buf.truncate(start);
            for p in parts {
                self.buf.extend_from_slice(p);
            }
        } else {
            // Fields were indexed already: their records move up.
            self.buf.splice(
                start..start,
                parts.into_iter().flat_map(|p| p.iter().copied()),
            );
        }
        self.index = start + total;
        self.buf.extend_from_slice(&span.encode());
    }

    /// Appends a field with its name lower-cased (ASCII).
    pub fn push_lowercase(&mut self, name: &[u8], value: &[u8]) {
        let first = self.len();
        self.push(name, value);
        if self.len() > first
            && let Some(span) = self.records().last().map(Span::decode)
        {
            lowercase(&mut self.buf[span.name()]);
        }
    }

    /// A list whose bytes are `prefix` then `raw` (an HTTP/1 start line and
    /// header section, copied once), with room for the records of `fields`
    /// fields; fields are then added by [`push_span`](Self::push_span) as
    /// ranges of those bytes instead of being copied one by one.
    pub(crate) fn from_raw(prefix: &[u8], raw: &[u8], fields: usize) -> Self {
        let bytes = prefix.len() + raw.len();
        let mut buf = crate::recycle::buffer(bytes + fields * REC);
        buf.extend_from_slice(prefix);
        buf.extend_from_slice(raw);
        Headers { buf, index: bytes }
    }

    /// The list's field bytes (for a list made by
    /// [`from_raw`](Self::from_raw): the prefix, then the raw bytes).
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        let index = self.index;
        self.buf.get_mut(..index).unwrap_or_default()
    }

    /// Keeps the first `end` field bytes of a list with no fields yet (a
    /// list with fields is left as it is), and little more capacity after
    /// them than the records of `fields` fields need: a list copied from
    /// more bytes than it keeps does not hold on to the rest.
    pub(crate) fn truncate_bytes(&mut self, end: usize, fields: usize) {
        if self.is_empty() && end < self.index {
            let cut = self.index - end;
            self.buf.truncate(end);
            self.index = end;
            if cut > 1024 {
                self.shrink(fields);
            }
        }
    }

    /// Gives back capacity past room for `fields` more records.
    #[cold]
    #[inline(never)]
    fn shrink(&mut self, fields: usize) {
        let keep = self.buf.len().saturating_add(fields.saturating_mul(REC));
        self.buf.shrink_to(keep);
    }

    /// Appends a field whose name and value are among the list's bytes
    /// (`name`, `value`: ranges of them), lower-casing the name in place
    /// (ASCII). Returns false (nothing added) when a range is not inside them.
    #[inline]
    pub(crate) fn push_span(&mut self, name: Range<usize>, value: Range<usize>) -> bool {
        if name.end > self.index || value.end > self.index {
            return false;
        }
        let Some(span) = Span::new(name, value, false) else {
            return false;
        };
        lowercase_in(&mut self.buf, span.name());
        self.buf.extend_from_slice(&span.encode());
        true
    }

    /// Appends the fields whose `[name start, name end, value start, value
    /// end]` are `spans` (offsets among the list's bytes, as for
    /// [`push_span`](Self::push_span), but names already lower-case): one
    /// check and one reservation for all of them, no bookkeeping per field.
    /// Returns false, adding no field, when a span is reversed or not inside
    /// the bytes.
    #[inline]
    pub(crate) fn push_spans(&mut self, spans: &[[u32; 4]]) -> bool {
        let bytes = self.index;
        if bytes > MAX_BYTES {
            return false;
        }
        let old = self.buf.len();
        self.buf.reserve(spans.len() * REC);
        for &[start, name_end, value_start, end] in spans {
            if start > name_end
                || value_start > end
                || name_end as usize > bytes
                || end as usize > bytes
            {
                self.buf.truncate(old);
                return false;
            }
            // `end` < 2^31 (checked above): the sensitive flag stays clear.
            let mut r = [0u8; REC];
            for (d, v) in
                r.as_chunks_mut::<4>()
                    .0
                    .iter_mut()
                    .zip([start, name_end, value_start, end])
            {
                *d = v.to_le_bytes();
            }
            self.buf.extend_from_slice(&r);
        }
        true
    }

    /// The list's storage (field bytes, then one record per field), for
    /// comparing or hashing lists byte for byte: lists with equal storage
    /// hold the same fields, and a value's offset in one is its offset in
    /// the other.
    pub fn storage(&self) -> &[u8] {
        &self.buf
    }

    /// The list's whole buffer (field bytes, then records) and where the
    /// records start: with [`set_raw`](Self::set_raw), a copy of the list.
    pub(crate) fn raw_parts(&self) -> (&[u8], usize) {
        (&self.buf, self.index)
    }

    /// Makes the list the one whose [`raw_parts`](Self::raw_parts) are
    /// `buf` and `index` (from a list, so valid), keeping the allocation.
    pub(crate) fn set_raw(&mut self, buf: &[u8], index: usize) {
        self.buf.clear();
        self.buf.extend_from_slice(buf);
        self.index = index.min(buf.len());
    }

    /// Appends fields written straight into the list's bytes: see
    /// [`Writer`]. `spans` is scratch space for their records.
    pub(crate) fn writer<'a>(&'a mut self, spans: &'a mut Vec<Span>) -> Writer<'a> {
        spans.clear();
        spans.extend(self.records().iter().map(Span::decode));
        self.buf.truncate(self.index);
        Writer { h: self, spans }
    }

    /// The field at `index`.
    pub fn get_index(&self, index: usize) -> Option<Field<'_>> {
        self.records().get(index).map(|r| self.field(r))
    }

    fn field(&self, r: &[u8; REC]) -> Field<'_> {
        let s = Span::decode(r);
        Field {
            name: &self.buf[s.name()],
            value: &self.buf[s.value()],
            sensitive: s.sensitive,
        }
    }

    /// [`get`](Self::get) for a name lists usually start with (a
    /// pseudo-header field such as `:status`): the first field when it has
    /// exactly that name (then also what `get` finds first), else `get`.
    #[inline]
    pub(crate) fn get_leading(&self, name: &[u8]) -> Option<&[u8]> {
        if let Some(r) = self.records().first() {
            let s = Span::decode(r);
            if self.buf.get(s.name()) == Some(name) {
                return self.buf.get(s.value());
            }
        }
        self.get(name)
    }

    /// The value of the first field named `name` (ASCII case-insensitive).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        // Sinks look up a dozen names per event: compare lengths before
        // building the field, so most fields cost one subtraction.
        self.records()
            .iter()
            .map(Span::decode)
            .find(|s| {
                (s.name_end.wrapping_sub(s.start)) as usize == name.len()
                    && self
                        .buf
                        .get(s.name())
                        .is_some_and(|have| same_name(have, name))
            })
            .map(|s| &self.buf[s.value()])
    }

    /// The values of every field named `name` (ASCII case-insensitive), in order.
    pub fn get_all<'s>(&'s self, name: &[u8]) -> impl Iterator<Item = &'s [u8]> {
        self.iter()
            .filter(move |f| f.name.eq_ignore_ascii_case(name))
            .map(|f| f.value)
    }

    /// Every field, in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Field<'_>> + ExactSizeIterator + '_ {
        self.records().iter().map(|r| self.field(r))
    }

    /// Every field whose name length `keep` accepts, in order: a field
    /// turned down costs a look at its name's offsets, nothing more.
    pub fn with_name_len(&self, keep: impl Fn(usize) -> bool) -> impl Iterator<Item = Field<'_>> {
        self.records()
            .iter()
            .filter(move |r| {
                let [a0, a1, a2, a3, b0, b1, b2, b3, ..] = **r;
                let start = u32::from_le_bytes([a0, a1, a2, a3]);
                let name_end = u32::from_le_bytes([b0, b1, b2, b3]);
                keep(name_end.wrapping_sub(start) as usize)
            })
            .map(|r| self.field(r))
    }

    /// Every field that is not a pseudo-header field, in order.
    pub fn regular(&self) -> impl Iterator<Item = Field<'_>> + '_ {
        self.iter().filter(|f| !f.is_pseudo())
    }

    /// Every field as owned `(name, value)` strings (lossy UTF-8), for tests
    /// and debugging.
    pub fn to_string_pairs(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|f| {
                (
                    String::from_utf8_lossy(f.name).into_owned(),
                    String::from_utf8_lossy(f.value).into_owned(),
                )
            })
            .collect()
    }
}

/// Adds fields to a [`Headers`] by writing their bytes straight into its
/// buffer (a decoder's output, no intermediate copy); the records are kept
/// aside and go after the bytes when the writer is dropped.
pub(crate) struct Writer<'a> {
    h: &'a mut Headers,
    spans: &'a mut Vec<Span>,
}

impl Writer<'_> {
    /// The field bytes written so far; a decoder appends a field's name and
    /// value, then calls [`push_written`](Self::push_written), or truncates
    /// back to where it began.
    pub(crate) fn buf_mut(&mut self) -> &mut Vec<u8> {
        &mut self.h.buf
    }

    /// Appends the field whose name is `bytes[start..name_end]` and whose
    /// value is the rest of the bytes (just written). Ignored (and the bytes
    /// removed) if the buffer exceeds 2 GiB.
    pub(crate) fn push_written(&mut self, start: usize, name_end: usize, sensitive: bool) {
        let end = self.h.buf.len();
        match Span::new(start..name_end, name_end..end, sensitive) {
            Some(span) if name_end <= end => self.spans.push(span),
            _ => self.h.buf.truncate(start),
        }
    }

    /// Appends a field as given.
    pub(crate) fn push_field(&mut self, name: &[u8], value: &[u8], sensitive: bool) {
        self.push_parts([name, &[]], [value, &[]], sensitive);
    }

    /// Appends a field whose name and value may each come in two pieces.
    pub(crate) fn push_parts(&mut self, name: [&[u8]; 2], value: [&[u8]; 2], sensitive: bool) {
        let buf = &mut self.h.buf;
        let start = buf.len();
        for p in name {
            buf.extend_from_slice(p);
        }
        let name_end = buf.len();
        for p in value {
            buf.extend_from_slice(p);
        }
        self.push_written(start, name_end, sensitive);
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        let h = &mut *self.h;
        h.index = h.buf.len();
        h.buf.reserve_exact(self.spans.len() * REC);
        for s in self.spans.iter() {
            h.buf.extend_from_slice(&s.encode());
        }
        self.spans.clear();
    }
}

/// `a` and `b` (of the same length) are equal, ASCII case-insensitively.
/// Decoders lower-case names and callers ask in lower case, so names that
/// are equal are nearly always equal byte for byte, and names that differ
/// nearly always differ in their first or last eight bytes even with the
/// ASCII case bit set: names up to sixteen bytes (most) are decided by two
/// word compares, without a call.
#[inline]
fn same_name(a: &[u8], b: &[u8]) -> bool {
    /// The `N` bytes of `x` at `at` as a little-endian number (0 when out of range).
    #[inline]
    fn word<const N: usize>(x: &[u8], at: usize) -> u64 {
        let mut w = [0u8; 8];
        if let Some(src) = x.get(at..at + N) {
            w[..N].copy_from_slice(src);
        }
        u64::from_le_bytes(w)
    }
    /// Setting bit 5 of every byte lower-cases ASCII letters and changes
    /// no two bytes that are equal ignoring ASCII case into different ones.
    const CASE: u64 = 0x2020_2020_2020_2020;
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let (x, y) = match n {
        8..=16 => (
            [word::<8>(a, 0), word::<8>(a, n - 8)],
            [word::<8>(b, 0), word::<8>(b, n - 8)],
        ),
        4..=7 => (
            [word::<4>(a, 0), word::<4>(a, n - 4)],
            [word::<4>(b, 0), word::<4>(b, n - 4)],
        ),
        _ => return a == b || a.eq_ignore_ascii_case(b),
    };
    if x == y {
        return true;
    }
    if (x[0] | CASE) != (y[0] | CASE) || (x[1] | CASE) != (y[1] | CASE) {
        return false;
    }
    a.eq_ignore_ascii_case(b)
}

/// ASCII lower-casing, eight bytes at a time.
fn lowercase(bytes: &mut [u8]) {
    let (words, rest) = bytes.as_chunks_mut::<8>();
    for w in words {
        *w = lower_word(*w, u64::MAX);
    }
    rest.make_ascii_lowercase();
}

/// `w` with its bytes 'A'..='Z' lower-cased, among those `keep` selects
/// (0xff per byte).
#[inline]
fn lower_word(w: [u8; 8], keep: u64) -> [u8; 8] {
    let x = u64::from_le_bytes(w);
    // High bit of each byte: set for 'A'..='Z' (ASCII bytes only).
    let low7 = x & 0x7f7f_7f7f_7f7f_7f7f;
    let ge_a = low7.wrapping_add(0x3f3f_3f3f_3f3f_3f3f);
    let gt_z = low7.wrapping_add(0x2525_2525_2525_2525);
    let upper = ge_a & !gt_z & !x & 0x8080_8080_8080_8080 & keep;
    (x | (upper >> 2)).to_le_bytes()
}

/// Lower-cases `buf[r]` (ASCII) with whole-word reads: a short range is
/// read with the bytes after it (left as they are), a longer one ends with
/// a word overlapping the previous (lower-casing is idempotent).
#[inline]
pub(crate) fn lowercase_in(buf: &mut [u8], r: Range<usize>) {
    let len = r.end.saturating_sub(r.start);
    if len <= 8 {
        let keep = if len == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * len)) - 1
        };
        if let Some(w) = buf
            .get_mut(r.start..)
            .and_then(|b| b.first_chunk_mut::<8>())
        {
            *w = lower_word(*w, keep);
            return;
        }
    } else if let Some(name) = buf.get_mut(r.clone()) {
        let (words, _) = name.as_chunks_mut::<8>();
        for w in words {
            *w = lower_word(*w, u64::MAX);
        }
        if let Some(w) = name.last_chunk_mut::<8>() {
            *w = lower_word(*w, u64::MAX);
        }
        return;
    }
    if let Some(b) = buf.get_mut(r) {
        b.make_ascii_lowercase();
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|x| {
                (
                    String::from_utf8_lossy(x.name),
                    String::from_utf8_lossy(x.value),
                )
            }))
            .finish()
    }
}

impl<N: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut h = Headers::new();
        let mut spans = Vec::new();
        let mut w = h.writer(&mut spans);
        for (n, v) in iter {
            w.push_field(n.as_ref(), v.as_ref(), false);
        }
        drop(w);
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word compares of `same_name` agree with the plain comparison
    /// for every length and every kind of difference, case included.
    #[test]
    fn same_name_is_eq_ignore_ascii_case() {
        let base = b"content-security-policy-x";
        let variants: [fn(u8) -> u8; 4] = [
            |c| c,
            |c| c.to_ascii_uppercase(),
            |c| c ^ 0x20, // '@' for '`', '[' for '{'...: not the same name
            |c| c.wrapping_add(1),
        ];
        for n in 0..=base.len() {
            let a = &base[..n];
            for i in 0..n {
                for v in variants {
                    let mut b = a.to_vec();
                    b[i] = v(b[i]);
                    assert_eq!(same_name(a, &b), a.eq_ignore_ascii_case(&b), "{a:?} {b:?}");
                }
            }
            assert!(same_name(a, a));
            assert!(same_name(a, &a.to_ascii_uppercase()));
            assert!(!same_name(a, &base[..n.saturating_sub(1)]) || n == 0);
        }
        assert!(!same_name(b"@bcd", b"`bcd"));
        assert!(same_name(b"x-A-B-C-D-e-f-g-h", b"X-a-b-c-d-E-F-G-H"));
    }

    #[test]
    fn get_leading_is_get() {
        let lists: [&[(&[u8], &[u8])]; 5] = [
            &[],
            &[(b":status", b"200"), (b"server", b"x")],
            &[(b":STATUS", b"101"), (b":status", b"200")],
            &[
                (b"server", b"x"),
                (b":status", b"204"),
                (b":status", b"200"),
            ],
            &[(b":method", b"GET"), (b":method", b"CONNECT")],
        ];
        for fields in lists {
            let mut h = Headers::new();
            for (n, v) in fields {
                h.push(n, v);
            }
            for name in [&b":status"[..], b":Status", b":method", b"server", b"x"] {
                assert_eq!(h.get_leading(name), h.get(name), "{name:?} in {fields:?}");
            }
        }
    }

    #[test]
    fn push_get_iter() {
        let mut h = Headers::new();
        h.push(b":status", b"200");
        h.push_lowercase(b"Content-Type", b"text/html");
        h.push(b"set-cookie", b"a=1");
        h.push(b"set-cookie", b"b=2");
        let mut spans = Vec::new();
        h.writer(&mut spans)
            .push_parts([b"x-", b"split"], [b"va", b"lue"], true);
        assert_eq!(h.len(), 5);
        assert_eq!(h.get(b"content-type"), Some(&b"text/html"[..]));
        assert_eq!(h.get(b"CONTENT-TYPE"), Some(&b"text/html"[..]));
        assert_eq!(h.get_all(b"set-cookie").count(), 2);
        let named: Vec<_> = h.with_name_len(|n| n == 10).map(|f| f.value).collect();
        assert_eq!(named, [&b"a=1"[..], b"b=2"]);
        assert_eq!(h.with_name_len(|_| true).count(), h.len());
        assert_eq!(h.regular().count(), 4);
        let last = h.get_index(4).expect("field");
        assert_eq!(
            (last.name, last.value, last.sensitive),
            (&b"x-split"[..], &b"value"[..], true)
        );
        h.clear();
        assert!(h.is_empty());
    }

    #[test]
    fn lowercase_words() {
        let all: Vec<u8> = (0..=255u8).collect();
        let mut ours = all.clone();
        lowercase(&mut ours);
        assert_eq!(ours, all.to_ascii_lowercase());
        let mut name = b"X-Forwarded-For-ZAZ@[`{".to_vec();
        lowercase(&mut name);
        assert_eq!(name, b"x-forwarded-for-zaz@[`{");
    }

    #[test]
    fn lowercase_ranges() {
        let text = b"Content-Type: Text/HTML; X-ABCDEFGHIJKLMNOPQ: V\r\nA:B\r\n";
        for start in 0..text.len() {
            for end in start..=text.len() {
                let mut ours = text.to_vec();
                lowercase_in(&mut ours, start..end);
                let mut want = text.to_vec();
                want[start..end].make_ascii_lowercase();
                assert_eq!(ours, want, "{start}..{end}");
            }
        }
    }

    #[test]
    fn writer_and_raw() {
        let mut h = Headers::new();
        h.push(b":status", b"200");
        let mut spans = Vec::new();
        let mut w = h.writer(&mut spans);
        w.push_field(b"a", b"1", true);
        let start = w.buf_mut().len();
        w.buf_mut().extend_from_slice(b"bxx");
        w.push_written(start, start + 1, false);
        drop(w);
        h.push(b"c", b"3");
        assert_eq!(
            h.to_string_pairs(),
            [(":status", "200"), ("a", "1"), ("b", "xx"), ("c", "3")]
                .map(|(n, v)| (n.to_string(), v.to_string()))
        );
        assert!(h.get_index(1).is_some_and(|f| f.sensitive));
        let mut r = Headers::from_raw(b":x", b"Host: A\r\n", 2);
        assert!(r.push_span(2..6, 8..9));
        assert!(!r.push_span(2..6, 8..40));
        assert_eq!(r.get(b"host"), Some(&b"A"[..]));
        assert_eq!(r.len(), 1);
        let same: Headers = [("host", "A")].into_iter().collect();
        assert_eq!(r, same);
    }

    /// The bulk push gives the list one push per field gives, and refuses
    /// what `push_span` refuses, adding nothing.
    #[test]
    fn push_spans_like_push_span() {
        let raw = b"host: A\r\nx-long-name-here: vAlue\r\ne:\r\n";
        let good = [
            [0, 4, 6, 7],
            [9, 25, 27, 32],
            [34, 35, 36, 36],
            [9, 10, 0, 3],
        ];
        let mut one = Headers::from_raw(b":x", raw, 4);
        let mut bulk = one.clone();
        for &[a, b, c, d] in &good {
            let sh = |v: u32| v as usize + 2;
            assert!(one.push_span(sh(a)..sh(b), sh(c)..sh(d)));
        }
        let shifted: Vec<[u32; 4]> = good.iter().map(|f| f.map(|v| v + 2)).collect();
        assert!(bulk.push_spans(&shifted));
        assert_eq!(one.storage(), bulk.storage());
        assert_eq!(one, bulk);
        assert!(bulk.push_spans(&[]));
        assert_eq!(bulk.len(), 4);
        let end = raw.len() as u32 + 2;
        for bad in [
            [4, 3, 0, 1],
            [0, 1, 3, 2],
            [0, end + 1, 0, 1],
            [0, 1, 0, end + 1],
        ] {
            let mut h = Headers::from_raw(b":x", raw, 2);
            assert!(!h.push_spans(&[[2, 6, 8, 9], bad]), "{bad:?}");
            assert_eq!(h.len(), 0);
            let r = |a: u32, b: u32| a as usize..b as usize;
            assert!(
                !h.push_span(r(bad[0], bad[1]), r(bad[2], bad[3])),
                "{bad:?}"
            );
        }
        let mut h = Headers::from_raw(b"x", b"abcd", 1);
        h.bytes_mut()[1] = b'A';
        h.truncate_bytes(3, 1);
        assert_eq!(h.storage(), b"xAb");
        assert!(h.push_spans(&[[1, 3, 3, 3]]));
        h.truncate_bytes(1, 0);
        let mut big = Headers::from_raw(b"", &[b'a'; 5000], 2);
        big.truncate_bytes(10, 2);
        assert!(big.storage().len() == 10 && big.buf.capacity() < 2000);
        assert_eq!(h.get_index(0).map(|f| f.name), Some(&b"Ab"[..]));
        let mut h = Headers::from_raw(b"", b"ab", 1);
        assert!(h.push_spans(&[[0, 2, 2, 2]]));
        assert_eq!(h.get_index(0).map(|f| f.name), Some(&b"ab"[..]));
    }
}
