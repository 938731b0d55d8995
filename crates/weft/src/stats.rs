//! Session statistics: what weft saw, and every place it dropped something.
//! The same rows feed the exit summary and the metrics endpoint.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use weft_bpf::assemble::AssemblyStats;
use weft_bpf::progstats::ProgStats;
use weft_bpf::sensor::KernelStats;
use weft_core::decode::DecodeStats;

use crate::metrics::Family;

/// User-space counters, shared by the stages.
#[derive(Debug, Default)]
pub struct Stats {
    /// Call records read (one per TLS library call captured).
    pub calls_in: AtomicU64,
    pub events_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub bad_records: AtomicU64,
    /// `--bench-floor copy`: the capture floor's records read (one per
    /// library call) and the call lengths they carried.
    pub bench_copies: AtomicU64,
    pub bench_copy_bytes: AtomicU64,
    /// DNS messages that did not parse (weft_proto::dns errors).
    pub dns_malformed: AtomicU64,
    pub discovery_missed: AtomicU64,
    pub attach_failures: AtomicU64,
    pub sink_failed: AtomicBool,
    /// `--keylog`: lines written, and secrets not written (unknown label,
    /// write error).
    pub keylog_lines: AtomicU64,
    pub keylog_rejected: AtomicU64,
    /// The TLS session stage's counters (handshakes, gaps).
    pub tls: std::sync::Arc<weft_core::tls::TlsStats>,
    /// Packet path: flow events emitted, flows in the kernel table at the
    /// last read, and the attachments report (None: packet path off).
    pub pkt_flows_emitted: AtomicU64,
    /// Flows the kernel table evicted before they were reported (as of the
    /// last read of the table).
    pub pkt_flows_evicted: AtomicU64,
    /// Update events of long flows (`--flow-update`), not in the above.
    pub pkt_flow_updates: AtomicU64,
    pub netdev: Mutex<Option<weft_bpf::netdev::NetdevReport>>,
    /// Packet path: TLS hellos seen on the wire (weft_core::wire_tls).
    pub wire_tls: std::sync::Arc<weft_core::wire_tls::WireTlsStats>,
    /// Files that got probes (for the summary), bounded.
    probed: Mutex<Vec<String>>,
    /// Files weft found but did not probe, and why, bounded.
    skipped: Mutex<Vec<String>>,
}

/// Lines kept per report list; the rest are counted.
const REPORT_MAX: usize = 64;

fn push_bounded(list: &Mutex<Vec<String>>, line: String) {
    if let Ok(mut l) = list.lock()
        && l.len() < REPORT_MAX + 1
    {
        l.push(line);
    }
}

/// `path (library: functions; N probe points, found via pid P|installed)`:
/// one line of the summary's probed files. `probed` tells which of the
/// target's functions got a probe.
pub fn probed_line(
    t: &weft_core::discovery::ProbeTarget,
    points: usize,
    by: &str,
    probed: impl Fn(&str) -> bool,
) -> String {
    let mut names: Vec<&str> = Vec::new();
    for s in &t.symbols {
        // Go's RET points are `function+0xoffset`: name the function once;
        // BoringSSL's key-log point carries its struct offsets after `@`.
        let name = s
            .name
            .split_once(['+', '@'])
            .map_or(s.name.as_str(), |(f, _)| f);
        if probed(&s.name) && !names.contains(&name) {
            names.push(name);
        }
    }
    format!(
        "{} ({}: {}; {points} probe points, found via {by})",
        t.display_path,
        t.library.as_str(),
        names.join(" ")
    )
}

impl Stats {
    pub fn report_probed(&self, line: String) {
        push_bounded(&self.probed, line);
    }

    pub fn report_skipped(&self, line: String) {
        push_bounded(&self.skipped, line);
    }
}

/// Everything the summary and the metrics report, gathered at one moment.
pub struct Snapshot<'a> {
    pub stats: &'a Stats,
    pub kernel: KernelStats,
    pub asm: AssemblyStats,
    pub decoded: DecodeStats,
    pub uprobes: usize,
    pub files: usize,
}

