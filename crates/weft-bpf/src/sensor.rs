//! Loading, configuring and attaching weft's BPF object.

use std::collections::HashMap;
use std::io::Read;
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Iter, Link, MapCore, MapFlags, UprobeMultiOpts};

use crate::ring::Ring;
use thiserror::Error;

use crate::abi;
use crate::skel::{WeftSkel, WeftSkelBuilder};

#[derive(Debug, Error)]
pub enum BpfError {
    #[error(
        "weft needs root or the capabilities {missing} (CAP_BPF and CAP_PERFMON load and read BPF programs; CAP_SYS_ADMIN attaches uprobes); run it with sudo"
    )]
    Privileges { missing: String },
    #[error("cannot {what}: {source}")]
    Libbpf {
        what: String,
        #[source]
        source: libbpf_rs::Error,
    },
    #[error("cannot attach uprobe to {path}:{symbol}: {source}")]
    Uprobe {
        path: PathBuf,
        symbol: String,
        #[source]
        source: libbpf_rs::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot {what}: {source}")]
    Os {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The packet path could not be attached (netdev.rs): the sentence
    /// names the interface, its namespace and why.
    #[error("{0}")]
    Attach(String),
}

fn lb(what: impl Into<String>) -> impl FnOnce(libbpf_rs::Error) -> BpfError {
    let what = what.into();
    move |source| BpfError::Libbpf { what, source }
}

/// What the kernel side is loaded with.
#[derive(Debug, Clone)]
pub struct SensorConfig {
    /// Bytes copied per library call at most; the rest is counted, not copied.
    pub payload_cap: u64,
    /// Body bytes copied per body the kernel follows (an HTTP/1
    /// Content-Length body, an HTTP/2 stream's DATA); past them the body's
    /// bytes are left out of the calls (holes). `None`: every byte is
    /// copied.
    pub body_keep: Option<u64>,
    /// Ring-buffer size in bytes (a power of two, at least one page).
    pub ring_size: u32,
    /// Processes selected by pid (`--pid`).
    pub pids: Vec<u32>,
    /// Processes selected with all their descendants (`--tree`).
    pub tree_pids: Vec<u32>,
    /// Processes selected by name (`--comm`), at most 15 bytes each.
    pub comms: Vec<String>,
    /// Benchmark floors (`--bench-floor`): every hook attached, programs
    /// that return at once or only copy plaintext.
    pub floor: Floor,
    /// Attach the session-secret hooks (`--keylog`).
    pub keylog: bool,
    /// Plaintext and first bytes from the socket syscalls (bpf/plain.bpf.c);
    /// false with `--no-plaintext`.
    pub plaintext: bool,
    /// `--plaintext-ports`: decode plaintext only on these ports (empty: any).
    pub plaintext_ports: Vec<u16>,
    /// Flows the packet path's kernel table holds (`--flow-table-size`).
    pub pkt_flows: u32,
}

/// What the BPF programs do (`floor_mode` in common.bpf.h): capture, or a
/// benchmark floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Floor {
    /// Capture (the programs' whole work).
    #[default]
    Off = 0,
    /// Every program returns at once: the kernel's trap cost alone.
    Hooks = 1,
    /// As `Hooks`, but the TLS library probes copy each call's plaintext
    /// to the ring (`WEFT_REC_BENCH_COPY`): the least a plaintext sensor
    /// does. User space counts those records and drops them.
    Copy = 2,
}

impl SensorConfig {
    /// A process filter is set: uprobes go to the selected processes only,
    /// and the syscall hooks are attached only while one of them is
    /// followed ([`Sensor::syscall_hooks`]).
    pub fn targeted(&self) -> bool {
        !self.pids.is_empty() || !self.tree_pids.is_empty() || !self.comms.is_empty()
    }
}

impl Default for SensorConfig {
    fn default() -> Self {
        SensorConfig {
            payload_cap: 256 * 1024,
            body_keep: None,
            ring_size: 16 * 1024 * 1024,
            pids: Vec::new(),
            tree_pids: Vec::new(),
            comms: Vec::new(),
            floor: Floor::Off,
            keylog: false,
            plaintext: true,
            plaintext_ports: Vec::new(),
            pkt_flows: 65536,
        }
    }
}

/// One function of a TLS library to probe: its name and file offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePoint {
    pub symbol: String,
    pub offset: u64,
}

/// Which BPF entry program fits a library function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// `(ctx, buf, len)`, returns the bytes written.
    Write,
    /// `(ctx, buf, len)`, returns the bytes read.
    Read,
    /// OpenSSL `_ex`: returns 1, the count is stored through the 4th argument.
    WriteEx,
    ReadEx,
    /// Handshake: no data, but its socket I/O fills the socket cache.
    Handshake,
    /// The library object is freed: forget its socket.
    Free,
    /// NSPR `PR_Write`/`PR_Send`: like `Write`, only on layered (TLS) fds.
    NsprWrite,
    NsprRead,
    /// NSPR `PR_Recv`: like `NsprRead`, but a `PR_MSG_PEEK` is not a read.
    NsprRecv,
    /// OpenSSL's `nss_keylog_int`: every session secret (`--keylog` only).
    Keylog,
    /// `SSL_get0_alpn_selected`: the chosen ALPN protocol (entry and return).
    AlpnSelected,
    /// BoringSSL's `ssl_log_secret` (`--keylog` only); its point carries the
    /// struct offsets in its name ([`boring_keylog_cookie`]).
    BoringKeylog,
    /// (internal) the return program of [`Hook::AlpnSelected`].
    AlpnSelectedReturn,
}

