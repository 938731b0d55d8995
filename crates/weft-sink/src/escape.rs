//! Making untrusted bytes safe to show on a terminal.
//!
//! Captured plaintext and process names are controlled by whoever is on the
//! other end of the connection (or by the traced process). Written raw, they
//! could move the cursor, rewrite earlier lines, set the window title, or
//! reorder text with bidi controls. Everything that leaves this module is
//! printable text in which every byte of input is accounted for.

use std::fmt::Write as _;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Renders untrusted bytes as one line of printable text.
///
/// At most `max` input bytes are shown (never splitting a UTF-8 character);
/// when some are left over the text ends with `…(+N bytes)`, N being the input
/// bytes not shown. `usize::MAX` shows everything.
///
/// | input                                             | shown as         |
/// |---------------------------------------------------|------------------|
/// | `\`                                               | `\\`             |
/// | LF, CR, TAB                                       | `\n`, `\r`, `\t` |
/// | other C0 controls and DEL (e.g. ESC, NUL)         | `\x1b`, `\x00`   |
/// | a byte that is not part of valid UTF-8            | `\xNN`           |
/// | C1 controls (U+0080..=U+009F, validly encoded)    | `\u{9b}`         |
/// | invisible format characters: bidi controls (U+202A..=U+202E, U+2066..=U+2069, U+061C), zero-width (U+200B..=U+200F, U+2060..=U+2064), BOM (U+FEFF), line/paragraph separators (U+2028, U+2029), tag characters (U+E0000..=U+E007F), the rest of Unicode category Cf, Hangul fillers | `\u{202e}` |
/// | everything else                                   | itself           |
///
/// So `\xNN` always stands for one raw byte and `\u{…}` for one well-formed
/// character; the two never collide.
pub fn escape_untrusted(bytes: &[u8], max: usize) -> String {
    let mut out = String::with_capacity(bytes.len().min(max).saturating_add(16));
    escape_untrusted_into(&mut out, bytes, max);
    out
}

/// [`escape_untrusted`], appending to `out` instead of allocating.
pub fn escape_untrusted_into(out: &mut String, bytes: &[u8], max: usize) {
    escape(out, bytes, max, None);
}

/// Terminal styling wrapped around escapes and the overflow marker, so they
/// stand apart from the captured text. The strings are ours, never input.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Highlight {
    pub on: &'static str,
    pub off: &'static str,
}

/// The escaper behind [`escape_untrusted`], optionally highlighting what it
/// inserted.
pub(crate) fn escape(out: &mut String, bytes: &[u8], max: usize, highlight: Option<Highlight>) {
    let mut w = Writer {
        out,
        highlight,
        highlighted: false,
    };
    // Input bytes accounted for so far (shown, literally or escaped).
    let mut shown = 0usize;
    'chunks: for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        let mut run = 0; // start of the pending run of literal text in `valid`
        for (i, c) in valid.char_indices() {
            let len = c.len_utf8();
            if (shown + i).saturating_add(len) > max {
                w.text(valid.get(run..i).unwrap_or_default());
                shown += i;
                break 'chunks;
            }
            if needs_escape(c) {
                w.text(valid.get(run..i).unwrap_or_default());
                w.escape_char(c);
                run = i + len;
            }
        }
        w.text(valid.get(run..).unwrap_or_default());
        shown += valid.len();
        for &b in chunk.invalid() {
            if shown >= max {
                break 'chunks;
            }
            w.escape_byte(b);
            shown += 1;
        }
    }
    let left = bytes.len().saturating_sub(shown);
    if left > 0 {
        w.marker(left);
    }
    w.finish();
}

struct Writer<'a> {
    out: &'a mut String,
    highlight: Option<Highlight>,
    highlighted: bool,
}

