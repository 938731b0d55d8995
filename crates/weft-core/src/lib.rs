//! weft-core: the event model shared by every stage, process and TLS library
//! discovery from `/proc` and ELF files, and the assembly of kernel records
//! into whole events.
#![forbid(unsafe_code)]

pub mod decode;
pub mod discovery;
pub mod event;
pub mod packets;
pub mod pipeline;
pub mod procinfo;
pub mod redact;
pub mod tls;