/// The hook for `symbol` of library `lib` (an `abi::LIB_*` id), if any.
pub fn hook_for(lib: u64, symbol: &str) -> Option<Hook> {
    use abi::*;
    Some(match (lib, symbol) {
        (LIB_OPENSSL | LIB_BORINGSSL, "SSL_write") => Hook::Write,
        (LIB_OPENSSL | LIB_BORINGSSL, "SSL_read") => Hook::Read,
        (LIB_OPENSSL, "SSL_write_ex") => Hook::WriteEx,
        (LIB_OPENSSL, "SSL_read_ex") => Hook::ReadEx,
        (LIB_OPENSSL | LIB_BORINGSSL, "SSL_do_handshake") => Hook::Handshake,
        (LIB_OPENSSL | LIB_BORINGSSL, "SSL_free") => Hook::Free,
        (LIB_GNUTLS, "gnutls_record_send") => Hook::Write,
        (LIB_GNUTLS, "gnutls_record_recv") => Hook::Read,
        (LIB_GNUTLS, "gnutls_handshake") => Hook::Handshake,
        (LIB_GNUTLS, "gnutls_deinit") => Hook::Free,
        (LIB_WOLFSSL, "wolfSSL_write") => Hook::Write,
        (LIB_WOLFSSL, "wolfSSL_read") => Hook::Read,
        (LIB_WOLFSSL, "wolfSSL_free") => Hook::Free,
        (LIB_WOLFSSL, "wolfSSL_connect" | "wolfSSL_accept") => Hook::Handshake,
        (LIB_NSS, "PR_Write" | "PR_Send") => Hook::NsprWrite,
        (LIB_NSS, "PR_Read") => Hook::NsprRead,
        (LIB_NSS, "PR_Recv") => Hook::NsprRecv,
        (LIB_OPENSSL, "nss_keylog_int") => Hook::Keylog,
        (LIB_OPENSSL | LIB_BORINGSSL, "SSL_get0_alpn_selected") => Hook::AlpnSelected,
        (LIB_BORINGSSL, s) if boring_keylog_cookie(s).is_some() => Hook::BoringKeylog,
        _ => return None,
    })
}

/// The attach cookie of BoringSSL's key-log point, from the synthetic symbol
/// `ssl_log_secret@s3=0x30@client_random=0x30` that discovery gives it
/// (`weft_core::discovery`, `boringssl/keylog.rs`): `LIB_BORINGSSL |
/// s3 << 16 | client_random << 32`, as `boring_keylog_enter` reads it.
pub fn boring_keylog_cookie(symbol: &str) -> Option<u64> {
    let rest = symbol.strip_prefix("ssl_log_secret@s3=0x")?;
    let (s3, cr) = rest.split_once("@client_random=0x")?;
    let s3 = u64::from_str_radix(s3, 16).ok()?;
    let cr = u64::from_str_radix(cr, 16).ok()?;
    (s3 < 0x1_0000 && cr < 0x1_0000 && cr + 32 < 0x1_0000)
        .then_some(abi::LIB_BORINGSSL | s3 << 16 | cr << 32)
}

/// Attach `prog` to every offset in `path` with one uprobe.multi link, each
/// point carrying `cookie` (the library id). With `pid`, the breakpoints go
/// into that process only (the kernel's uprobe filter keeps them out of
/// every other address space; see `targets` in the weft binary).
pub(crate) fn attach_multi(
    prog: &libbpf_rs::ProgramMut<'static>,
    pid: Option<u32>,
    path: &Path,
    offsets: Vec<usize>,
    cookie: u64,
    retprobe: bool,
) -> Result<Link, BpfError> {
    let n = offsets.len();
    let first = offsets.first().copied().unwrap_or(0);
    prog.attach_uprobe_multi_with_opts(
        pid_arg(pid),
        path,
        "",
        UprobeMultiOpts {
            offsets,
            cookies: vec![cookie; n],
            retprobe,
            ..Default::default()
        },
    )
    .map_err(|source| BpfError::Uprobe {
        path: path.to_path_buf(),
        symbol: format!(
            "{} ({n} points from offset {first:#x}, {})",
            prog.name().to_string_lossy(),
            if retprobe { "return" } else { "entry" }
        ),
        source,
    })
}

/// Bytes waiting in the ring at which the kernel wakes the reader: an
/// eighth of the ring, at most [`WAKEUP_MAX`]. The reader then works in
/// short, frequent passes (~128 KiB of records, a few ms of work on a busy
/// host) instead of long bursts: a burst of tens of ms kept the traced
/// processes off a CPU long enough to stall their own request loop (the
/// CPUs idled more with weft than without, and the clients' tail latency
/// grew; docs/performance.md, session 12). Small rings wake earlier, so
/// that a burst cannot fill them first.
pub fn wakeup_bytes(ring_size: u32) -> u32 {
    (ring_size / 8).min(WAKEUP_MAX)
}

/// See [`wakeup_bytes`].
pub const WAKEUP_MAX: u32 = 128 * 1024;

/// Bytes of the ring kept for records other than payload (call records
/// above all: they say how much of each call's payload was lost, so losses
/// under load are accounted per connection): a 64th of the ring (256 KiB,
/// ~1,700 call records, of the default 16 MiB: payload keeps the rest), at
/// least 64 KiB, at most a quarter of it.
pub fn call_reserve(ring_size: u32) -> u32 {
    (ring_size / 64).clamp((64 * 1024).min(ring_size / 4), ring_size / 4)
}

/// libbpf's pid argument: -1 for every process.
pub(crate) fn pid_arg(pid: Option<u32>) -> i32 {
    pid.and_then(|p| i32::try_from(p).ok()).unwrap_or(-1)
}

/// Which uprobe links a file has: for every process (`None`) or for one.
pub(crate) type UprobeKey = (PathBuf, Option<u32>);

