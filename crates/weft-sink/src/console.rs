//! The human-facing line: what `sudo weft` prints by default.
//!
//! ```text
//! 21:03:44.123 curl[1234] → 10.0.0.5:51234 -> 93.184.216.34:443 openssl 37 bytes: GET / HTTP/1.1\r\nHost: example.com\r\n\r\n
//! ```
//!
//! Every byte that came from outside weft (payload, process name) goes through
//! [`crate::escape_untrusted`]; colour codes are only ever weft's own.

use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;

use weft_core::event::{Direction, Endpoint, Event, TlsData};

use crate::datetime::push_clock_time;
use crate::escape::{Highlight, escape, plural_bytes};
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
    /// rest is summarised as `…(+N bytes)`. `usize::MAX` shows all.
    pub max_payload_bytes: usize,
    pub clock: Clock,
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
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        Self {
            color: false,
            max_payload_bytes: Self::DEFAULT_MAX_PAYLOAD_BYTES,
            clock: Clock::Local,
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

    fn format_tls(&mut self, d: &TlsData) {
        let color = self.opts.color;
        let line = &mut self.line;

        // Time.
        paint(line, color, DIM, |l| {
            let offset = match &self.zone {
                Zone::Utc => 0,
                Zone::Local(tz) => {
                    jiff::Timestamp::from_second((d.timestamp_ns / 1_000_000_000) as i64)
                        .map(|t| tz.to_offset(t).seconds())
                        .unwrap_or(0)
                }
            };
            push_clock_time(l, d.timestamp_ns, offset);
            if matches!(self.zone, Zone::Utc) {
                l.push('Z');
            }
        });
        line.push(' ');

        // Process.
        paint(line, color, BOLD, |l| {
            escape(l, d.process.name.as_bytes(), MAX_NAME_BYTES, None);
        });
        let _ = write!(line, "[{}] ", d.process.pid);

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
}

impl<W: Write> Sink for ConsoleSink<W> {
    fn write(&mut self, ev: &Event) -> Result<(), SinkError> {
        self.line.clear();
        match ev {
            Event::TlsData(d) => self.format_tls(d),
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
}
