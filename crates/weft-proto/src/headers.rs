//! [`Headers`]: an ordered list of header fields stored in one byte buffer.

use std::fmt;

/// An ordered list of header fields (name/value byte strings).
///
/// All names and values live in one contiguous buffer with a small index
/// beside it, so a list of any length costs two allocations. Order and
/// duplicates are preserved. Decoders put pseudo-header fields (`:method`,
/// `:path`, `:status`, ...) first and lower-case every name; see
/// [`Headers::regular`] to skip the pseudo-header fields.
///
/// The buffer is limited to 4 GiB; decoders enforce far smaller limits, and
/// [`Headers::push`] ignores a field that would not fit.
#[derive(Clone, Default)]
pub struct Headers {
    buf: Vec<u8>,
    fields: Vec<Span>,
}

/// Where one field's name and value are in `buf`. The value need not follow
/// the name: an HTTP/1 header section is copied whole and its fields point
/// into the copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u32,
    name_end: u32,
    value_start: u32,
    end: u32,
    sensitive: bool,
}

/// Two lists are equal when they hold the same fields in the same order,
/// however their bytes are laid out.
impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

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

impl Headers {
    /// An empty list (no allocation).
    pub fn new() -> Self {
        Headers::default()
    }

    /// An empty list with room for `fields` fields of `bytes` bytes in total.
    pub fn with_capacity(fields: usize, bytes: usize) -> Self {
        Headers {
            buf: Vec::with_capacity(bytes),
            fields: Vec::with_capacity(fields),
        }
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Removes every field, keeping the allocations.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.fields.clear();
    }

    /// Total bytes of names and values.
    pub fn bytes_len(&self) -> usize {
        self.buf.len()
    }

