//! Start-up: the BPF object's programs verified on two CPUs at once.
//!
//! Verification is most of weft's start-up, and libbpf loads one object's
//! programs one after the other. The kernel verifies privileged loads in
//! parallel, so the heaviest program that is not attached itself,
//! `sys_exit_plain` (reached by tail call through `plain_exit_prog`), is
//! loaded from a second open of the same object on a thread of its own
//! while the main object loads the rest. The second object creates no map:
//! every one of its maps reuses the main object's (created first with
//! `bpf_object__prepare`), so its program reads and writes the same maps,
//! read-only data included. The caller puts the program in the prog array
//! once both are loaded.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, RawFd};

use libbpf_rs::AsRawLibbpf;
use libbpf_rs::libbpf_sys;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};

use crate::sensor::BpfError;
use crate::skel::{OpenWeftSkel, WeftSkelBuilder};

/// The second object's raw pointer, moved to the loading thread.
struct ObjPtr(*mut libbpf_sys::bpf_object);

// SAFETY: the object is used by one thread at a time: the loading thread
// until it is joined, then never again (its program's fd is all that is
// read, and the object is kept, leaked, for the program's life).
unsafe impl Send for ObjPtr {}

/// `sys_exit_plain` being loaded on its own thread.
pub(crate) struct PlainLoad {
    thread: std::thread::JoinHandle<Result<(), i32>>,
    prog: *const libbpf_sys::bpf_program,
}

fn err(what: &str, code: i32) -> BpfError {
    BpfError::Config(format!(
        "{what}: {} (see libbpf's messages above with --log-level debug)",
        std::io::Error::from_raw_os_error(code.abs())
    ))
}

/// Creates the maps of `main` (which must be configured: read-only data,
/// sizes, which programs load; `sys_exit_plain` must not be one of them)
/// and starts loading `sys_exit_plain` from a second open of the object.
/// `log_level`: the kernel's verifier log level for it (0: none).
pub(crate) fn start(
    main: &mut OpenWeftSkel<'static>,
    log_level: u32,
) -> Result<PlainLoad, BpfError> {
    // SAFETY: the pointer is the open object the skeleton owns; prepare
    // only creates its maps and relocates its programs (libbpf 1.6+), and
    // the later `load()` of the skeleton continues from that state.
    let rc = unsafe {
        libbpf_sys::bpf_object__prepare(main.open_object_mut().as_libbpf_object().as_ptr())
    };
    if rc != 0 {
        return Err(err("create the BPF maps", rc));
    }
    let mut fds = Vec::new();
    for map in main.open_object_mut().maps_mut() {
        // SAFETY: a map of the prepared object: its fd is open (or -1).
        let fd = unsafe { libbpf_sys::bpf_map__fd(map.as_libbpf_object().as_ptr()) };
        fds.push((map.name().to_owned(), fd));
    }

    let storage: &'static mut MaybeUninit<libbpf_rs::OpenObject> =
        Box::leak(Box::new(MaybeUninit::uninit()));
    let second = WeftSkelBuilder::default()
        .open(storage)
        .map_err(|source| BpfError::Libbpf {
            what: "open the BPF object a second time".into(),
            source,
        })?;
    // Kept for the program's life (the prog array holds the program; the
    // object owns its fd, which the statistics read).
    let second: &'static mut OpenWeftSkel<'static> = Box::leak(Box::new(second));
    for mut prog in second.open_object_mut().progs_mut() {
        let plain = prog.name() == "sys_exit_plain";
        prog.set_autoload(plain);
        if plain && log_level != 0 {
            prog.set_log_level(log_level);
        }
    }
    for mut map in second.open_object_mut().maps_mut() {
        let name = map.name().to_owned();
        let Some(&(_, fd)) = fds.iter().find(|(n, _)| *n == name) else {
            return Err(BpfError::Config(format!(
                "map {name:?} missing from the BPF object's first open"
            )));
        };
        if fd < 0 {
            return Err(BpfError::Config(format!("map {name:?} was not created")));
        }
        // SAFETY: `fd` is open for as long as the main object lives, and
        // reuse_fd duplicates it.
        let fd = unsafe { BorrowedFd::borrow_raw(fd as RawFd) };
        map.reuse_fd(fd).map_err(|source| BpfError::Libbpf {
            what: format!("share map {name:?}"),
            source,
        })?;
    }
    let prog = second
        .progs
        .sys_exit_plain
        .as_libbpf_object()
        .as_ptr()
        .cast_const();
    let obj = ObjPtr(second.open_object_mut().as_libbpf_object().as_ptr());
    let thread = std::thread::Builder::new()
        .name("weft-bpf-load".into())
        .spawn(move || {
            let obj = obj;
            // SAFETY: the open, configured object, on this thread alone
            // until it is joined.
            let rc = unsafe { libbpf_sys::bpf_object__load(obj.0) };
            if rc == 0 { Ok(()) } else { Err(rc) }
        })
        .map_err(|e| BpfError::Config(format!("cannot start a loading thread: {e}")))?;
    Ok(PlainLoad { thread, prog })
}

impl PlainLoad {
    /// Waits for the load; the program's fd (open for the process' life).
    pub(crate) fn finish(self) -> Result<BorrowedFd<'static>, BpfError> {
        match self.thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(rc)) => return Err(err("load sys_exit_plain (verifier)", rc)),
            Err(_) => return Err(BpfError::Config("the loading thread panicked".into())),
        }
        // SAFETY: the program of the leaked, loaded second object.
        let fd = unsafe { libbpf_sys::bpf_program__fd(self.prog) };
        if fd < 0 {
            return Err(err("load sys_exit_plain", fd));
        }
        // SAFETY: the object is never freed, so the fd stays open.
        Ok(unsafe { BorrowedFd::borrow_raw(fd) })
    }
}

/// The fd as a value for a prog array.
pub(crate) fn fd_value(fd: BorrowedFd<'_>) -> [u8; 4] {
    use std::os::fd::AsRawFd;
    fd.as_fd().as_raw_fd().to_ne_bytes()
}