/// Counters the kernel side keeps (summed over CPUs), by name.
pub type KernelStats = Vec<(&'static str, u64)>;

/// The loaded BPF object and its links. Dropping it detaches everything.
pub struct Sensor {
    pub(crate) skel: WeftSkel<'static>,
    /// `sys_exit_plain`, loaded from the object's second open (split.rs).
    pub(crate) plain_prog: std::os::fd::BorrowedFd<'static>,
    _links: Vec<Link>,
    /// The syscall tracepoints (see [`Sensor::syscall_hooks`]).
    syscall_links: Vec<Link>,
    /// With a process filter: the socket-I/O tracepoints that tie TLS
    /// calls to their sockets (see [`Sensor::sock_io_hooks`]).
    sock_io_on: bool,
    pub(crate) uprobes: HashMap<UprobeKey, Vec<Link>>,
    pub(crate) uprobe_count: usize,
    keylog: bool,
    /// Probe points attached per process (per-process links only).
    pub(crate) pid_probes: HashMap<u32, usize>,
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Check the effective capabilities before touching the kernel, so a user
/// without them gets one clear sentence instead of a verifier error.
pub fn check_privileges() -> Result<(), BpfError> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0);
    let mut missing = Vec::new();
    for (bit, name) in [
        (CAP_BPF, "CAP_BPF"),
        (CAP_PERFMON, "CAP_PERFMON"),
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
    ] {
        if eff & (1u64 << bit) == 0 {
            missing.push(name);
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(BpfError::Privileges {
            missing: missing.join(", "),
        })
    }
}

fn forward_libbpf_log(level: libbpf_rs::PrintLevel, msg: String) {
    let msg = msg.trim_end();
    if std::env::var_os("WEFT_LIBBPF_STDERR").is_some() {
        eprintln!("libbpf: {msg}");
    }
    match level {
        libbpf_rs::PrintLevel::Warn => tracing::warn!(target: "libbpf", "{msg}"),
        libbpf_rs::PrintLevel::Info => tracing::debug!(target: "libbpf", "{msg}"),
        libbpf_rs::PrintLevel::Debug => tracing::trace!(target: "libbpf", "{msg}"),
    }
}

/// Pad a process name the way the kernel stores `comm`.
pub fn comm_key(name: &str) -> Result<[u8; 16], BpfError> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > 15 || b.contains(&0) {
        return Err(BpfError::Config(format!(
            "process name {name:?} must be 1 to 15 bytes (the kernel keeps only 15), without NUL"
        )));
    }
    let mut k = [0u8; 16];
    k[..b.len()].copy_from_slice(b);
    Ok(k)
}

/// Syscall tracepoints are found through tracefs. Minimal systems (and
/// this project's CI VMs) boot without it mounted: mount it where libbpf
/// looks first. It stays mounted after weft exits, like on most distros.
/// Whether the kernel has the socket-transfer tracepoints
/// (`sock:sock_send_length`, `sock:sock_recv_length`, Linux 6.3+).
fn sock_io_tracepoints_exist() -> bool {
    [
        "/sys/kernel/tracing/events/sock",
        "/sys/kernel/debug/tracing/events/sock",
    ]
    .iter()
    .any(|d| {
        let d = Path::new(d);
        d.join("sock_send_length").is_dir() && d.join("sock_recv_length").is_dir()
    })
}

