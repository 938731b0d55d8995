//! Packet-path attachment: the TC programs (tcx links, ingress and egress)
//! and, opt-in, XDP, on the interfaces of every network namespace, followed
//! as interfaces and namespaces come and go.
//!
//! One thread (`weft-netdev`) owns every link. Interface indexes are per
//! namespace, so it enters each namespace with `setns` (only this thread
//! moves), makes the links there and opens a rtnetlink socket bound to that
//! namespace (RTM_NEWLINK/RTM_DELLINK). Namespaces are found at start and
//! rescanned every `rescan` (default 1 s): weft's own, `ip netns` ones
//! (`/run/netns/*`) and every process' (`/proc/*/ns/net`, by inode). A
//! namespace no longer found is let go (its descriptors closed), so weft
//! never keeps a dead container's namespace alive for longer than that.
//! Links are file descriptors: they go when weft exits, also on SIGKILL.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::{Duration, Instant};

use libbpf_rs::libbpf_sys;

use crate::sensor::{BpfError, Sensor};

/// `--xdp`: how the XDP program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// In the kernel's generic receive path (`XDP_FLAGS_SKB_MODE`).
    Generic,
    /// On the NIC itself (`XDP_FLAGS_HW_MODE`).
    Offload,
}

impl XdpMode {
    pub fn parse(s: &str) -> Result<XdpMode, String> {
        match s {
            "native" => Ok(XdpMode::Native),
            "generic" => Ok(XdpMode::Generic),
            "offload" => Ok(XdpMode::Offload),
            _ => Err(format!(
                "unknown XDP mode {s:?} (use native, generic or offload)"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
            XdpMode::Offload => "offload",
        }
    }

    fn flags(self) -> u32 {
        match self {
            XdpMode::Native => libbpf_sys::XDP_FLAGS_DRV_MODE,
            XdpMode::Generic => libbpf_sys::XDP_FLAGS_SKB_MODE,
            XdpMode::Offload => libbpf_sys::XDP_FLAGS_HW_MODE,
        }
    }
}

/// `--interface`: which interfaces get programs. Patterns are globs (`*`,
/// `?`); `!PATTERN` excludes. No include pattern = every interface.
#[derive(Debug, Clone, Default)]
pub struct IfFilter {
    include: Vec<String>,
    exclude: Vec<String>,
}

impl IfFilter {
    pub fn new(specs: &[String]) -> Result<IfFilter, BpfError> {
        let mut f = IfFilter::default();
        for s in specs {
            let (list, pat) = match s.strip_prefix('!') {
                Some(p) => (&mut f.exclude, p),
                None => (&mut f.include, s.as_str()),
            };
            if pat.is_empty() || pat.len() > 64 || pat.contains(['/', '\0']) {
                return Err(BpfError::Config(format!(
                    "--interface {s:?}: an interface name or glob (`veth*`), `!` to exclude"
                )));
            }
            list.push(pat.to_string());
        }
        Ok(f)
    }

    pub fn matches(&self, name: &str) -> bool {
        let n = name.as_bytes();
        (self.include.is_empty() || self.include.iter().any(|p| glob(p.as_bytes(), n)))
            && !self.exclude.iter().any(|p| glob(p.as_bytes(), n))
    }
}

/// Shell-style glob with `*` and `?`, iterative (no recursion, linear-ish).
pub fn glob(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// What the packet path attaches.
#[derive(Debug, Clone)]
pub struct NetdevConfig {
    pub filter: IfFilter,
    /// `--xdp`: XDP on receive instead of TC ingress.
    pub xdp: Option<XdpMode>,
    /// How often namespaces are rescanned.
    pub rescan: Duration,
    /// Use clsact filters even where tcx works (tests of the fallback).
    pub force_clsact: bool,
}

/// What the statistics show about the packet path.
#[derive(Debug, Clone, Default)]
pub struct NetdevReport {
    /// `netns 4026531840 (name) lo: tc egress`, bounded.
    pub attached: Vec<String>,
    /// Interfaces that got programs, over the whole run.
    pub interfaces: u64,
    /// Namespaces watched now.
    pub namespaces: u64,
    /// Attach failures by reason.
    pub failures: BTreeMap<&'static str, u64>,
    /// One line per failure, bounded.
    pub failure_lines: Vec<String>,
}

const REPORT_MAX: usize = 64;

#[derive(Default)]
struct Shared {
    /// (netns inode, ifindex) -> interface name.
    names: RwLock<HashMap<(u64, u32), String>>,
    /// netns inode -> `ip netns` name.
    ns_names: RwLock<HashMap<u64, String>>,
    report: Mutex<NetdevReport>,
}

impl Shared {
    fn fail(&self, reason: &'static str, line: String) {
        tracing::warn!("{line}");
        if let Ok(mut r) = self.report.lock() {
            *r.failures.entry(reason).or_default() += 1;
            if r.failure_lines.len() < REPORT_MAX {
                r.failure_lines.push(line);
            }
        }
    }
}

/// Names for flow events: read by the flow reporter, kept by the thread.
#[derive(Clone)]
pub struct NetdevNames(Arc<Shared>);

impl NetdevNames {
    /// The interface's name, if weft attached to it (also after it went).
    pub fn interface(&self, netns: u64, ifindex: u32) -> Option<String> {
        self.0.names.read().ok()?.get(&(netns, ifindex)).cloned()
    }
    /// The namespace's `ip netns` name, if it has one.
    pub fn netns(&self, netns: u64) -> Option<String> {
        self.0.ns_names.read().ok()?.get(&netns).cloned()
    }
}

/// The packet path's attachments; dropping it (or [`Netdev::stop`])
/// detaches everything.
pub struct Netdev {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
}

struct Progs {
    ingress: OwnedFd,
    egress: OwnedFd,
    xdp: OwnedFd,
}

impl Netdev {
    /// Attach to every matching interface of every namespace now (an
    /// error, such as XDP the driver cannot do, leaves nothing attached),
    /// then follow them on a thread of their own.
    pub fn start(sensor: &Sensor, cfg: NetdevConfig) -> Result<Netdev, BpfError> {
        let dup = |fd: BorrowedFd<'_>, what: &str| {
            fd.try_clone_to_owned().map_err(|e| {
                BpfError::Config(format!(
                    "cannot duplicate the {what} program's descriptor: {e}"
                ))
            })
        };
        let p = &sensor.skel().progs;
        let progs = Progs {
            ingress: dup(p.weft_tc_ingress.as_fd(), "TC ingress")?,
            egress: dup(p.weft_tc_egress.as_fd(), "TC egress")?,
            xdp: dup(p.weft_xdp.as_fd(), "XDP")?,
        };
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), BpfError>>();
        let th_shared = Arc::clone(&shared);
        let th_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("weft-netdev".into())
            .spawn(move || {
                let mut w = match Watcher::new(cfg, progs, th_shared) {
                    Ok(w) => w,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                if let Err(e) = w.rescan(true) {
                    w.release();
                    let _ = ready_tx.send(Err(e));
                    return;
                }
                let _ = ready_tx.send(Ok(()));
                w.run(&th_stop);
                w.release();
            })
            .map_err(|e| BpfError::Config(format!("cannot start the netdev thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Netdev {
                stop,
                thread: Some(thread),
                shared,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(BpfError::Config(
                    "the netdev thread ended before attaching".into(),
                ))
            }
        }
    }

    pub fn names(&self) -> NetdevNames {
        NetdevNames(Arc::clone(&self.shared))
    }

    pub fn report(&self) -> NetdevReport {
        self.shared
            .report
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Detach everything and wait for it.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Netdev {
    fn drop(&mut self) {
        self.halt();
    }
}

struct Iface {
    name: String,
    _links: Vec<OwnedFd>,
    /// clsact filters (no tcx): they outlive weft, so they are removed
    /// explicitly at exit.
    clsact: Option<Clsact>,
}

/// What weft added to one interface's clsact qdisc.
struct Clsact {
    ifindex: u32,
    /// `BPF_TC_INGRESS` / `BPF_TC_EGRESS` filters weft attached.
    points: Vec<libbpf_sys::bpf_tc_attach_point>,
    /// weft created the qdisc itself (it then removes it too).
    created: bool,
}

/// Handle and priority of weft's clsact filters ("we").
const CLSACT_HANDLE: u32 = 0x7765;
const CLSACT_PRIORITY: u32 = 0x7765;

fn tc_hook(ifindex: u32, point: libbpf_sys::bpf_tc_attach_point) -> libbpf_sys::bpf_tc_hook {
    libbpf_sys::bpf_tc_hook {
        sz: std::mem::size_of::<libbpf_sys::bpf_tc_hook>() as _,
        ifindex: ifindex as i32,
        attach_point: point,
        ..Default::default()
    }
}

fn tc_opts(prog: Option<BorrowedFd<'_>>) -> libbpf_sys::bpf_tc_opts {
    libbpf_sys::bpf_tc_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_tc_opts>() as _,
        prog_fd: prog.map_or(0, |p| p.as_raw_fd()),
        handle: CLSACT_HANDLE,
        priority: CLSACT_PRIORITY,
        ..Default::default()
    }
}

impl Clsact {
    /// Make sure the interface has a clsact qdisc (remembering whether
    /// weft made it), in the calling thread's namespace.
    fn new(ifindex: u32) -> io::Result<Clsact> {
        let mut hook = tc_hook(
            ifindex,
            libbpf_sys::BPF_TC_INGRESS | libbpf_sys::BPF_TC_EGRESS,
        );
        // SAFETY: a valid, sized bpf_tc_hook; libbpf talks rtnetlink.
        let rc = unsafe { libbpf_sys::bpf_tc_hook_create(&mut hook) };
        let created = match rc {
            0 => true,
            e if -e == libc::EEXIST => false,
            e => return Err(io::Error::from_raw_os_error(-e)),
        };
        Ok(Clsact {
            ifindex,
            points: Vec::new(),
            created,
        })
    }

    /// Add weft's filter on `point` (never replacing one with weft's handle
    /// and priority that someone else made).
    fn attach(
        &mut self,
        prog: BorrowedFd<'_>,
        point: libbpf_sys::bpf_tc_attach_point,
    ) -> io::Result<()> {
        let hook = tc_hook(self.ifindex, point);
        let mut opts = tc_opts(Some(prog));
        // SAFETY: valid hook and options of their sizes.
        let rc = unsafe { libbpf_sys::bpf_tc_attach(&hook, &mut opts) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(-rc));
        }
        self.points.push(point);
        Ok(())
    }

    /// Remove exactly what weft added, in the interface's namespace.
    fn remove(&self) {
        for &point in &self.points {
            let hook = tc_hook(self.ifindex, point);
            let opts = tc_opts(None);
            // SAFETY: valid hook and options; detach by handle/priority.
            let rc = unsafe { libbpf_sys::bpf_tc_detach(&hook, &opts) };
            if rc != 0 {
                tracing::warn!(
                    ifindex = self.ifindex,
                    "cannot remove weft's clsact filter: {}",
                    io::Error::from_raw_os_error(-rc)
                );
            }
        }
        if self.created {
            let mut hook = tc_hook(
                self.ifindex,
                libbpf_sys::BPF_TC_INGRESS | libbpf_sys::BPF_TC_EGRESS,
            );
            // SAFETY: as above; removes the clsact qdisc weft created.
            unsafe { libbpf_sys::bpf_tc_hook_destroy(&mut hook) };
        }
    }
}

struct Ns {
    name: Option<String>,
    fd: OwnedFd,
    nl: OwnedFd,
    ifaces: HashMap<u32, Iface>,
}

struct Watcher {
    cfg: NetdevConfig,
    progs: Progs,
    shared: Arc<Shared>,
    home: OwnedFd,
    spaces: HashMap<u64, Ns>,
    buf: Vec<u8>,
}

const IFF_LOOPBACK: u32 = 0x8;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const IFLA_IFNAME: u16 = 3;
const RTMGRP_LINK: u32 = 1;

/// One RTM_NEWLINK/RTM_DELLINK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkMsg {
    pub new: bool,
    pub index: u32,
    pub flags: u32,
    pub name: Option<String>,
}

/// Parse a buffer of rtnetlink messages; never panics. Returns the link
/// messages (AF_UNSPEC family only: bridge-port messages are skipped) and
/// whether the dump ended (NLMSG_DONE or an error).
pub fn parse_links(mut b: &[u8]) -> (Vec<LinkMsg>, bool) {
    let mut out = Vec::new();
    let mut done = false;
    while b.len() >= 16 {
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let ty = u16::from_ne_bytes([b[4], b[5]]);
        if len < 16 || len > b.len() {
            break;
        }
        let body = &b[16..len];
        match ty {
            NLMSG_DONE | NLMSG_ERROR => done = true,
            RTM_NEWLINK | RTM_DELLINK if body.len() >= 16 && body[0] == 0 => {
                let index = u32::from_ne_bytes([body[4], body[5], body[6], body[7]]);
                let flags = u32::from_ne_bytes([body[8], body[9], body[10], body[11]]);
                let mut name = None;
                let mut a = &body[16..];
                while a.len() >= 4 {
                    let alen = u16::from_ne_bytes([a[0], a[1]]) as usize;
                    let aty = u16::from_ne_bytes([a[2], a[3]]) & 0x3fff;
                    if alen < 4 || alen > a.len() {
                        break;
                    }
                    if aty == IFLA_IFNAME {
                        let v = &a[4..alen];
                        let v = v.split(|&c| c == 0).next().unwrap_or(&[]);
                        name = Some(String::from_utf8_lossy(v).into_owned());
                    }
                    let step = (alen + 3) & !3;
                    a = a.get(step..).unwrap_or(&[]);
                }
                out.push(LinkMsg {
                    new: ty == RTM_NEWLINK,
                    index,
                    flags,
                    name,
                });
            }
            _ => {}
        }
        let step = (len + 3) & !3;
        b = b.get(step..).unwrap_or(&[]);
    }
    (out, done)
}

fn last_err() -> io::Error {
    io::Error::last_os_error()
}

fn setns(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: setns on a valid namespace fd; affects this thread only.
    if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(last_err());
    }
    Ok(())
}

/// A rtnetlink socket in the calling thread's namespace, subscribed to link
/// changes, non-blocking.
fn nl_open() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked and owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(last_err());
    }
    // SAFETY: fd is a new descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: zeroed sockaddr_nl is valid; we set family and groups.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    sa.nl_groups = RTMGRP_LINK;
    // SAFETY: sa is a valid sockaddr_nl of the given size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if rc != 0 {
        return Err(last_err());
    }
    let size: libc::c_int = 1 << 20;
    // SAFETY: valid int option of its size; failure only leaves the default.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        );
    }
    Ok(fd)
}