impl Writer<'_> {
    fn text(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        self.plain();
        self.out.push_str(s);
    }

    fn plain(&mut self) {
        if self.highlighted {
            if let Some(h) = self.highlight {
                self.out.push_str(h.off);
            }
            self.highlighted = false;
        }
    }

    fn lit(&mut self) {
        if !self.highlighted
            && let Some(h) = self.highlight
        {
            self.out.push_str(h.on);
            self.highlighted = true;
        }
    }

    fn escape_char(&mut self, c: char) {
        self.lit();
        match c {
            '\\' => self.out.push_str("\\\\"),
            '\n' => self.out.push_str("\\n"),
            '\r' => self.out.push_str("\\r"),
            '\t' => self.out.push_str("\\t"),
            // ASCII: a control character is its own byte, `\xNN` is exact.
            c if c.is_ascii() => self.push_hex_byte(c as u8),
            c => {
                // Writing to a String cannot fail.
                let _ = write!(self.out, "\\u{{{:x}}}", u32::from(c));
            }
        }
    }

    fn escape_byte(&mut self, b: u8) {
        self.lit();
        self.push_hex_byte(b);
    }

    fn push_hex_byte(&mut self, b: u8) {
        self.out.push_str("\\x");
        self.out.push(char::from(HEX[usize::from(b >> 4)]));
        self.out.push(char::from(HEX[usize::from(b & 0xf)]));
    }

    fn marker(&mut self, left: usize) {
        self.lit();
        let _ = write!(self.out, "…(+{left} {})", plural_bytes(left as u64));
    }

    fn finish(&mut self) {
        self.plain();
    }
}

/// `byte` or `bytes`, to follow a count.
pub(crate) fn plural_bytes(n: u64) -> &'static str {
    if n == 1 { "byte" } else { "bytes" }
}

/// True for characters that must not reach a terminal as themselves.
pub(crate) fn needs_escape(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_control() || c == '\\'
    } else {
        is_unsafe_non_ascii(c)
    }
}

