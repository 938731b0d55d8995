//! Attaching the probes of Go's `crypto/tls` (`bpf/go.bpf.c`).
//!
//! Go programs get uprobes on the entry of `crypto/tls.(*Conn).Write` and
//! `(*Conn).Read` and on every `RET` instruction inside them; never
//! uretprobes, which rewrite the return address on a goroutine stack that
//! Go moves. Discovery (`weft_core::discovery::go`) finds and verifies the
//! points and names them: the function's name for its entry, `name+0xN` for
//! the `RET` N bytes into it.

use std::path::Path;

use libbpf_rs::UprobeMultiOpts;

use crate::abi;
use crate::sensor::{BpfError, ProbePoint, Sensor};

/// `func (c *Conn) Write(b []byte) (int, error)`.
pub const GO_TLS_WRITE: &str = "crypto/tls.(*Conn).Write";
/// `func (c *Conn) Read(b []byte) (int, error)`.
pub const GO_TLS_READ: &str = "crypto/tls.(*Conn).Read";

/// Which BPF program a Go probe point gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoHook {
    WriteEntry,
    ReadEntry,
    /// A `RET` of `(*Conn).Write`.
    WriteReturn,
    /// A `RET` of `(*Conn).Read`.
    ReadReturn,
}

/// The hook for a Go probe point, from its name.
pub fn go_hook(symbol: &str) -> Option<GoHook> {
    match symbol {
        GO_TLS_WRITE => return Some(GoHook::WriteEntry),
        GO_TLS_READ => return Some(GoHook::ReadEntry),
        _ => {}
    }
    let (func, rel) = symbol.split_once("+0x")?;
    u64::from_str_radix(rel, 16).ok()?;
    match func {
        GO_TLS_WRITE => Some(GoHook::WriteReturn),
        GO_TLS_READ => Some(GoHook::ReadReturn),
        _ => None,
    }
}

/// Whether the kernel has uprobe.multi links (Linux 6.6+), which the Go
/// probes use (see `bpf/go.bpf.c` for why).
pub fn uprobe_multi_supported() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .and_then(|r| kernel_at_least(&r, 6, 6))
        .unwrap_or(false)
}

/// `release` (as `uname -r` prints it) is at least `major.minor`.
fn kernel_at_least(release: &str, major: u32, minor: u32) -> Option<bool> {
    let mut it = release.trim().split(['.', '-', '+']);
    let ma: u32 = it.next()?.parse().ok()?;
    let mi: u32 = it.next()?.parse().ok()?;
    Some((ma, mi) >= (major, minor))
}

/// Load the Go programs only where the kernel can attach them: they are
/// not loaded by default, so an older kernel still loads everything else.
pub(crate) fn enable_programs(open: &mut crate::skel::OpenWeftSkel<'_>) {
    if !uprobe_multi_supported() {
        return;
    }
    for prog in [&mut open.progs.go_enter, &mut open.progs.go_ret] {
        prog.set_autoload(true);
    }
}

impl Sensor {
    /// Attach the probes of one Go program: both entries and at least one
    /// `RET` of each function are required, or nothing is attached (an entry
    /// without its returns would only leave state behind). Two uprobe.multi
    /// links: the entries, and the RETs of `Write` and `Read` (one program,
    /// the op in each RET's cookie). Returns
    /// how many probe points were attached; 0 when the file already has
    /// probes. On error nothing stays attached.
    pub fn attach_go(&mut self, path: &Path, points: &[ProbePoint]) -> Result<usize, BpfError> {
        self.attach_go_for(None, path, points)
    }

