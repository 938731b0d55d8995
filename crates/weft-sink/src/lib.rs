//! weft-sink: where events leave weft.
//!
//! - [`ConsoleSink`]: one escaped, optionally coloured line per TLS call, and
//!   a request line and a response line (optionally with headers and bodies)
//!   per HTTP transaction, for people watching a terminal.
//! - [`JsonSink`]: one Elastic Common Schema JSON object per line (a capture
//!   event per TLS call, an `http` event per transaction), for machines
//!   (`docs/schema.md` is the contract).
//!
//! HTTP events are redacted by default in both (credential headers, query
//! parameters, form and JSON bodies: `weft_core::redact`);
//! [`ConsoleOptions::redact`] and [`JsonOptions::redact`] turn it off.
//! - [`escape_untrusted`]: the terminal-safe rendering of captured bytes that
//!   every human-facing output uses.
//!
//! Sinks write to any [`std::io::Write`]; they do no buffering of their own
//! beyond one event, so wrap files and pipes in a `BufWriter`.
#![forbid(unsafe_code)]

mod console;
mod datetime;
mod escape;
mod http;
mod json;

use std::io;

use weft_core::event::Event;

pub use console::{Clock, ConsoleOptions, ConsoleSink};
pub use escape::{escape_untrusted, escape_untrusted_into};
pub use json::{JsonOptions, JsonSink, encode_event, encode_event_with};

/// Version of the JSON event schema (`weft.schema.version`, `docs/schema.md`).
/// Minor: fields added. Major: a field removed, renamed or changed in meaning.
pub const SCHEMA_VERSION: &str = "1.3";

/// The ECS release whose field definitions the JSON output follows (`ecs.version`).
pub const ECS_VERSION: &str = "8.11.0";

/// A destination for events.
///
/// Object safe: the binary picks one at run time as `Box<dyn Sink + Send>`.
pub trait Sink {
    /// Writes one event. On error nothing more should be written to this sink.
    fn write(&mut self, ev: &Event) -> Result<(), SinkError>;

    /// Pushes anything buffered below the sink to its destination.
    fn flush(&mut self) -> Result<(), SinkError>;
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn write(&mut self, ev: &Event) -> Result<(), SinkError> {
        (**self).write(ev)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        (**self).flush()
    }
}

/// Why a sink could not take an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The underlying writer refused the event's bytes.
    #[error("cannot write the {sink} output")]
    Write {
        /// Which sink: `console` or `JSON lines`.
        sink: &'static str,
        #[source]
        source: io::Error,
    },
    /// The underlying writer could not flush.
    #[error("cannot flush the {sink} output")]
    Flush {
        sink: &'static str,
        #[source]
        source: io::Error,
    },
}

impl SinkError {
    /// The I/O error underneath.
    pub fn io_error(&self) -> &io::Error {
        match self {
            SinkError::Write { source, .. } | SinkError::Flush { source, .. } => source,
        }
    }

    /// True when the reader went away (`weft | head`): the binary should stop
    /// quietly rather than report an error.
    pub fn is_broken_pipe(&self) -> bool {
        self.io_error().kind() == io::ErrorKind::BrokenPipe
    }
}

#[cfg(test)]
mod test_support {
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;

    use weft_core::event::{
        Direction, Endpoint, Flow, Http, ProcessInfo, Role, TlsData, TlsLibrary,
    };
    use weft_proto::{Body, End, Headers, Message, Protocol, Transaction};