    /// Appends a field as given.
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        self.push_field(name, value, false);
    }

    /// Appends a field from one name and one value slice (the common case:
    /// half the work of [`push_parts`](Self::push_parts), which decoders
    /// spend much of their time in). Ignored if the buffer would exceed 4 GiB.
    pub(crate) fn push_field(&mut self, name: &[u8], value: &[u8], sensitive: bool) {
        let start = self.buf.len();
        let (Ok(s), Ok(n), Ok(e)) = (
            u32::try_from(start),
            u32::try_from(start + name.len()),
            u32::try_from(start + name.len() + value.len()),
        ) else {
            return;
        };
        self.buf.extend_from_slice(name);
        self.buf.extend_from_slice(value);
        self.fields.push(Span {
            start: s,
            name_end: n,
            value_start: n,
            end: e,
            sensitive,
        });
    }

    /// Appends a field with its name lower-cased (ASCII).
    pub fn push_lowercase(&mut self, name: &[u8], value: &[u8]) {
        let first = self.buf.len();
        self.push(name, value);
        if self.buf.len() > first
            && let Some(span) = self.fields.last()
        {
            self.buf[span.start as usize..span.name_end as usize].make_ascii_lowercase();
        }
    }

    /// A list whose buffer starts with `prefix` then `raw` (an HTTP/1 start
    /// line and header section, copied once), with room for `fields`
    /// fields; fields are then added by [`push_span`](Self::push_span) as
    /// ranges of that buffer instead of being copied one by one.
    pub(crate) fn from_raw(prefix: &[u8], raw: &[u8], fields: usize) -> Self {
        let mut buf = Vec::with_capacity(prefix.len() + raw.len());
        buf.extend_from_slice(prefix);
        buf.extend_from_slice(raw);
        Headers {
            buf,
            fields: Vec::with_capacity(fields),
        }
    }

    /// Appends a field whose name and value are already in the buffer
    /// (`buf[name]`, `buf[value]`), lower-casing the name in place (ASCII).
    /// Returns false (nothing added) when a range is not inside the buffer.
    pub(crate) fn push_span(
        &mut self,
        name: std::ops::Range<usize>,
        value: std::ops::Range<usize>,
    ) -> bool {
        let (Ok(s), Ok(n), Ok(vs), Ok(e)) = (
            u32::try_from(name.start),
            u32::try_from(name.end),
            u32::try_from(value.start),
            u32::try_from(value.end),
        ) else {
            return false;
        };
        if vs > e || value.end > self.buf.len() {
            return false;
        }
        let Some(name_bytes) = self.buf.get_mut(name) else {
            return false;
        };
        name_bytes.make_ascii_lowercase();
        self.fields.push(Span {
            start: s,
            name_end: n,
            value_start: vs,
            end: e,
            sensitive: false,
        });
        true
    }

    /// The buffer, for decoders that write a field's bytes straight into
    /// it; they then call [`push_written`](Self::push_written), or truncate
    /// the buffer back to where they began.
    pub(crate) fn buf_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Appends the field whose name is `buf[start..name_end]` and whose
    /// value is the rest of the buffer (just written by the caller). Ignored
    /// (and the bytes removed) if the buffer exceeds 4 GiB.
    pub(crate) fn push_written(&mut self, start: usize, name_end: usize, sensitive: bool) {
        let (Ok(s), Ok(n), Ok(e)) = (
            u32::try_from(start),
            u32::try_from(name_end),
            u32::try_from(self.buf.len()),
        ) else {
            self.buf.truncate(start);
            return;
        };
        if s > n || n > e {
            self.buf.truncate(start);
            return;
        }
        self.fields.push(Span {
            start: s,
            name_end: n,
            value_start: n,
            end: e,
            sensitive,
        });
    }

    /// Appends a field whose name and value may each come in two pieces (a
    /// ring buffer). Ignored if the buffer would exceed 4 GiB.
    pub(crate) fn push_parts(&mut self, name: [&[u8]; 2], value: [&[u8]; 2], sensitive: bool) {
        let start = self.buf.len();
        let name_len = name[0].len() + name[1].len();
        let total = name_len + value[0].len() + value[1].len();
        let (Ok(s), Ok(n), Ok(e)) = (
            u32::try_from(start),
            u32::try_from(start + name_len),
            u32::try_from(start + total),
        ) else {
            return;
        };
        self.buf.reserve(total);
        for part in name.into_iter().chain(value) {
            self.buf.extend_from_slice(part);
        }
        self.fields.push(Span {
            start: s,
            name_end: n,
            value_start: n,
            end: e,
            sensitive,
        });
    }

    /// Lower-cases every name in place (ASCII).
    pub(crate) fn lowercase_names(&mut self) {
        for span in &self.fields {
            self.buf[span.start as usize..span.name_end as usize].make_ascii_lowercase();
        }
    }

    /// The field at `index`.
    pub fn get_index(&self, index: usize) -> Option<Field<'_>> {
        self.fields.get(index).map(|s| self.field(s))
    }

    fn field(&self, s: &Span) -> Field<'_> {
        Field {
            name: &self.buf[s.start as usize..s.name_end as usize],
            value: &self.buf[s.value_start as usize..s.end as usize],
            sensitive: s.sensitive,
        }
    }

    /// The value of the first field named `name` (ASCII case-insensitive).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        // Sinks look up a dozen names per event: compare lengths before
        // building the field, so most fields cost one subtraction.
        self.fields
            .iter()
            .find(|s| {
                (s.name_end - s.start) as usize == name.len() && {
                    // Decoders lower-case names and callers ask in lower
                    // case: the exact comparison nearly always decides.
                    let have = &self.buf[s.start as usize..s.name_end as usize];
                    have == name || have.eq_ignore_ascii_case(name)
                }
            })
            .map(|s| &self.buf[s.value_start as usize..s.end as usize])
    }

    /// The values of every field named `name` (ASCII case-insensitive), in order.
    pub fn get_all<'s>(&'s self, name: &[u8]) -> impl Iterator<Item = &'s [u8]> {
        self.iter()
            .filter(move |f| f.name.eq_ignore_ascii_case(name))
            .map(|f| f.value)
    }

    /// Every field, in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Field<'_>> + ExactSizeIterator + '_ {
        self.fields.iter().map(|s| self.field(s))
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
        for (n, v) in iter {
            h.push(n.as_ref(), v.as_ref());
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_get_iter() {
        let mut h = Headers::new();
        h.push(b":status", b"200");
        h.push_lowercase(b"Content-Type", b"text/html");
        h.push(b"set-cookie", b"a=1");
        h.push(b"set-cookie", b"b=2");
        h.push_parts([b"x-", b"split"], [b"va", b"lue"], true);
        assert_eq!(h.len(), 5);
        assert_eq!(h.get(b"content-type"), Some(&b"text/html"[..]));
        assert_eq!(h.get(b"CONTENT-TYPE"), Some(&b"text/html"[..]));
        assert_eq!(h.get_all(b"set-cookie").count(), 2);
        assert_eq!(h.regular().count(), 4);
        let last = h.get_index(4).expect("field");
        assert_eq!(
            (last.name, last.value, last.sensitive),
            (&b"x-split"[..], &b"value"[..], true)
        );
        h.clear();
        assert!(h.is_empty());
    }
}