pub fn ensure_tracefs() -> Result<(), BpfError> {
    let root = Path::new("/sys/kernel/tracing");
    if root.join("events").is_dir() || Path::new("/sys/kernel/debug/tracing/events").is_dir() {
        return Ok(());
    }
    let src = c"tracefs";
    let target = c"/sys/kernel/tracing";
    // SAFETY: all pointers are valid NUL-terminated strings; data is NULL.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            src.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(BpfError::Config(format!(
            "tracefs is not mounted and mounting it on /sys/kernel/tracing failed ({}); \
             mount it with `mount -t tracefs tracefs /sys/kernel/tracing`",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

impl Sensor {
    /// Open, configure, load and attach everything but the TLS uprobes.
    pub fn load(cfg: &SensorConfig) -> Result<Sensor, BpfError> {
        check_privileges()?;
        ensure_tracefs()?;
        if !cfg.ring_size.is_power_of_two() || cfg.ring_size < 4096 {
            return Err(BpfError::Config(format!(
                "ring size {} must be a power of two of at least 4096 bytes",
                cfg.ring_size
            )));
        }
        let comms = cfg
            .comms
            .iter()
            .map(|c| comm_key(c))
            .collect::<Result<Vec<_>, _>>()?;
        libbpf_rs::set_print(Some((libbpf_rs::PrintLevel::Debug, forward_libbpf_log)));
        let t0 = std::time::Instant::now();

        // The skeleton borrows its backing object for its whole life; weft
        // loads one sensor per process, so the storage lives as long.
        let storage: &'static mut MaybeUninit<libbpf_rs::OpenObject> =
            Box::leak(Box::new(MaybeUninit::uninit()));
        let mut open = WeftSkelBuilder::default()
            .open(storage)
            .map_err(lb("open the BPF object"))?;
        {
            let ro = open
                .maps
                .rodata_data
                .as_deref_mut()
                .ok_or_else(|| BpfError::Config("BPF object has no .rodata".into()))?;
            ro.payload_cap = cfg.payload_cap;
            ro.body_keep = cfg.body_keep.unwrap_or(u64::MAX);
            ro.filter_pids_on = u8::from(!cfg.pids.is_empty() || !cfg.tree_pids.is_empty());
            ro.filter_comms_on = u8::from(!comms.is_empty());
            ro.self_tgid = std::process::id();
            ro.floor_mode = cfg.floor as u8;
            ro.wakeup_bytes = u64::from(wakeup_bytes(cfg.ring_size));
            ro.data_room = u64::from(cfg.ring_size - call_reserve(cfg.ring_size));
            ro.plain_mode = match (cfg.plaintext, cfg.plaintext_ports.is_empty()) {
                (false, _) => 0,
                (true, true) => 1,
                (true, false) => 2,
            };
        }
        open.maps
            .events
            .set_max_entries(cfg.ring_size)
            .map_err(lb("size the ring buffer"))?;
        open.maps
            .pkt_flows
            .set_max_entries(cfg.pkt_flows.max(1))
            .map_err(lb("size the packet flow table"))?;
        crate::go::enable_programs(&mut open);
        // Diagnostics of start-up (most of it is the verifier): the
        // kernel's statistics of each program's verification (time,
        // instructions processed) in libbpf's log, shown with
        // `--log-level trace` or WEFT_LIBBPF_STDERR=1.
        let stats_level = if std::env::var_os("WEFT_VERIFIER_STATS").is_some() {
            4
        } else {
            0
        };
        if stats_level != 0 {
            for mut p in open.open_object_mut().progs_mut() {
                p.set_log_level(stats_level);
            }
        }
        // The socket-transfer programs serve process filters only, and need
        // their tracepoints (Linux 6.3+): loaded only then (`?tp_btf` in
        // bpf/tls.bpf.c), so that an older kernel still loads the rest and
        // whole-host capture does not pay their verification at start-up.
        let sock_io = cfg.targeted() && sock_io_tracepoints_exist();
        for prog in [&mut open.progs.tls_sock_send, &mut open.progs.tls_sock_recv] {
            prog.set_autoload(sock_io);
        }
        tracing::debug!(ms = t0.elapsed().as_millis(), "start-up: BPF object opened");
        // The socket-syscall capture's program verified on another CPU
        // meanwhile (split.rs).
        open.progs.sys_exit_plain.set_autoload(false);
        let plain = crate::split::start(&mut open, stats_level)?;
        let skel = open
            .load()
            .map_err(lb("load the BPF programs (verifier)"))?;
        let plain = plain.finish()?;
        skel.maps
            .plain_exit_prog
            .update(
                &0u32.to_ne_bytes(),
                &crate::split::fd_value(plain),
                MapFlags::ANY,
            )
            .map_err(lb("install sys_exit_plain"))?;
        tracing::debug!(
            ms = t0.elapsed().as_millis(),
            "start-up: BPF programs verified"
        );

        for pid in &cfg.pids {
            skel.maps
                .filter_pids
                .update(&pid.to_ne_bytes(), &[1u8], MapFlags::ANY)
                .map_err(lb("fill the pid filter"))?;
        }
        for pid in &cfg.tree_pids {
            skel.maps
                .filter_pids
                .update(&pid.to_ne_bytes(), &[2u8], MapFlags::ANY)
                .map_err(lb("fill the process-tree filter"))?;
        }
        for port in &cfg.plaintext_ports {
            skel.maps
                .plain_ports
                .update(&port.to_ne_bytes(), &[1u8], MapFlags::ANY)
                .map_err(lb("fill the plaintext port filter"))?;
        }
        for k in &comms {
            skel.maps
                .filter_comms
                .update(k, &[1u8], MapFlags::ANY)
                .map_err(lb("fill the process-name filter"))?;
        }

        let p = &skel.progs;
        let mut links = Vec::new();
        for (name, prog) in [
            ("tp_btf/inet_sock_set_state", &p.sock_state),
            ("tp_btf/sched_process_exec", &p.proc_exec),
            ("tp_btf/sched_process_fork", &p.proc_fork),
            ("tp_btf/sched_process_exit", &p.proc_exit),
        ] {
            links.push(prog.attach().map_err(lb(format!("attach {name}")))?);
        }

        let mut sensor = Sensor {
            skel,
            plain_prog: plain,
            _links: links,
            syscall_links: Vec::new(),
            sock_io_on: false,
            uprobes: HashMap::new(),
            uprobe_count: 0,
            keylog: cfg.keylog,
            pid_probes: HashMap::new(),
        };
        if !cfg.targeted() {
            sensor.syscall_hooks(true)?;
        } else if !sock_io {
            tracing::warn!(
                "this kernel has no sock_send_length/sock_recv_length tracepoints (Linux 6.3+): \
                 with a process filter the syscall tracepoints stay attached (every other \
                 process' syscalls pay them)"
            );
        } else if let Err(e) = sensor.sock_io_hooks() {
            tracing::warn!(
                "{e}: with a process filter the syscall tracepoints stay attached \
                 (every other process' syscalls pay them)"
            );
        }
        tracing::debug!(ms = t0.elapsed().as_millis(), "start-up: hooks attached");
        sensor.seed_existing_connections()?;
        Ok(sensor)
    }

    /// Attach (`on`) or release the syscall tracepoints. Any syscall
    /// tracepoint sends every syscall of every thread on the host through
    /// the kernel's tracing slow path, and these run a program on each
    /// read and write: with a process filter they are on only while a
    /// selected process is followed (they are released off this thread).
    /// With a process filter: whether a selected process is alive. While
    /// none is, the socket-syscall programs return at once (`sel_live` in
    /// bpf/common.bpf.h; the kernel sets it itself when a selected process
    /// starts, before this side has seen it).
    pub fn set_selected_live(&mut self, live: bool) {
        if let Some(bss) = self.skel.maps.bss_data.as_deref_mut() {
            bss.sel_live = u32::from(live);
        }
    }

    /// With a process filter: attach the socket-I/O tracepoints
    /// (`sock:sock_send_length`/`sock_recv_length`, Linux 6.3+) that tie a
    /// selected process' TLS calls to their sockets (bpf/tls.bpf.c
    /// `tls_sock_io`), so that the syscall tracepoints are needed only for
    /// what they alone see (plaintext and first bytes outside TLS calls,
    /// DNS, accept owners, mmap reports) and can stay off while no selected
    /// process is followed. They run only on socket I/O, and leave at once
    /// for other processes while none is alive (`sel_live`).
    fn sock_io_hooks(&mut self) -> Result<(), BpfError> {
        let p = &self.skel.progs;
        let mut links = Vec::new();
        for (name, prog) in [
            ("tp_btf/sock_send_length", &p.tls_sock_send),
            ("tp_btf/sock_recv_length", &p.tls_sock_recv),
        ] {
            links.push(prog.attach().map_err(lb(format!("attach {name}")))?);
        }
        self._links.extend(links);
        if let Some(bss) = self.skel.maps.bss_data.as_deref_mut() {
            bss.sock_io_on = 1;
        }
        self.sock_io_on = true;
        Ok(())
    }

    /// Whether TLS calls are tied to their sockets without the syscall
    /// tracepoints ([`Sensor::sock_io_hooks`]): a process filter then
    /// needs those only while a selected process is followed.
    pub fn sock_io_hooks_on(&self) -> bool {
        self.sock_io_on
    }

    pub fn syscall_hooks(&mut self, on: bool) -> Result<(), BpfError> {
        if !on {
            crate::sensor::release_links(std::mem::take(&mut self.syscall_links));
            return Ok(());
        }
        if !self.syscall_links.is_empty() {
            return Ok(());
        }
        let p = &self.skel.progs;
        let mut links = Vec::new();
        for (name, prog) in [
            ("syscalls/sys_enter_write", &p.sys_enter_write),
            ("syscalls/sys_enter_writev", &p.sys_enter_writev),
            ("syscalls/sys_enter_sendto", &p.sys_enter_sendto),
            ("syscalls/sys_enter_sendmsg", &p.sys_enter_sendmsg),
            ("syscalls/sys_enter_read", &p.sys_enter_read),
            ("syscalls/sys_enter_readv", &p.sys_enter_readv),
            ("syscalls/sys_enter_recvfrom", &p.sys_enter_recvfrom),
            ("syscalls/sys_enter_recvmsg", &p.sys_enter_recvmsg),
            // DNS queries sent in batches (glibc's parallel A + AAAA):
            // bpf/plain.bpf.c.
            ("syscalls/sys_enter_sendmmsg", &p.sys_enter_sendmmsg),
            ("syscalls/sys_exit_sendmmsg", &p.sys_exit_sendmmsg),
            // DNS answers read in batches (recvmmsg): bpf/plain.bpf.c.
            ("syscalls/sys_enter_recvmmsg", &p.sys_enter_recvmmsg),
            ("syscalls/sys_exit_recvmmsg", &p.sys_exit_recvmmsg),
            ("syscalls/sys_enter_mmap", &p.mmap_enter),
            ("syscalls/sys_exit_mmap", &p.mmap_exit),
            // Connections (conn.bpf.c): the accepting process owns the socket.
            // Here, not with sock_ops, so that a process filter keeps every
            // syscall tracepoint off while no selected process lives; a
            // lookup per accept when connection events are off.
            ("syscalls/sys_exit_accept4", &p.conn_accept4),
            ("syscalls/sys_exit_accept", &p.conn_accept),
        ] {
            links.push(prog.attach().map_err(lb(format!("attach {name}")))?);
        }
        // One program on the exits of the eight socket syscalls
        // (bpf/tls.bpf.c sys_exit_sock).
        for name in [
            "sys_exit_write",
            "sys_exit_writev",
            "sys_exit_sendto",
            "sys_exit_sendmsg",
            "sys_exit_read",
            "sys_exit_readv",
            "sys_exit_recvfrom",
            "sys_exit_recvmsg",
        ] {
            links.push(
                p.sys_exit_sock
                    .attach_tracepoint(libbpf_rs::TracepointCategory::Syscalls, name)
                    .map_err(lb(format!("attach syscalls/{name}")))?,
            );
        }
        self.syscall_links = links;
        Ok(())
    }

    /// Run the TCP iterator once: connections that predate weft get their
    /// socket cookie assigned and their role (client/server) recorded.
    fn seed_existing_connections(&mut self) -> Result<(), BpfError> {
        let link = self
            .skel
            .progs
            .seed_tcp
            .attach()
            .map_err(lb("attach the TCP iterator"))?;
        let mut it = Iter::new(&link).map_err(lb("start the TCP iterator"))?;
        let mut sink = Vec::new();
        it.read_to_end(&mut sink).map_err(|e| BpfError::Libbpf {
            what: "run the TCP iterator".into(),
            source: libbpf_rs::Error::from(e),
        })?;
        Ok(())
    }

    /// Attach the probes for one TLS library file. `points` holds the
    /// functions found in it; `lib` is its `weft_lib` id (passed to the
    /// programs as the attach cookie). Functions without a hook for that
    /// library are ignored. Returns how many uprobes were attached; files
    /// already attached are skipped (0). On error nothing stays attached.
    pub fn attach_library(
        &mut self,
        path: &Path,
        points: &[ProbePoint],
        lib: u64,
    ) -> Result<usize, BpfError> {
        self.attach_library_for(None, path, points, lib)
    }

    /// [`Sensor::attach_library`] for one process only (`Some(pid)`): no
    /// other process gets a breakpoint. Skipped (0) when that file already
    /// has links for that process.
    pub fn attach_library_for(
        &mut self,
        pid: Option<u32>,
        path: &Path,
        points: &[ProbePoint],
        lib: u64,
    ) -> Result<usize, BpfError> {
        let key = (path.to_path_buf(), pid);
        if self.uprobes.contains_key(&key) {
            return Ok(0);
        }
        let hooks: Vec<(&ProbePoint, Hook)> = points
            .iter()
            .filter_map(|p| hook_for(lib, &p.symbol).map(|h| (p, h)))
            .filter(|(_, h)| !matches!(h, Hook::Keylog | Hook::BoringKeylog) || self.keylog)
            .collect();
        let has = |h: Hook| hooks.iter().any(|(_, x)| *x == h);
        let data_hooks = |w: Hook, r: Hook| has(w) && has(r);
        if !(data_hooks(Hook::Write, Hook::Read) || data_hooks(Hook::NsprWrite, Hook::NsprRead)) {
            return Err(BpfError::Config(format!(
                "{} has no write/read function weft can probe",
                path.display()
            )));
        }
        // One uprobe.multi link per program: its points and their cookies.
        // `None` stands for the shared return program.
        let mut groups: Vec<(Option<Hook>, Vec<usize>)> = Vec::new();
        // BoringSSL key-log points: one link each, its cookie its offsets.
        let mut boring_keylog: Vec<(usize, u64)> = Vec::new();
        for (point, hook) in &hooks {
            let off = point.offset as usize;
            if *hook == Hook::BoringKeylog {
                if let Some(c) = boring_keylog_cookie(&point.symbol) {
                    boring_keylog.push((off, c));
                }
                continue;
            }
            let mut push = |key: Option<Hook>| match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, offs)) => offs.push(off),
                None => groups.push((key, vec![off])),
            };
            match hook {
                Hook::Free | Hook::Keylog => {}
                Hook::AlpnSelected => push(Some(Hook::AlpnSelectedReturn)),
                _ => push(None),
            }
            push(Some(*hook));
        }
        // Returns first: by the time an entry fires, its return is watched.
        let is_return = |k: &Option<Hook>| matches!(k, None | Some(Hook::AlpnSelectedReturn));
        groups.sort_by_key(|(k, _)| !is_return(k));
        let progs = &self.skel.progs;
        let mut links = Vec::new();
        let mut probes = 0;
        for (key, offsets) in groups {
            let prog = match key {
                None => &progs.ssl_ret,
                Some(Hook::Write) => &progs.ssl_write_enter,
                Some(Hook::Read) => &progs.ssl_read_enter,
                Some(Hook::WriteEx) => &progs.ssl_write_ex_enter,
                Some(Hook::ReadEx) => &progs.ssl_read_ex_enter,
                Some(Hook::Handshake) => &progs.ssl_handshake_enter,
                Some(Hook::Free) => &progs.ssl_free_enter,
                Some(Hook::NsprWrite) => &progs.nspr_write_enter,
                Some(Hook::NsprRead) => &progs.nspr_read_enter,
                Some(Hook::NsprRecv) => &progs.nspr_recv_enter,
                Some(Hook::Keylog) => &progs.ssl_keylog_enter,
                Some(Hook::AlpnSelected) => &progs.ssl_alpn_enter,
                Some(Hook::AlpnSelectedReturn) => &progs.ssl_alpn_ret,
                Some(Hook::BoringKeylog) => continue,
            };
            probes += offsets.len();
            links.push(attach_multi(
                prog,
                pid,
                path,
                offsets,
                lib,
                is_return(&key),
            )?);
        }
        for (off, cookie) in boring_keylog {
            probes += 1;
            links.push(attach_multi(
                &progs.boring_keylog_enter,
                pid,
                path,
                vec![off],
                cookie,
                false,
            )?);
        }
        self.count_probes(pid, probes);
        self.uprobes.insert((path.to_path_buf(), pid), links);
        Ok(probes)
    }

    /// Whether `symbol` of library `lib` gets a probe from `attach_library`
    /// (the key-log hook only with `--keylog`).
    pub fn probes(&self, lib: u64, symbol: &str) -> bool {
        hook_for(lib, symbol)
            .is_some_and(|h| !matches!(h, Hook::Keylog | Hook::BoringKeylog) || self.keylog)
    }

    /// The loaded skeleton (for sibling modules of this crate).
    pub(crate) fn skel(&self) -> &WeftSkel<'static> {
        &self.skel
    }

    /// Uprobes attached so far.
    pub fn uprobe_count(&self) -> usize {
        self.uprobe_count
    }

    /// Files with uprobes (a file probed for several processes counts once
    /// per process).
    pub fn attached_files(&self) -> usize {
        self.uprobes.len()
    }

    /// Take the links of process `pid` out of the sensor (it exited). The
    /// caller drops them, ideally with [`release_links`] off its hot path:
    /// each detach waits for an RCU grace period.
    pub fn detach_pid(&mut self, pid: u32) -> Vec<Link> {
        let probes = self.pid_probes.remove(&pid).unwrap_or(0);
        self.uprobe_count = self.uprobe_count.saturating_sub(probes);
        let keys: Vec<UprobeKey> = self
            .uprobes
            .keys()
            .filter(|(_, p)| *p == Some(pid))
            .cloned()
            .collect();
        let mut out = Vec::new();
        for k in keys {
            if let Some(links) = self.uprobes.remove(&k) {
                out.extend(links);
            }
        }
        out
    }

    pub(crate) fn count_probes(&mut self, pid: Option<u32>, probes: usize) {
        self.uprobe_count += probes;
        if let Some(pid) = pid {
            *self.pid_probes.entry(pid).or_default() += probes;
        }
    }

    /// Is `pid` in the kernel's pid filter (`--pid`, or `--tree` and its
    /// descendants, which the kernel adds as they fork)?
    pub fn pid_in_filter(&self, pid: u32) -> bool {
        matches!(
            self.skel
                .maps
                .filter_pids
                .lookup(&pid.to_ne_bytes(), MapFlags::ANY),
            Ok(Some(_))
        )
    }

    /// Processes that have links of their own.
    pub fn attached_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.uprobes.keys().filter_map(|(_, p)| *p).collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Tell the kernel side a file was inspected (kernel `s_dev` encoding),
    /// so its executions and mappings are not reported again.
    pub fn mark_seen(&self, kdev: u64, ino: u64) {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&kdev.to_ne_bytes());
        key[8..].copy_from_slice(&ino.to_ne_bytes());
        if let Err(e) = self
            .skel
            .maps
            .seen_files
            .update(&key, &[1u8], MapFlags::ANY)
        {
            tracing::debug!(error = %e, "cannot mark file as seen");
        }
    }

    /// A ring-buffer reader calling `cb` with each raw record (the data
    /// mapped once: see [`crate::ring`]).
    pub fn ring_buffer<F>(&self, cb: F) -> Result<Ring<F>, BpfError>
    where
        F: FnMut(&[u8]) -> i32,
    {
        let map = &self.skel.maps.events;
        Ring::new(std::os::fd::AsFd::as_fd(map), map.max_entries(), cb)
    }

    /// The kernel side's counters, summed over CPUs.
    pub fn kernel_stats(&self) -> KernelStats {
        let mut out = Vec::new();
        for (i, name) in abi::STAT_NAMES.iter().enumerate() {
            let key = (i as u32).to_ne_bytes();
            let sum = match self.skel.maps.stats.lookup_percpu(&key, MapFlags::ANY) {
                Ok(Some(vals)) => vals
                    .iter()
                    .filter_map(|v| v.get(..8))
                    .map(|v| {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(v);
                        u64::from_ne_bytes(a)
                    })
                    .sum(),
                _ => 0,
            };
            out.push((*name, sum));
        }
        out.push(("lost_calls_untold", self.lost_calls_untold()));
        out
    }

    /// Calls whose records were lost (ring full) that no call or end record
    /// of their connection has told yet (`lost_untold` in bpf/common.bpf.h):
    /// at the end, the losses of connections that made no call after them.
    fn lost_calls_untold(&self) -> u64 {
        self.skel
            .maps
            .bss_data
            .as_deref()
            .map_or(0, |b| b.lost_untold)
    }
}

