//! weft-bpf: the kernel side of weft.
//!
//! Builds `bpf/weft.bpf.c` into a libbpf skeleton (build.rs), loads and
//! attaches it ([`sensor`]), and turns the raw records of
//! `bpf/include/weft_abi.h` into safe values ([`abi`]) and whole calls
//! ([`assemble`]). This is the only crate of weft with `unsafe` code.

pub mod abi;
pub mod assemble;
pub mod conn;
pub mod go;
pub mod netdev;
pub mod packets;
pub mod progstats;
pub mod ring;
pub mod sensor;
mod split;

#[allow(
    clippy::all,
    clippy::unwrap_used,
    unsafe_op_in_unsafe_fn,
    unused_imports
)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/weft.skel.rs"));
}

pub use sensor::{BpfError, ProbePoint, Sensor, SensorConfig};
