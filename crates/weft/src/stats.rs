//! Session statistics: what weft saw, and every place it dropped something.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use weft_bpf::assemble::AssemblyStats;
use weft_bpf::sensor::KernelStats;

/// User-space counters, shared by the stages.
#[derive(Debug, Default)]
pub struct Stats {
    pub events_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub bad_records: AtomicU64,
    pub discovery_missed: AtomicU64,
    pub attach_failures: AtomicU64,
    pub skipped_files: AtomicU64,
    pub sink_failed: AtomicBool,
}

impl Stats {
    pub fn print(
        &self,
        out: &mut dyn Write,
        elapsed: Duration,
        kernel: &KernelStats,
        asm: &AssemblyStats,
        uprobes: usize,
        files: usize,
    ) {
        let k = |name: &str| {
            kernel
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(0, |(_, v)| *v)
        };
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = String::new();
        s.push_str(&format!(
            "weft: stopped after {:.1} s\n",
            elapsed.as_secs_f64()
        ));
        s.push_str(&format!(
            "  events written     {}\n  payload bytes      {}\n  library calls      {} (kernel)\n",
            r(&self.events_out),
            r(&self.bytes_out),
            k("calls")
        ));
        s.push_str(&format!(
            "  attachments        {uprobes} uprobes on {files} files ({} failed, {} files skipped)\n",
            r(&self.attach_failures),
            r(&self.skipped_files)
        ));
        s.push_str("  drops and losses (by reason):\n");
        let rows: [(&str, u64); 16] = [
            ("ring buffer full: payload chunks", k("ring_full_data")),
            ("ring buffer full: call records", k("ring_full_call")),
            ("ring buffer full: process records", k("ring_full_other")),
            ("calls truncated at --payload-cap", k("truncated")),
            ("calls whose buffer could not be read", k("copy_fault")),
            (
                "calls on non-TCP fds (AF_UNIX, files), dropped",
                k("not_inet"),
            ),
            ("calls without a known socket (kept)", k("no_socket")),
            ("calls that failed (no data)", k("failed_calls")),
            ("calls not tracked: per-thread state full", k("state_full")),
            ("nested library calls folded", k("nested")),
            (
                "payload pieces orphaned (call record lost)",
                asm.orphaned_calls,
            ),
            ("payload pieces out of order", asm.out_of_order),
            ("calls with missing payload pieces", asm.length_mismatch),
            ("bytes over the per-call limit", asm.over_limit_bytes),
            ("undecodable ring records", r(&self.bad_records)),
            (
                "new files not inspected (queue full/gone)",
                r(&self.discovery_missed),
            ),
        ];
        for (name, v) in rows {
            s.push_str(&format!("    {name:<48} {v}\n"));
        }
        let _ = out.write_all(s.as_bytes());
        let _ = out.flush();
    }
}