/// Non-ASCII characters that are control or invisible: C1 controls, Unicode
/// general category Cf (format: bidi controls, zero-width characters, BOM,
/// tags...), Zl and Zp (line and paragraph separators), and the Hangul fillers
/// that render as blank and are used to spoof text.
pub(crate) fn is_unsafe_non_ascii(c: char) -> bool {
    let c = u32::from(c);
    if c < 0xa0 {
        return c >= 0x80; // C1 controls
    }
    matches!(
        c,
        0x00ad // soft hyphen
            | 0x0600..=0x0605
            | 0x061c // arabic letter mark (bidi)
            | 0x06dd
            | 0x070f
            | 0x0890..=0x0891
            | 0x08e2
            | 0x115f..=0x1160 // Hangul fillers
            | 0x180e
            | 0x200b..=0x200f // zero width space/non-joiner/joiner, LRM, RLM
            | 0x2028..=0x2029 // line and paragraph separators
            | 0x202a..=0x202e // bidi embeddings and overrides
            | 0x2060..=0x2064
            | 0x2066..=0x206f // bidi isolates and deprecated format characters
            | 0x3164 // Hangul filler
            | 0xfeff // BOM / zero width no-break space
            | 0xffa0 // halfwidth Hangul filler
            | 0xfff9..=0xfffb // interlinear annotation
            | 0x110bd
            | 0x110cd
            | 0x13430..=0x1343f
            | 0x1bca0..=0x1bca3
            | 0x1d173..=0x1d17a
            | 0xe0000..=0xe007f // tag characters
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(bytes: &[u8]) -> String {
        escape_untrusted(bytes, usize::MAX)
    }

    #[test]
    fn printable_text_is_unchanged() {
        assert_eq!(esc(b"GET / HTTP/1.1"), "GET / HTTP/1.1");
        assert_eq!(
            esc("héllo 日本 🦀 \"q\" 'a'".as_bytes()),
            "héllo 日本 🦀 \"q\" 'a'"
        );
        assert_eq!(esc(b""), "");
    }

    #[test]
    fn terminal_controls_are_escaped() {
        assert_eq!(esc(b"a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(esc(b"l1\r\nl2\n"), "l1\\r\\nl2\\n");
        assert_eq!(esc(b"\t\0\x07\x08\x7f"), "\\t\\x00\\x07\\x08\\x7f");
        assert_eq!(esc(b"\x1b]0;title\x07"), "\\x1b]0;title\\x07");
    }

    #[test]
    fn backslash_is_doubled_so_escapes_cannot_be_forged() {
        assert_eq!(esc(b"C:\\x1b"), "C:\\\\x1b");
        assert_eq!(esc(b"\\"), "\\\\");
    }

    #[test]
    fn invalid_utf8_bytes_are_hex() {
        assert_eq!(esc(b"a\xffb"), "a\\xffb");
        // Truncated sequence at the end, lone continuation, overlong encoding.
        assert_eq!(esc(b"x\xc3"), "x\\xc3");
        assert_eq!(esc(b"\x80"), "\\x80");
        assert_eq!(esc(b"\xc0\xaf"), "\\xc0\\xaf");
        // Encoded surrogate (invalid in UTF-8).
        assert_eq!(esc(b"\xed\xa0\x80"), "\\xed\\xa0\\x80");
    }

    #[test]
    fn c1_controls_are_code_points_not_bytes() {
        // U+009B (CSI) encoded as C2 9B, distinct from the raw byte 0x9B.
        assert_eq!(esc("\u{9b}31m".as_bytes()), "\\u{9b}31m");
        assert_eq!(esc(b"\x9b31m"), "\\x9b31m");
        assert_eq!(esc("\u{85}".as_bytes()), "\\u{85}");
    }

    #[test]
    fn bidi_and_invisible_characters_are_escaped() {
        assert_eq!(esc("abc\u{202e}fed".as_bytes()), "abc\\u{202e}fed");
        for c in ['\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}'] {
            assert_eq!(
                esc(c.to_string().as_bytes()),
                format!("\\u{{{:x}}}", u32::from(c))
            );
        }
        assert_eq!(
            esc("\u{200b}\u{200c}\u{200d}\u{200e}\u{200f}".as_bytes()),
            "\\u{200b}\\u{200c}\\u{200d}\\u{200e}\\u{200f}"
        );
        assert_eq!(esc("\u{feff}x".as_bytes()), "\\u{feff}x");
        assert_eq!(esc("a\u{2028}b\u{2029}".as_bytes()), "a\\u{2028}b\\u{2029}");
        assert_eq!(esc("\u{e0041}".as_bytes()), "\\u{e0041}");
        assert_eq!(esc("\u{61c}".as_bytes()), "\\u{61c}");
    }

    #[test]
    fn cap_counts_input_bytes_and_marks_the_rest() {
        assert_eq!(escape_untrusted(b"hello world", 5), "hello…(+6 bytes)");
        assert_eq!(escape_untrusted(b"hello", 5), "hello");
        assert_eq!(escape_untrusted(b"hello", 0), "…(+5 bytes)");
        // An escaped byte costs one input byte however long its escape.
        assert_eq!(escape_untrusted(b"\r\n\r\n", 2), "\\r\\n…(+2 bytes)");
        assert_eq!(escape_untrusted(b"\xff\xfe\xfd", 2), "\\xff\\xfe…(+1 byte)");
    }

    #[test]
    fn cap_never_splits_a_character() {
        // 'é' is two bytes: with room for one it is left out whole.
        assert_eq!(escape_untrusted("aé".as_bytes(), 2), "a…(+2 bytes)");
        assert_eq!(escape_untrusted("aé".as_bytes(), 3), "aé");
        assert_eq!(escape_untrusted("🦀🦀".as_bytes(), 7), "🦀…(+4 bytes)");
    }

    #[test]
    fn highlight_wraps_runs_of_escapes_only() {
        let mut out = String::new();
        let h = Highlight { on: "<", off: ">" };
        escape(&mut out, b"a\r\nb\\c", usize::MAX, Some(h));
        assert_eq!(out, "a<\\r\\n>b<\\\\>c");
        out.clear();
        escape(&mut out, b"ab\x1b", 2, Some(h));
        assert_eq!(out, "ab<…(+1 byte)>");
        out.clear();
        escape(&mut out, b"\x1b", usize::MAX, Some(h));
        assert_eq!(out, "<\\x1b>");
    }

    /// Nothing a terminal would act on survives: checked for every Unicode
    /// scalar value and every single byte.
    #[test]
    fn output_is_always_safe() {
        fn assert_safe(out: &str, input: &[u8]) {
            for c in out.chars() {
                assert!(
                    !c.is_control() && (c.is_ascii() || !is_unsafe_non_ascii(c)),
                    "unsafe {c:?} in {out:?} from {input:x?}"
                );
            }
        }
        for b in 0..=255u8 {
            let out = esc(&[b]);
            assert_safe(&out, &[b]);
        }
        let mut buf = [0u8; 4];
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let input = c.encode_utf8(&mut buf).as_bytes();
            let out = esc(input);
            assert_safe(&out, input);
            if !needs_escape(c) {
                assert_eq!(out.as_bytes(), input);
            }
        }
    }
}
