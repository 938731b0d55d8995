//! Run count and run time of each of weft's BPF programs (for the metrics
//! endpoint): what every hook costs, measured by the kernel.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::raw::c_void;

use libbpf_rs::libbpf_sys;
use libbpf_rs::skel::Skel;

use crate::sensor::{BpfError, Sensor};

/// One program's counters since it was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgStats {
    pub name: String,
    pub run_count: u64,
    pub run_time_ns: u64,
}

/// Keeps the kernel's BPF run-time statistics on while alive (the kernel
/// counts only while someone holds such a file descriptor).
pub struct RunStats {
    _fd: OwnedFd,
}

impl Sensor {
    /// Turn on the kernel's per-program run counters for as long as the
    /// returned value lives. Costs two clock reads per program run.
    pub fn enable_run_stats(&self) -> Result<RunStats, BpfError> {
        // SAFETY: plain syscall wrapper; returns a new fd or a negative errno.
        let fd = unsafe { libbpf_sys::bpf_enable_stats(libbpf_sys::BPF_STATS_RUN_TIME) };
        if fd < 0 {
            return Err(BpfError::Config(format!(
                "cannot enable BPF run-time statistics: {}",
                std::io::Error::from_raw_os_error(-fd)
            )));
        }
        // SAFETY: the kernel just gave us this fd and nothing else owns it.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        Ok(RunStats { _fd: fd })
    }

    /// Counters of every loaded program (zero unless run stats are on).
    pub fn program_stats(&self) -> Vec<ProgStats> {
        let mut out = Vec::new();
        let progs: Vec<_> = self.skel().object().progs().collect();
        let named = progs
            .iter()
            .map(|p| (p.name().to_string_lossy().into_owned(), p.as_fd()));
        // sys_exit_plain is in the object's second open (split.rs).
        let plain = std::iter::once(("sys_exit_plain".to_string(), self.plain_prog));
        for (name, fd) in named.filter(|(n, _)| n != "sys_exit_plain").chain(plain) {
            let mut info = libbpf_sys::bpf_prog_info::default();
            let mut len = std::mem::size_of_val(&info) as u32;
            // SAFETY: `info` is a valid, writable bpf_prog_info of `len`
            // bytes; the kernel writes at most `len` bytes into it.
            let rc = unsafe {
                libbpf_sys::bpf_obj_get_info_by_fd(
                    fd.as_raw_fd(),
                    (&mut info as *mut libbpf_sys::bpf_prog_info).cast::<c_void>(),
                    &mut len,
                )
            };
            if rc != 0 {
                continue;
            }
            out.push(ProgStats {
                name,
                run_count: info.run_cnt,
                run_time_ns: info.run_time_ns,
            });
        }
        out
    }
}