/// Ask for every link of the socket's namespace.
fn nl_dump(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut req = [0u8; 32];
    req[0..4].copy_from_slice(&32u32.to_ne_bytes());
    req[4..6].copy_from_slice(&RTM_GETLINK.to_ne_bytes());
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    req[6..8].copy_from_slice(&flags.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // SAFETY: sends the 32 valid bytes of req.
    let n = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if n < 0 {
        return Err(last_err());
    }
    Ok(())
}

/// Read what is waiting (non-blocking). `Err` with ENOBUFS: messages were
/// lost and the caller dumps again.
fn nl_recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid and writable for its length.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(last_err());
    }
    Ok(n as usize)
}

fn poll_fds(fds: &[BorrowedFd<'_>], timeout: Duration) -> Vec<bool> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|f| libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: p is a valid array of p.len() pollfd.
    let rc = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
    if rc <= 0 {
        return vec![false; fds.len()];
    }
    p.iter().map(|x| x.revents != 0).collect()
}

/// Attach `prog` to `ifindex` of the calling thread's namespace with a BPF
/// link of `ty` (tcx or XDP).
fn link_create(
    prog: BorrowedFd<'_>,
    ifindex: u32,
    ty: libbpf_sys::bpf_attach_type,
    flags: u32,
) -> io::Result<OwnedFd> {
    let opts = libbpf_sys::bpf_link_create_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_link_create_opts>() as _,
        flags,
        ..Default::default()
    };
    // SAFETY: valid program fd and options; returns a new fd or -errno.
    let fd = unsafe { libbpf_sys::bpf_link_create(prog.as_raw_fd(), ifindex as i32, ty, &opts) };
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The driver of interface `name` (ethtool), in the calling thread's
/// namespace.
fn driver_name(name: &str) -> Option<String> {
    #[repr(C)]
    struct DrvInfo {
        cmd: u32,
        driver: [u8; 32],
        version: [u8; 32],
        fw_version: [u8; 32],
        bus_info: [u8; 32],
        erom_version: [u8; 32],
        reserved2: [u8; 12],
        n_priv_flags: u32,
        n_stats: u32,
        testinfo_len: u32,
        eedump_len: u32,
        regdump_len: u32,
    }
    const ETHTOOL_GDRVINFO: u32 = 3;
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    // SAFETY: plain socket(2), owned below.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return None;
    }
    // SAFETY: s is a new descriptor nothing else owns.
    let s = unsafe { OwnedFd::from_raw_fd(s) };
    // SAFETY: all-zero is a valid DrvInfo and ifreq.
    let mut info: DrvInfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    // SAFETY: as above.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, c) in ifr.ifr_name.iter_mut().zip(name.bytes().take(15)) {
        *d = c as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (&mut info as *mut DrvInfo).cast();
    // SAFETY: SIOCETHTOOL with a valid ifreq pointing at a DrvInfo that
    // outlives the call.
    let rc = unsafe { libc::ioctl(s.as_raw_fd(), SIOCETHTOOL, &mut ifr) };
    if rc != 0 {
        return None;
    }
    let d = info.driver.split(|&c| c == 0).next().unwrap_or(&[]);
    Some(String::from_utf8_lossy(d).into_owned())
}