impl Drop for Sensor {
    /// Detach the uprobes in parallel: each detach waits for an RCU grace
    /// period, and concurrent waits share one, so N links cost about one
    /// grace period instead of N (on the 6.18 VM: ~0.1 s instead of ~20 s
    /// for 200 classic uprobes).
    fn drop(&mut self) {
        let links: Vec<Link> = self.uprobes.drain().flat_map(|(_, v)| v).collect();
        drop_links_in_parallel(links);
    }
}

/// Detach `links` on a thread of their own (in parallel, see
/// [`drop_links_in_parallel`]) so that the caller does not wait for the
/// grace periods. Links not yet released when weft exits die with its file
/// descriptors.
pub fn release_links(links: Vec<Link>) {
    if links.is_empty() {
        return;
    }
    if let Err(e) = std::thread::Builder::new()
        .name("weft-release".into())
        .spawn(move || drop_links_in_parallel(links))
    {
        // No thread: the links were dropped with the closure, serially.
        tracing::debug!(error = %e, "no thread to release links");
    }
}

/// Drop links concurrently: each detach waits for an RCU grace period, and
/// concurrent waits share one.
pub fn drop_links_in_parallel(links: Vec<Link>) {
    if links.is_empty() {
        return;
    }
    const MAX_THREADS: usize = 256;
    let per = links.len().div_ceil(MAX_THREADS);
    let mut batches: Vec<Vec<Link>> = Vec::new();
    let mut it = links.into_iter().peekable();
    while it.peek().is_some() {
        batches.push(it.by_ref().take(per).collect());
    }
    std::thread::scope(|s| {
        for batch in batches {
            if std::thread::Builder::new()
                .name("weft-detach".into())
                .spawn_scoped(s, move || drop(batch))
                .is_err()
            {
                // No thread: the batch was dropped here, serially.
            }
        }
    });
}