/// One place data can be lost: a stable key (metrics label), what it means
/// for people, and how much.
pub struct LossRow {
    pub key: &'static str,
    pub what: &'static str,
    pub value: u64,
    /// Data really went missing (as opposed to a counted, deliberate
    /// choice such as dropping AF_UNIX traffic): reported in `weft.loss`.
    pub lost: bool,
}

impl Snapshot<'_> {
    fn k(&self, name: &str) -> u64 {
        self.kernel
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, v)| *v)
    }

    /// Every drop and loss counter, by reason.
    pub fn losses(&self) -> Vec<LossRow> {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let d = &self.decoded;
        let rows: Vec<(&'static str, &'static str, u64)> = vec![
            (
                "ring_full_data",
                "ring buffer full: payload chunks",
                self.k("ring_full_data"),
            ),
            (
                "ring_full_call",
                "ring buffer full: call records",
                self.k("ring_full_call"),
            ),
            (
                "lost_calls_untold",
                "  of which not told to their connection (yet)",
                self.k("lost_calls_untold"),
            ),
            (
                "ring_full_other",
                "ring buffer full: process records",
                self.k("ring_full_other"),
            ),
            (
                "truncated",
                "calls truncated at --payload-cap",
                self.k("truncated"),
            ),
            (
                "copy_fault",
                "calls whose buffer could not be read",
                self.k("copy_fault"),
            ),
            (
                "not_inet",
                "calls on non-TCP fds (AF_UNIX, files), dropped",
                self.k("not_inet"),
            ),
            (
                "no_socket",
                "calls without a known socket (kept)",
                self.k("no_socket"),
            ),
            (
                "failed_calls",
                "calls that failed (no data)",
                self.k("failed_calls"),
            ),
            (
                "state_full",
                "calls not tracked: per-thread state full",
                self.k("state_full"),
            ),
            ("nested", "nested library calls folded", self.k("nested")),
            (
                "hello_lost",
                "ring buffer full: TLS handshake bytes",
                self.k("hello_lost"),
            ),
            (
                "keylog_lost",
                "session secrets lost (ring full, unreadable)",
                self.k("keylog_lost"),
            ),
            (
                "plain_arm_full",
                "plaintext socket syscalls not followed: per-thread state full",
                self.k("plain_arm_full"),
            ),
            (
                "keylog_rejected",
                "session secrets not written (unknown label, write error)",
                r(&self.stats.keylog_rejected),
            ),
            (
                "tls_hello_gaps",
                "TLS handshake bytes not in sequence (not parsed)",
                r(&self.stats.tls.hello_gaps),
            ),
            (
                "tls_sessions_evicted",
                "TLS sessions forgotten (table full)",
                r(&self.stats.tls.evicted),
            ),
            (
                "orphaned_pieces",
                "payload pieces orphaned (call record lost)",
                self.asm.orphaned_calls,
            ),
            (
                "out_of_order",
                "payload pieces out of order",
                self.asm.out_of_order,
            ),
            (
                "missing_pieces",
                "calls with missing payload pieces",
                self.asm.length_mismatch,
            ),
            (
                "over_limit_bytes",
                "bytes over the per-call limit",
                self.asm.over_limit_bytes,
            ),
            (
                "bad_records",
                "undecodable ring records",
                r(&self.stats.bad_records),
            ),
            (
                "dns_malformed",
                "DNS messages that did not parse",
                r(&self.stats.dns_malformed),
            ),
            (
                "discovery_missed",
                "new files not inspected (process gone, queue full)",
                r(&self.stats.discovery_missed),
            ),
            (
                "gap_bytes",
                "decoder: bytes lost to capture gaps",
                d.gap_bytes,
            ),
            (
                "skip_gaps",
                "decoder: holes left by the kernel outside a known body (gaps)",
                d.proto.skip_gaps,
            ),
            (
                "calls_lost_whole",
                "decoder: lost call records told to their connection",
                d.calls_lost_whole,
            ),
            ("desyncs", "decoder: desynchronisations", d.proto.desyncs),
            (
                "undecoded_bytes",
                "decoder: bytes not decoded (unknown protocol)",
                d.proto.undecoded_bytes,
            ),
            (
                "incomplete_transactions",
                "decoder: transactions incomplete",
                d.proto.transactions_incomplete,
            ),
            (
                "hpack_unknown_references",
                "decoder: HPACK unknown references (joined late)",
                d.proto.hpack_unknown_references,
            ),
            (
                "bodies_truncated",
                "decoder: bodies cut at --max-body",
                d.proto.bodies_truncated,
            ),
            (
                "body_bytes_dropped",
                "decoder: body bytes over --max-body",
                d.proto.body_bytes_dropped,
            ),
            (
                "decoded_bytes_dropped",
                "decoder: decoded body bytes over --max-body",
                d.proto.decoded_bytes_dropped,
            ),
            (
                "ws_messages_truncated",
                "decoder: WebSocket messages cut short",
                d.proto.ws_messages_truncated,
            ),
            (
                "ws_bytes_dropped",
                "decoder: WebSocket bytes over --max-body",
                d.proto.ws_bytes_dropped,
            ),
            (
                "streams_evicted",
                "decoder: streams evicted (limit)",
                d.proto.streams_evicted,
            ),
            (
                "streams_unseen",
                "decoder: HTTP/2 requests lost whole in gaps",
                d.proto.streams_unseen,
            ),
            (
                "h1_requests_unseen",
                "decoder: HTTP/1 requests lost whole in gaps",
                d.proto.h1_requests_unseen,
            ),
            (
                "flows_evicted",
                "decoder: connections evicted (flow table full)",
                d.flows_evicted,
            ),
            // connections
            (
                "conn_lost",
                "ring buffer full: connection start/end records",
                self.k("conn_lost"),
            ),
            (
                "conn_untracked",
                "connection ends not reported (state table full)",
                self.k("conn_untracked"),
            ),
        ];
        // Packet path (tc.bpf.c, packets.rs).
        let packet_rows: [(&'static str, &'static str, u64); 7] = [
            (
                "pkt_flow_full",
                "packets not counted: flow entry not stored",
                self.k("pkt_flow_full"),
            ),
            (
                "pkt_short",
                "packets not counted: headers unreadable",
                self.k("pkt_short"),
            ),
            (
                "pkt_not_ip",
                "packets not IPv4/IPv6 (ARP...), not counted",
                self.k("pkt_not_ip"),
            ),
            (
                "pkt_flows_evicted",
                "flows evicted from the kernel table before reported",
                r(&self.stats.pkt_flows_evicted),
            ),
            (
                "pkt_hello_lost",
                "ring buffer full: TLS hellos from the wire",
                self.k("pkt_hello_lost"),
            ),
            (
                "wire_hello_incomplete",
                "TLS hellos from the wire not whole (cut, segment missing)",
                r(&self.stats.wire_tls.incomplete),
            ),
            (
                "wire_hello_table_full",
                "TLS hellos from the wire not followed (table full)",
                r(&self.stats.wire_tls.table_full),
            ),
        ];
        const NOT_LOST: [&str; 11] = [
            // Parts of `ring_full_call`, already reported there.
            "lost_calls_untold",
            "calls_lost_whole",
            "dns_malformed",
            "pkt_not_ip",
            "not_inet",
            "no_socket",
            "failed_calls",
            "nested",
            "undecoded_bytes",
            "hpack_unknown_references",
            "incomplete_transactions",
        ];
        rows.into_iter()
            .chain(packet_rows)
            .map(|(key, what, value)| LossRow {
                key,
                what,
                value,
                lost: !NOT_LOST.contains(&key),
            })
            .collect()
    }

    /// Connections the decoders hold right now (as of their last report).
    pub fn live_flows(&self) -> u64 {
        let d = &self.decoded;
        d.flows_opened.saturating_sub(
            d.flows_idle_closed + d.flows_evicted + d.flows_finished + d.flows_closed,
        )
    }

    /// The exit summary, on stderr.
    pub fn print(&self, out: &mut dyn Write, elapsed: Duration) {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = String::new();
        s.push_str(&format!(
            "weft: stopped after {:.1} s\n",
            elapsed.as_secs_f64()
        ));
        s.push_str(&format!(
            "  events written     {}\n  payload bytes      {}\n  library calls      {} (kernel)\n",
            r(&self.stats.events_out),
            r(&self.stats.bytes_out),
            self.k("calls")
        ));
        if r(&self.stats.bench_copies) > 0 {
            s.push_str(&format!(
                "  capture floor      {} library calls copied ({} bytes returned)\n",
                r(&self.stats.bench_copies),
                r(&self.stats.bench_copy_bytes)
            ));
        }
        if self.k("body_skipped") > 0 {
            s.push_str(&format!(
                "  body bytes not copied (past --max-body)  {}\n  of which stepped over by the decoders    {}\n",
                self.k("body_skipped"),
                self.decoded.proto.body_bytes_skipped
            ));
        }
        s.push_str(&format!(
            "  attachments        {} uprobes on {} files ({} failed)\n",
            self.uprobes,
            self.files,
            r(&self.stats.attach_failures)
        ));
        s.push_str(&format!(
            "  http transactions  {} on {} connections\n",
            self.decoded.http_events, self.decoded.flows_opened
        ));
        s.push_str(&format!(
            "  tls handshakes     {} completed, {} failed\n",
            r(&self.stats.tls.established),
            r(&self.stats.tls.failed)
        ));
        if let Ok(Some(nd)) = self.stats.netdev.lock().map(|n| n.clone()) {
            s.push_str(&format!(
                "  packet path        {} interfaces in {} namespaces, {} flows reported ({} updates, {} with TLS hellos), {} attach failures
",
                nd.interfaces,
                nd.namespaces,
                r(&self.stats.pkt_flows_emitted),
                r(&self.stats.pkt_flow_updates),
                r(&self.stats.wire_tls.sessions),
                nd.failures.values().sum::<u64>()
            ));
            for (reason, n) in &nd.failures {
                s.push_str(&format!("    attach failures ({reason}): {n}\n"));
            }
            let esc = |l: &str| weft_sink::escape_untrusted(l.as_bytes(), 256);
            if !nd.attached.is_empty() {
                s.push_str("  packet path interfaces:\n");
                for l in &nd.attached {
                    s.push_str(&format!("    {}\n", esc(l)));
                }
            }
            for l in &nd.failure_lines {
                s.push_str(&format!("    failed: {}\n", esc(l)));
            }
        }
        if self.decoded.payloads_redacted > 0 {
            s.push_str(&format!(
                "  capture events with credentials masked  {}\n",
                self.decoded.payloads_redacted
            ));
        }
        if r(&self.stats.keylog_lines) > 0 {
            s.push_str(&format!(
                "  key log lines      {}\n",
                r(&self.stats.keylog_lines)
            ));
        }
        for (title, list) in [
            ("probed files", &self.stats.probed),
            ("found but not probed", &self.stats.skipped),
        ] {
            let l = list.lock().map(|l| l.clone()).unwrap_or_default();
            if l.is_empty() {
                continue;
            }
            s.push_str(&format!("  {title}:\n"));
            for line in l.iter().take(REPORT_MAX) {
                s.push_str(&format!("    {line}\n"));
            }
            if l.len() > REPORT_MAX {
                s.push_str("    ... and more\n");
            }
        }
        s.push_str("  drops and losses (by reason):\n");
        for l in self.losses() {
            s.push_str(&format!("    {:<48} {}\n", l.what, l.value));
        }
        let _ = out.write_all(s.as_bytes());
        let _ = out.flush();
    }

    /// The metric families of the Prometheus endpoint.
    pub fn families(&self, progs: &[ProgStats]) -> Vec<Family> {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let mut drops = Family::counter(
            "weft_drops_total",
            "Data weft dropped or could not capture whole, by reason.",
        );
        // Not a counter: the lost calls not told yet, which falls as
        // their connections tell them (shown in the exit statistics).
        for l in self
            .losses()
            .iter()
            .filter(|l| l.key != "lost_calls_untold")
        {
            drops.push(&[("reason", l.key)], l.value as f64);
        }
        let mut runs = Family::counter(
            "weft_bpf_program_runs_total",
            "Times each BPF program ran (kernel statistics).",
        );
        let mut time = Family::counter(
            "weft_bpf_program_run_seconds_total",
            "Time spent in each BPF program (kernel statistics).",
        );
        for p in progs {
            runs.push(&[("program", &p.name)], p.run_count as f64);
            time.push(&[("program", &p.name)], p.run_time_ns as f64 / 1e9);
        }
        vec![
            Family::counter("weft_events_total", "Events written by the output stage.")
                .with(&[], r(&self.stats.events_out)),
            Family::counter("weft_payload_bytes_total", "Plaintext bytes captured.")
                .with(&[], r(&self.stats.bytes_out)),
            Family::counter(
                "weft_tls_calls_total",
                "TLS library calls captured by the kernel side.",
            )
            .with(&[], self.k("calls") as f64),
            Family::counter(
                "weft_body_bytes_skipped_total",
                "Body bytes past --max-body the kernel did not copy.",
            )
            .with(&[], self.k("body_skipped") as f64),
            Family::counter("weft_http_transactions_total", "HTTP transactions decoded.")
                .with(&[], self.decoded.http_events as f64),
            Family::counter(
                "weft_payloads_redacted_total",
                "Capture events whose payload had credentials masked.",
            )
            .with(&[], self.decoded.payloads_redacted as f64),
            Family::gauge("weft_live_flows", "Connections the decoders are tracking.")
                .with(&[], self.live_flows() as f64),
            Family::gauge("weft_attachments", "Probes attached.")
                .with(&[("kind", "uprobe")], self.uprobes as f64)
                .with(&[("kind", "file")], self.files as f64)
                .with(
                    &[("kind", "interface")],
                    self.stats
                        .netdev
                        .lock()
                        .ok()
                        .and_then(|n| n.as_ref().map(|n| n.interfaces))
                        .unwrap_or(0) as f64,
                ),
            Family::counter(
                "weft_packet_flows_total",
                "Packet flows reported (one event per flow and interface).",
            )
            .with(&[], r(&self.stats.pkt_flows_emitted)),
            Family::counter(
                "weft_packet_flow_updates_total",
                "Update events of packet flows still active (--flow-update).",
            )
            .with(&[], r(&self.stats.pkt_flow_updates)),
            drops,
            runs,
            time,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bodies and WebSocket messages cut at `--max-body` are reported in
    /// the summary, the metrics and (as lost data) the `weft.loss` event.
    #[test]
    fn body_truncation_is_reported() {
        let stats = Stats::default();
        let mut decoded = DecodeStats::default();
        decoded.proto.bodies_truncated = 3;
        decoded.proto.body_bytes_dropped = 250_000;
        decoded.proto.decoded_bytes_dropped = 7;
        decoded.proto.ws_messages_truncated = 2;
        decoded.proto.ws_bytes_dropped = 90;
        let snap = Snapshot {
            stats: &stats,
            kernel: Vec::new(),
            asm: AssemblyStats::default(),
            decoded,
            uprobes: 0,
            files: 0,
        };
        let rows = snap.losses();
        for (key, value) in [
            ("bodies_truncated", 3),
            ("body_bytes_dropped", 250_000),
            ("decoded_bytes_dropped", 7),
            ("ws_messages_truncated", 2),
            ("ws_bytes_dropped", 90),
        ] {
            let row = rows.iter().find(|r| r.key == key).expect(key);
            assert_eq!(row.value, value, "{key}");
            assert!(row.lost, "{key} goes into weft.loss");
        }
        let mut summary = Vec::new();
        snap.print(&mut summary, Duration::from_secs(1));
        let summary = String::from_utf8(summary).expect("utf-8");
        assert!(
            summary.contains("bodies cut at --max-body") && summary.contains("250000"),
            "{summary}"
        );
        let page = crate::metrics::render(&snap.families(&[]));
        assert!(
            page.contains("weft_drops_total{reason=\"bodies_truncated\"} 3"),
            "{page}"
        );
    }
}