    /// [`Sensor::attach_go`] for one process only (`Some(pid)`).
    pub fn attach_go_for(
        &mut self,
        pid: Option<u32>,
        path: &Path,
        points: &[ProbePoint],
    ) -> Result<usize, BpfError> {
        if self.uprobes.contains_key(&(path.to_path_buf(), pid)) {
            return Ok(0);
        }
        if !uprobe_multi_supported() {
            return Err(BpfError::Config(format!(
                "{} uses Go crypto/tls, whose capture needs uprobe.multi links (Linux 6.6 or \
                 later); it is not probed",
                path.display()
            )));
        }
        let mut entries = (Vec::new(), Vec::new());
        let mut rets = (Vec::new(), Vec::new());
        for p in points {
            let Some(hook) = go_hook(&p.symbol) else {
                continue;
            };
            let offset = usize::try_from(p.offset).map_err(|_| {
                BpfError::Config(format!(
                    "{}:{} offset {:#x} is out of range",
                    path.display(),
                    p.symbol,
                    p.offset
                ))
            })?;
            // Each point's cookie is the op of its function.
            let (list, op) = match hook {
                GoHook::WriteEntry => (&mut entries, abi::OP_WRITE),
                GoHook::ReadEntry => (&mut entries, abi::OP_READ),
                GoHook::WriteReturn => (&mut rets, abi::OP_WRITE),
                GoHook::ReadReturn => (&mut rets, abi::OP_READ),
            };
            list.0.push(offset);
            list.1.push(u64::from(op));
        }
        // An entry and a RET of both functions (the cookies say which).
        let both = |ops: &[u64]| {
            ops.contains(&u64::from(abi::OP_WRITE)) && ops.contains(&u64::from(abi::OP_READ))
        };
        let complete = both(&entries.1) && both(&rets.1);
        if !complete {
            return Err(BpfError::Config(format!(
                "{} lacks the entry or the RET points of crypto/tls.(*Conn).Write/Read; \
                 its Go TLS traffic is not captured",
                path.display()
            )));
        }
        let n = entries.0.len() + rets.0.len();
        let progs = &self.skel.progs;
        let attach = |prog: &libbpf_rs::ProgramMut<'static>,
                      what: &str,
                      offsets: Vec<usize>,
                      cookies: Vec<u64>| {
            prog.attach_uprobe_multi_with_opts(
                crate::sensor::pid_arg(pid),
                path,
                "",
                UprobeMultiOpts {
                    offsets,
                    cookies,
                    ..Default::default()
                },
            )
            .map_err(|source| BpfError::Uprobe {
                path: path.to_path_buf(),
                symbol: what.to_string(),
                source,
            })
        };
        // Returns first: by the time an entry fires, its RETs are watched.
        // Each RET's cookie is the op of the function it is in.
        let links = vec![
            attach(
                &progs.go_ret,
                "RETs of crypto/tls.(*Conn).Write/Read",
                rets.0,
                rets.1,
            )?,
            attach(
                &progs.go_enter,
                "crypto/tls.(*Conn).Write/Read",
                entries.0,
                entries.1,
            )?,
        ];
        self.count_probes(pid, n);
        self.uprobes.insert((path.to_path_buf(), pid), links);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_from_names() {
        assert_eq!(go_hook(GO_TLS_WRITE), Some(GoHook::WriteEntry));
        assert_eq!(go_hook(GO_TLS_READ), Some(GoHook::ReadEntry));
        assert_eq!(
            go_hook("crypto/tls.(*Conn).Write+0x246"),
            Some(GoHook::WriteReturn)
        );
        assert_eq!(
            go_hook("crypto/tls.(*Conn).Read+0x3c"),
            Some(GoHook::ReadReturn)
        );
        assert_eq!(go_hook("crypto/tls.(*Conn).Read+0xzz"), None);
        assert_eq!(go_hook("crypto/tls.(*Conn).Close+0x10"), None);
        assert_eq!(go_hook("SSL_write"), None);
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_at_least("6.18.0-weft\n", 6, 6), Some(true));
        assert_eq!(kernel_at_least("6.6.0", 6, 6), Some(true));
        assert_eq!(kernel_at_least("6.1.0-28-amd64", 6, 6), Some(false));
        assert_eq!(kernel_at_least("5.15.0", 6, 6), Some(false));
        assert_eq!(kernel_at_least("7.0", 6, 6), Some(true));
        assert_eq!(kernel_at_least("garbage", 6, 6), None);
    }
}