/// Drivers known to offload XDP programs to the NIC.
const OFFLOAD_DRIVERS: [&str; 2] = ["nfp", "netdevsim"];

impl Watcher {
    fn new(cfg: NetdevConfig, progs: Progs, shared: Arc<Shared>) -> Result<Watcher, BpfError> {
        let home = File::open("/proc/thread-self/ns/net")
            .map_err(|e| BpfError::Config(format!("cannot open weft's network namespace: {e}")))?;
        Ok(Watcher {
            cfg,
            progs,
            shared,
            home: home.into(),
            spaces: HashMap::new(),
            buf: vec![0u8; 64 * 1024],
        })
    }

    /// Every network namespace now: (inode, how to open it, ip-netns name).
    fn namespaces() -> Vec<(u64, std::path::PathBuf, Option<String>)> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut add = |p: std::path::PathBuf, name: Option<String>| {
            if let Ok(m) = std::fs::metadata(&p)
                && seen.insert(m.ino())
            {
                out.push((m.ino(), p, name));
            }
        };
        add("/proc/thread-self/ns/net".into(), None);
        if let Ok(rd) = std::fs::read_dir("/run/netns") {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                add(e.path(), Some(name));
            }
        }
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                let n = e.file_name();
                if n.to_string_lossy().bytes().all(|c| c.is_ascii_digit()) {
                    add(e.path().join("ns/net"), None);
                }
            }
        }
        out
    }

    /// Find namespaces that appeared (attach there) and let go of gone ones.
    fn rescan(&mut self, first: bool) -> Result<(), BpfError> {
        let now = Self::namespaces();
        let live: HashSet<u64> = now.iter().map(|(i, _, _)| *i).collect();
        self.spaces.retain(|ino, _| live.contains(ino));
        for (ino, path, name) in now {
            if let Some(ns) = self.spaces.get_mut(&ino) {
                if ns.name.is_none() && name.is_some() {
                    ns.name.clone_from(&name);
                    if let (Ok(mut m), Some(n)) = (self.shared.ns_names.write(), name) {
                        m.insert(ino, n);
                    }
                }
                continue;
            }
            let fd: OwnedFd = match File::open(&path) {
                Ok(f) => f.into(),
                Err(_) => continue, // the process exited meanwhile
            };
            if let Err(e) = self.add_ns(ino, fd, name.clone(), first) {
                if first {
                    return Err(e);
                }
                self.shared.fail("namespace", format!("netns {ino}: {e}"));
            }
        }
        if let Ok(mut r) = self.shared.report.lock() {
            r.namespaces = self.spaces.len() as u64;
        }
        Ok(())
    }

    fn add_ns(
        &mut self,
        ino: u64,
        fd: OwnedFd,
        name: Option<String>,
        fatal: bool,
    ) -> Result<(), BpfError> {
        let cfg_err =
            |what: &str, e: io::Error| BpfError::Attach(format!("netns {ino}: {what}: {e}"));
        setns(fd.as_fd()).map_err(|e| cfg_err("cannot enter the network namespace", e))?;
        let res = (|| {
            let nl = nl_open().map_err(|e| cfg_err("cannot open a rtnetlink socket", e))?;
            nl_dump(nl.as_fd()).map_err(|e| cfg_err("cannot list interfaces", e))?;
            let mut ns = Ns {
                name: name.clone(),
                fd,
                nl,
                ifaces: HashMap::new(),
            };
            // Read the dump to its end (events that arrive meanwhile too).
            let end = Instant::now() + Duration::from_secs(2);
            loop {
                let n = match nl_recv(ns.nl.as_fd(), &mut self.buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if Instant::now() > end {
                            break;
                        }
                        poll_fds(&[ns.nl.as_fd()], Duration::from_millis(100));
                        continue;
                    }
                    Err(e) => return Err(cfg_err("cannot read the interface list", e)),
                };
                let (msgs, done) = parse_links(&self.buf[..n]);
                for m in msgs {
                    if let Err(e) = self.on_link(ino, &mut ns, &m, fatal) {
                        // Still inside the namespace: take back the clsact
                        // filters made so far (links close on their own).
                        for i in ns.ifaces.values() {
                            if let Some(c) = &i.clsact {
                                c.remove();
                            }
                        }
                        return Err(e);
                    }
                }
                if done {
                    break;
                }
            }
            Ok(ns)
        })();
        let back = setns(self.home.as_fd());
        let ns = res?;
        back.map_err(|e| cfg_err("cannot return to weft's network namespace", e))?;
        if let (Ok(mut m), Some(n)) = (self.shared.ns_names.write(), name) {
            m.insert(ino, n);
        }
        self.spaces.insert(ino, ns);
        Ok(())
    }

    /// One link message, with this thread inside the link's namespace.
    fn on_link(&self, ino: u64, ns: &mut Ns, m: &LinkMsg, fatal: bool) -> Result<(), BpfError> {
        if !m.new {
            ns.ifaces.remove(&m.index);
            return Ok(());
        }
        let Some(name) = &m.name else {
            return Ok(());
        };
        if let Some(i) = ns.ifaces.get_mut(&m.index) {
            i.name.clone_from(name);
            return Ok(());
        }
        if !self.cfg.filter.matches(name) {
            return Ok(());
        }
        let label = match &ns.name {
            Some(n) => format!("netns {ino} ({n}) {name}"),
            None => format!("netns {ino} {name}"),
        };
        let loopback = m.flags & IFF_LOOPBACK != 0;
        let mut links = Vec::new();
        let mut hooks = Vec::new();
        // XDP first: if the driver cannot do it, nothing else is made.
        let xdp = if loopback { None } else { self.cfg.xdp };
        if let Some(mode) = xdp {
            let res = match mode {
                XdpMode::Offload => {
                    let drv = driver_name(name).unwrap_or_else(|| "unknown".into());
                    if OFFLOAD_DRIVERS.contains(&drv.as_str()) {
                        link_create(self.progs.xdp.as_fd(), m.index, libbpf_sys::BPF_XDP, mode.flags())
                            .map_err(|e| format!("the driver of {name} ({drv}) refused to offload weft's XDP program: {e}"))
                    } else {
                        Err(format!(
                            "the driver of {name} ({drv}) cannot offload XDP programs to the NIC \
                             (only {} can); use --xdp native or --xdp generic",
                            OFFLOAD_DRIVERS.join(" and ")
                        ))
                    }
                }
                _ => link_create(
                    self.progs.xdp.as_fd(),
                    m.index,
                    libbpf_sys::BPF_XDP,
                    mode.flags(),
                )
                .map_err(|e| match e.raw_os_error() {
                    Some(libc::EBUSY) | Some(libc::EEXIST) => format!(
                        "{name} already has an XDP program (someone else's): weft never replaces it"
                    ),
                    Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) => format!(
                        "the driver of {name} cannot run XDP in {} mode ({e}); try --xdp generic",
                        mode.as_str()
                    ),
                    _ => format!("cannot attach XDP ({}) to {name}: {e}", mode.as_str()),
                }),
            };
            match res {
                Ok(l) => {
                    links.push(l);
                    hooks.push(format!("xdp {}", mode.as_str()));
                }
                Err(msg) => {
                    if fatal {
                        return Err(BpfError::Attach(format!("{label}: {msg}")));
                    }
                    self.shared.fail("xdp", format!("{label}: {msg}"));
                    return Ok(());
                }
            }
        }
        let mut tc = vec![(&self.progs.egress, libbpf_sys::BPF_TCX_EGRESS, "tc egress")];
        if !loopback && xdp.is_none() {
            tc.insert(
                0,
                (
                    &self.progs.ingress,
                    libbpf_sys::BPF_TCX_INGRESS,
                    "tc ingress",
                ),
            );
        }
        let mut clsact: Option<Clsact> = None;
        for (prog, ty, what) in tc {
            let tcx = if self.cfg.force_clsact {
                Err(io::Error::from_raw_os_error(libc::EINVAL))
            } else {
                link_create(prog.as_fd(), m.index, ty, 0)
            };
            match tcx {
                Ok(l) => {
                    links.push(l);
                    hooks.push(what.to_string());
                }
                // The interface went while we attached: its DELLINK follows.
                Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(()),
                // No tcx in this kernel: a clsact filter instead.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    let point = if ty == libbpf_sys::BPF_TCX_INGRESS {
                        libbpf_sys::BPF_TC_INGRESS
                    } else {
                        libbpf_sys::BPF_TC_EGRESS
                    };
                    let res = match clsact.as_mut() {
                        Some(c) => c.attach(prog.as_fd(), point),
                        None => Clsact::new(m.index).and_then(|mut c| {
                            let r = c.attach(prog.as_fd(), point);
                            clsact = Some(c);
                            r
                        }),
                    };
                    match res {
                        Ok(()) => hooks.push(format!("{what} (clsact)")),
                        Err(e) => self.shared.fail(
                            "clsact",
                            format!("{label}: cannot attach {what} (clsact, no tcx): {e}"),
                        ),
                    }
                }
                Err(e) => {
                    let reason = match e.raw_os_error() {
                        Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => "tcx_unsupported",
                        Some(libc::EPERM) | Some(libc::EACCES) => "permission",
                        _ => "tc_other",
                    };
                    self.shared
                        .fail(reason, format!("{label}: cannot attach {what} (tcx): {e}"));
                }
            }
        }
        if links.is_empty() && clsact.as_ref().is_none_or(|c| c.points.is_empty()) {
            if let Some(c) = &clsact {
                c.remove();
            }
            return Ok(());
        }
        tracing::info!(interface = %label, hooks = ?hooks, "packet path attached");
        if let Ok(mut n) = self.shared.names.write() {
            n.insert((ino, m.index), name.clone());
        }
        if let Ok(mut r) = self.shared.report.lock() {
            r.interfaces += 1;
            if r.attached.len() < REPORT_MAX {
                r.attached.push(format!("{label}: {}", hooks.join(", ")));
            }
        }
        ns.ifaces.insert(
            m.index,
            Iface {
                name: name.clone(),
                _links: links,
                clsact,
            },
        );
        Ok(())
    }

    fn run(&mut self, stop: &AtomicBool) {
        let mut last_scan = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let inos: Vec<u64> = self.spaces.keys().copied().collect();
            let ready = {
                let fds: Vec<BorrowedFd<'_>> =
                    inos.iter().map(|i| self.spaces[i].nl.as_fd()).collect();
                poll_fds(&fds, Duration::from_millis(200))
            };
            for (ino, r) in inos.iter().zip(ready) {
                if r {
                    self.drain(*ino);
                }
            }
            if last_scan.elapsed() >= self.cfg.rescan {
                last_scan = Instant::now();
                let _ = self.rescan(false);
            }
        }
    }

    /// Handle the link messages waiting in one namespace.
    fn drain(&mut self, ino: u64) {
        let Some(mut ns) = self.spaces.remove(&ino) else {
            return;
        };
        if let Err(e) = setns(ns.fd.as_fd()) {
            self.shared
                .fail("namespace", format!("netns {ino}: cannot enter: {e}"));
            self.spaces.insert(ino, ns);
            return;
        }
        loop {
            match nl_recv(ns.nl.as_fd(), &mut self.buf) {
                Ok(0) => break,
                Ok(n) => {
                    let (msgs, _) = parse_links(&self.buf[..n]);
                    for m in msgs {
                        let _ = self.on_link(ino, &mut ns, &m, false);
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // Messages lost: list every interface again.
                    let _ = nl_dump(ns.nl.as_fd());
                }
                Err(_) => break,
            }
        }
        if let Err(e) = setns(self.home.as_fd()) {
            tracing::error!("cannot return to weft's network namespace: {e}");
        }
        self.spaces.insert(ino, ns);
    }

    /// Detach everything: links are descriptors (closing detaches), clsact
    /// filters are removed in their namespace.
    fn release(&mut self) {
        for ns in self.spaces.values() {
            if ns.ifaces.values().all(|i| i.clsact.is_none()) || setns(ns.fd.as_fd()).is_err() {
                continue;
            }
            for i in ns.ifaces.values() {
                if let Some(c) = &i.clsact {
                    c.remove();
                }
            }
            if let Err(e) = setns(self.home.as_fd()) {
                tracing::error!("cannot return to weft's network namespace: {e}");
            }
        }
        self.spaces.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob(b"veth*", b"veth0"));
        assert!(glob(b"*", b""));
        assert!(glob(b"w?x*y", b"wAxzzy"));
        assert!(!glob(b"veth*", b"eth0"));
        assert!(!glob(b"lo", b"lo0"));
        assert!(glob(b"*0", b"veth0"));
    }

    #[test]
    fn filter_includes_and_excludes() {
        let f = IfFilter::new(&["veth*".into(), "!veth9".into()]).expect("valid");
        assert!(f.matches("veth0"));
        assert!(!f.matches("veth9"));
        assert!(!f.matches("eth0"));
        let all_but = IfFilter::new(&["!eth0".into()]).expect("valid");
        assert!(all_but.matches("lo") && !all_but.matches("eth0"));
        assert!(IfFilter::default().matches("anything"));
        assert!(IfFilter::new(&["!".into()]).is_err());
    }

    #[test]
    fn link_messages_parse_and_garbage_does_not_panic() {
        // RTM_NEWLINK for index 7 "veth0", then NLMSG_DONE.
        let mut m = Vec::new();
        let name = b"veth0\0";
        let attr_len = 4 + name.len();
        let len = 16 + 16 + ((attr_len + 3) & !3);
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
        m.extend_from_slice(&[0u8; 10]);
        let mut ifi = [0u8; 16];
        ifi[4..8].copy_from_slice(&7u32.to_ne_bytes());
        ifi[8..12].copy_from_slice(&IFF_LOOPBACK.to_ne_bytes());
        m.extend_from_slice(&ifi);
        m.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        m.extend_from_slice(&IFLA_IFNAME.to_ne_bytes());
        m.extend_from_slice(name);
        m.resize(len, 0);
        let mut done = vec![0u8; 20];
        done[0..4].copy_from_slice(&20u32.to_ne_bytes());
        done[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        m.extend_from_slice(&done);
        let (links, end) = parse_links(&m);
        assert!(end);
        assert_eq!(
            links,
            vec![LinkMsg {
                new: true,
                index: 7,
                flags: IFF_LOOPBACK,
                name: Some("veth0".into())
            }]
        );
        for cut in 0..m.len() {
            let _ = parse_links(&m[..cut]);
            let mut bad = m.clone();
            bad[cut] = 0xff;
            let _ = parse_links(&bad);
        }
    }
}
