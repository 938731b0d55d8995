//! weft-sink: where events leave weft.
//!
//! - [`ConsoleSink`]: one escaped, optionally coloured line per TLS call, for
//!   people watching a terminal.
//! - [`JsonSink`]: one Elastic Common Schema JSON object per line, for
//!   machines (`docs/schema.md` is the contract).
//! - [`escape_untrusted`]: the terminal-safe rendering of captured bytes that
//!   every human-facing output uses.
//!
//! Sinks write to any [`std::io::Write`]; they do no buffering of their own
//! beyond one event, so wrap files and pipes in a `BufWriter`.
#![forbid(unsafe_code)]

mod console;
mod datetime;
mod escape;
mod json;

use std::io;

use weft_core::event::Event;

pub use console::{Clock, ConsoleOptions, ConsoleSink};
pub use escape::{escape_untrusted, escape_untrusted_into};
pub use json::{JsonSink, encode_event};

/// Version of the JSON event schema (`weft.schema.version`, `docs/schema.md`).
/// Minor: fields added. Major: a field removed, renamed or changed in meaning.
pub const SCHEMA_VERSION: &str = "1.0";

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

    use weft_core::event::{Direction, Endpoint, Flow, ProcessInfo, Role, TlsData, TlsLibrary};

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