/// Limit glibc's malloc to `n` arenas (it makes up to eight per CPU, one
/// per thread that contends). weft's threads allocate per event; with one
/// arena each, memory freed when thousands of connections closed stayed
/// scattered over every arena and `malloc_trim` could not return it (5,000
/// HTTP/2 connections: 34 MiB of heap kept after they closed, 16 MiB with
/// two arenas; benches/memory.sh). Small allocations go through the
/// per-thread cache without taking an arena lock either way. Call before
/// starting threads; an environment `MALLOC_ARENA_MAX` wins.
pub fn limit_malloc_arenas(n: i32) {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: mallopt only sets a tunable of the allocator; M_ARENA_MAX
    // takes effect for arenas created later.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, n);
    }
}

/// Fix glibc's mmap and trim thresholds instead of letting them grow. By
/// default a freed large block (start-up's file reads: ELF tables, Go
/// pclntabs of several MiB) raises the mmap threshold to its size and the
/// trim threshold to twice that, so later large blocks stay in the heap and
/// the top of a thread's arena is never given back (`malloc_trim` trims
/// only the main arena's top): 18 MiB of idle RSS once the installed files
/// were scanned on their own thread, and bursts of 20-30 MiB under load
/// (benches/memory.sh). With fixed thresholds, blocks of 4 MiB and more
/// are mapped and unmapped whole, and a heap top over 4 MiB is given back.
/// Lower mmap thresholds (512 KiB-2 MiB) cost the replay of 64 KiB bodies
/// 10-20 % more CPU (blocks of that size are made per event there). Call
/// before starting threads; the environment's
/// `MALLOC_MMAP_THRESHOLD_`/`MALLOC_TRIM_THRESHOLD_` win.
pub fn fix_malloc_thresholds() {
    // SAFETY: mallopt only sets tunables of the allocator.
    unsafe {
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 4 * 1024 * 1024);
        }
        if std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_none() {
            libc::mallopt(libc::M_TRIM_THRESHOLD, 4 * 1024 * 1024);
        }
    }
}