    /// curl (pid 1234) writing a small HTTP request to 93.184.216.34:443 at
    /// 2026-11-27T20:03:44.123456789Z.
    pub fn sample() -> TlsData {
        TlsData {
            timestamp_ns: 1_795_809_824_123_456_789,
            duration_ns: 4200,
            process: Arc::new(ProcessInfo {
                pid: 1234,
                ppid: 1000,
                name: "curl".to_string(),
                executable: Some("/usr/bin/curl".to_string()),
                uid: 1001,
                gid: 1002,
                cgroup_id: 4242,
                start_time_ns: 99_000,
                entity_id: "b1d2c3:1234:99000".to_string(),
            }),
            tid: 1235,
            flow: Some(Flow {
                cookie: 77,
                local: Endpoint {
                    ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)),
                    port: 51234,
                },
                remote: Endpoint {
                    ip: IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34)),
                    port: 443,
                },
                role: Role::Client,
            }),
            library: TlsLibrary::OpenSsl,
            direction: Direction::Write,
            payload: b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n".to_vec(),
            length: 37,
            holes: Vec::new(),
            tls: None,
            first_bytes: false,
            destination_domain: None,
            lost_before: Default::default(),
        }
    }

    fn message(headers: &[(&str, &str)], body: &[u8], first_ns: u64, last_ns: u64) -> Message {
        Message {
            headers: headers.iter().copied().collect::<Headers>(),
            body: Body {
                data: body.to_vec(),
                size: body.len() as u64,
                truncated: false,
                ..Body::default()
            },
            trailers: Headers::new(),
            seen: true,
            complete: true,
            headers_incomplete: false,
            headers_truncated: false,
            data_lost: false,
            first_ns,
            last_ns,
        }
    }

    /// curl's HTTP/1.1 GET with credentials in the query, `Authorization`
    /// and `Cookie`; a JSON response that sets two cookies.
    pub fn h1_transaction() -> Transaction {
        Transaction {
            protocol: Protocol::Http1,
            stream_id: 1,
            request: message(
                &[
                    (":method", "GET"),
                    (":path", "/users?id=7&access_token=abc123"),
                    ("host", "api.example"),
                    ("user-agent", "curl/8.5.0"),
                    ("accept", "*/*"),
                    ("authorization", "Bearer s3cr3t"),
                    ("cookie", "sid=xyz; theme=dark"),
                ],
                b"",
                1_000,
                1_000,
            ),
            response: message(
                &[
                    (":status", "200"),
                    ("content-type", "application/json; charset=utf-8"),
                    ("set-cookie", "sid=n3w; Path=/; HttpOnly"),
                    ("set-cookie", "theme=light"),
                    ("content-length", "36"),
                ],
                br#"{"users":[],"refresh_token":"r-123"}"#,
                200_000_000,
                293_001_000,
            ),
            interim: Vec::new(),
            promised_by: None,
            end: End::Complete,
            http1_minor: Some(1),
        }
    }

    /// [`h1_transaction`] as curl saw it, on [`sample`]'s connection, at
    /// 2026-11-27T20:03:44.123456789Z, lasting 293 ms.
    pub fn h1_event() -> Http {
        let d = sample();
        Http {
            timestamp_ns: d.timestamp_ns,
            duration_ns: Some(293_000_000),
            process: d.process,
            flow: d.flow,
            library: TlsLibrary::OpenSsl,
            role: Role::Client,
            transaction: Box::new(h1_transaction()),
            tls: None,
            destination_domain: None,
        }
    }

    /// `{"user":[]}` gzipped: 31 bytes, not UTF-8.
    pub const GZIP_BODY: &[u8] = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xabV*-N-R\xb2\x8a\x8e\xad\x05\x00\xbf\xe3|\x9f\x0b\x00\x00\x00";

    /// An HTTP/2 POST of a login form on stream 3; the response gzipped
    /// (and not decoded, as with body decoding off).
    pub fn h2_transaction() -> Transaction {
        let mut t = Transaction {
            protocol: Protocol::Http2,
            stream_id: 3,
            request: message(
                &[
                    (":method", "POST"),
                    (":scheme", "https"),
                    (":authority", "api.example"),
                    (":path", "/login"),
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("user-agent", "python-httpx/0.27"),
                ],
                b"user=bob&password=hunter2",
                5_000,
                6_000,
            ),
            response: message(
                &[
                    (":status", "200"),
                    ("content-type", "application/json"),
                    ("content-encoding", "gzip"),
                ],
                GZIP_BODY,
                1_000_000,
                1_505_000,
            ),
            interim: Vec::new(),
            promised_by: None,
            end: End::Complete,
            http1_minor: Some(1),
        };
        t.response.body.sniffed_type = Some("application/gzip");
        t
    }

    /// [`h2_transaction`] as the server (nginx, pid 4300) saw it: the peer
    /// 10.0.0.5:48372 connected to its 10.0.0.9:443.
    pub fn h2_event() -> Http {
        Http {
            timestamp_ns: 1_795_809_825_000_000_000,
            duration_ns: Some(1_500_000),
            process: Arc::new(ProcessInfo {
                pid: 4300,
                ppid: 1,
                name: "nginx".to_string(),
                executable: Some("/usr/sbin/nginx".to_string()),
                uid: 33,
                gid: 33,
                cgroup_id: 5150,
                start_time_ns: 7_000,
                entity_id: "b1d2c3:4300:7000".to_string(),
            }),
            flow: Some(Flow {
                cookie: 88,
                local: Endpoint {
                    ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)),
                    port: 443,
                },
                remote: Endpoint {
                    ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)),
                    port: 48372,
                },
                role: Role::Server,
            }),
            library: TlsLibrary::BoringSsl,
            role: Role::Server,
            transaction: Box::new(h2_transaction()),
            tls: None,
            destination_domain: None,
        }
    }

    /// A writer whose reader has gone away.
    pub fn broken_pipe_writer() -> impl std::io::Write {
        struct Broken;
        impl std::io::Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        Broken
    }
}