/// The ids of this process's threads now.
fn own_threads() -> std::io::Result<Vec<libc::pid_t>> {
    let mut tids = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task")? {
        if let Some(tid) = entry?
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<libc::pid_t>().ok())
        {
            tids.push(tid);
        }
    }
    Ok(tids)
}

/// Put every thread of this process, and the threads they start later, in
/// the idle scheduling class (SCHED_IDLE): they run only on CPU time
/// nothing else wants (`weft --background`).
pub fn run_in_background() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    for tid in own_threads()? {
        // SAFETY: sched_setscheduler reads `param` only.
        if unsafe { libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param) } != 0 {
            let e = std::io::Error::last_os_error();
            // A thread that ended meanwhile is no error.
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The scheduler time slice weft's threads ask for (EEVDF's per-task slice,
/// Linux 6.12+; 0.1 ms is the least the kernel grants): see
/// [`request_short_slices`].
pub const SLICE_NS: u64 = 100_000;

/// Ask the scheduler for short time slices ([`SLICE_NS`] instead of its
/// default of a few ms) for every thread of this process: when weft's
/// threads compete with the processes they watch for a CPU, they give it
/// back sooner, so a traced server or client waits ~0.1 ms behind weft at a
/// time, not a whole default slice: its request loop stalls less (wrk's
/// 99th-percentile latency under weft 1.8-3.3 ms before, 0.5-0.6 ms with
/// this and the capped wake-up threshold; docs/performance.md, session 12),
/// and weft's share of the CPU is unchanged. Kernels before 6.12 ignore the
/// request for this scheduling class. Returns the threads that refused it.
pub fn request_short_slices() -> std::io::Result<usize> {
    // struct sched_attr (include/uapi/linux/sched/types.h), first version
    // plus utilization clamps: 56 bytes.
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        sched_policy: u32,
        sched_flags: u64,
        sched_nice: i32,
        sched_priority: u32,
        sched_runtime: u64,
        sched_deadline: u64,
        sched_period: u64,
        sched_util_min: u32,
        sched_util_max: u32,
    }
    let mut refused = 0;
    for tid in own_threads()? {
        // Keep each thread's policy and nice value (--background's
        // SCHED_IDLE has no slice: it is left alone).
        // SAFETY: sched_getscheduler takes a thread id and reads nothing.
        let policy = unsafe { libc::sched_getscheduler(tid) };
        if policy != libc::SCHED_OTHER {
            continue;
        }
        // SAFETY: getpriority reads nothing; errno is cleared first so that
        // a nice value of -1 is told from an error.
        let nice = unsafe {
            *libc::__errno_location() = 0;
            libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t)
        };
        // An error would otherwise pass -1 on as the thread's nice value.
        match std::io::Error::last_os_error().raw_os_error() {
            Some(0) | None => {}
            // A thread that ended meanwhile.
            Some(libc::ESRCH) => continue,
            Some(_) => {
                refused += 1;
                continue;
            }
        }
        let attr = SchedAttr {
            size: std::mem::size_of::<SchedAttr>() as u32,
            sched_policy: libc::SCHED_OTHER as u32,
            sched_flags: 0,
            sched_nice: nice,
            sched_priority: 0,
            sched_runtime: SLICE_NS,
            sched_deadline: 0,
            sched_period: 0,
            sched_util_min: 0,
            sched_util_max: 0,
        };
        // SAFETY: sched_setattr reads `attr.size` bytes of `attr`, which is
        // exactly that long.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_sched_setattr,
                tid,
                &attr as *const SchedAttr,
                0u32,
            )
        };
        if rc != 0 {
            match std::io::Error::last_os_error().raw_os_error() {
                // A thread that ended meanwhile.
                Some(libc::ESRCH) => {}
                _ => refused += 1,
            }
        }
    }
    Ok(refused)
}

/// Give memory freed by start-up work (ELF tables of large executables,
/// pclntabs of Go programs) back to the system: the allocator keeps it
/// otherwise, and a sensor's resident size is what people see.
pub fn release_free_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Poll helper with a bounded wait, so callers can check for signals.
/// Records submitted without a wake-up (all but the one that crosses the
/// wake-up threshold, see `ring_wakeup()` in bpf/common.bpf.h) are read by
/// the `consume` that follows every poll, woken or timed out.
/// Returns the ring bytes read.
pub fn poll<F: FnMut(&[u8]) -> i32>(rb: &mut Ring<F>, timeout: Duration) -> Result<u64, BpfError> {
    rb.poll(timeout)
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// CPU time this process used so far, all threads, in nanoseconds: what
/// "per core" figures divide by.
pub fn process_cpu_ns() -> u64 {
    u64::try_from(clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID)).unwrap_or(0)
}

/// Offset to add to a CLOCK_MONOTONIC time (the BPF clock) to get Unix
/// nanoseconds.
pub fn monotonic_to_unix_offset_ns() -> i128 {
    let now = clock_ns;
    let mono1 = now(libc::CLOCK_MONOTONIC);
    let real = now(libc::CLOCK_REALTIME);
    let mono2 = now(libc::CLOCK_MONOTONIC);
    real - (mono1 + mono2) / 2
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic
mod boring_keylog_tests {
    use super::*;

    #[test]
    fn boring_keylog_point_names_carry_the_offsets() {
        let c = boring_keylog_cookie("ssl_log_secret@s3=0x30@client_random=0x30").unwrap();
        assert_eq!(c & 0xff, abi::LIB_BORINGSSL);
        assert_eq!((c >> 16) & 0xffff, 0x30);
        assert_eq!((c >> 32) & 0xffff, 0x30);
        assert_eq!(
            hook_for(
                abi::LIB_BORINGSSL,
                "ssl_log_secret@s3=0x30@client_random=0x30"
            ),
            Some(Hook::BoringKeylog)
        );
        // Only BoringSSL, only well-formed names, only offsets that fit.
        assert_eq!(
            hook_for(
                abi::LIB_OPENSSL,
                "ssl_log_secret@s3=0x30@client_random=0x30"
            ),
            None
        );
        for bad in [
            "ssl_log_secret",
            "ssl_log_secret@s3=0x30",
            "ssl_log_secret@s3=0xzz@client_random=0x30",
            "ssl_log_secret@s3=0x10000@client_random=0x30",
            "ssl_log_secret@s3=0x30@client_random=0xfff0",
        ] {
            assert_eq!(boring_keylog_cookie(bad), None, "{bad}");
        }
    }
}

#[cfg(test)]
mod reserve_tests {
    #[test]
    fn call_reserve_is_a_64th_within_bounds() {
        use super::call_reserve;
        assert_eq!(call_reserve(16 << 20), 256 << 10);
        assert_eq!(call_reserve(256 << 10), 64 << 10);
        assert_eq!(call_reserve(4096), 1024);
        assert_eq!(call_reserve(1 << 20), 64 << 10);
        assert_eq!(call_reserve(64 << 20), 1 << 20);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic
mod scheduling_tests {
    use super::*;

    #[test]
    fn wakeup_threshold_is_an_eighth_of_the_ring_capped() {
        assert_eq!(wakeup_bytes(16 << 20), WAKEUP_MAX);
        assert_eq!(wakeup_bytes(1 << 20), WAKEUP_MAX);
        assert_eq!(wakeup_bytes(512 << 10), 64 << 10);
        assert_eq!(wakeup_bytes(4096), 512);
    }

    /// This thread's `/proc` task directory.
    fn this_task() -> std::path::PathBuf {
        std::path::Path::new("/proc").join(std::fs::read_link("/proc/thread-self").unwrap())
    }

    /// The slice of a thread, from the scheduler's debug view (`se.slice`,
    /// in ns); `None` where the kernel does not show it.
    fn slice(task: &std::path::Path) -> Option<u64> {
        let text = std::fs::read_to_string(task.join("sched")).ok()?;
        text.lines()
            .find(|l| l.starts_with("se.slice"))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.trim().parse().ok())
    }

    #[test]
    fn every_thread_gets_the_short_slice() {
        // A second thread, alive while the slices are requested and read
        // (only these two are checked: the test harness starts and ends
        // its own threads meanwhile).
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (task_tx, task_rx) = std::sync::mpsc::channel();
        let other = std::thread::spawn(move || {
            task_tx.send(this_task()).unwrap();
            let _ = rx.recv();
        });
        let tasks = [this_task(), task_rx.recv().unwrap()];
        let before: Vec<_> = tasks.iter().map(|t| slice(t)).collect();
        let refused = request_short_slices().unwrap();
        let seen: Vec<_> = tasks.iter().map(|t| (t.clone(), slice(t))).collect();
        tx.send(()).unwrap();
        other.join().unwrap();
        assert_eq!(refused, 0, "a thread refused the slice");
        if seen.iter().all(|(_, s)| s.is_none()) {
            eprintln!("this kernel shows no se.slice in /proc: slices not checked");
            return;
        }
        assert!(before.iter().all(|s| *s != Some(SLICE_NS)), "{before:?}");
        for (task, s) in &seen {
            assert_eq!(*s, Some(SLICE_NS), "{}", task.display());
        }
    }
}
