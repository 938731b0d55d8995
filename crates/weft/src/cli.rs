//! Command line: what the user can ask of weft.

use clap::Parser;

const EXAMPLES: &str = "\
Examples:
  sudo weft                          live view of all TLS plaintext on this host
                                     (and plain HTTP, DNS, first bytes of other TCP)
  sudo weft --json > events.ndjson   the same as JSON lines (docs/schema.md)
  sudo weft --pid 1234 --comm curl   only process 1234 and processes named curl
  sudo weft --tree 4321              process 4321 and everything it starts
  sudo weft --payload-cap 4M --json  keep up to 4 MiB of each call
  sudo weft --max-body 1M --json     keep HTTP bodies whole up to 1 MiB (default 16K)
  sudo weft --max-body 0 --json      no body bytes at all, only their sizes
  sudo weft --record s.weftrec       also keep the raw records (0600 file)
  weft --replay s.weftrec --json     decode a recording again, no root needed
  sudo weft --keylog keys.log        also save session secrets (SSLKEYLOGFILE format)
  sudo weft --no-connections         TLS only: no TCP connection start/end events
  sudo weft --plaintext-ports 80,8080  decode unencrypted HTTP only on these ports
  sudo weft --no-plaintext           TLS library calls only, no socket-syscall capture
  sudo weft --interface 'veth*' --interface '!veth9'
                                     packet flows on veth interfaces only, not veth9
  sudo weft --xdp native --interface eth1
                                     count eth1's received packets with XDP
  sudo weft --no-tc                  TLS capture only, no packet path

Handshakes weft sees are reported with version, cipher, SNI, ALPN and the JA4
(client) / JA4S (server) fingerprints (`tls.client.ja4`, `tls.server.ja4s`).

weft prints one line containing `ready` on stderr once every probe is attached,
and its statistics (events, bytes, drops by reason) on stderr when it stops
(Ctrl-C or SIGTERM).";

/// weft: decrypted TLS traffic of every process, tied to the process and the
/// TCP connection, without a proxy.
#[derive(Debug, Parser)]
#[command(name = "weft", version, about, after_help = EXAMPLES)]
pub struct Cli {
    /// Write events as JSON lines (Elastic Common Schema) instead of text.
    #[arg(long)]
    pub json: bool,

    /// Also print the capture events (one per TLS call) of traffic that was
    /// decoded into HTTP events. Traffic weft cannot decode is always shown
    /// as capture events.
    #[arg(long)]
    pub raw: bool,

    /// Show credentials (Authorization, Cookie, Set-Cookie, API keys,
    /// credential-looking query parameters) instead of masking them.
    #[arg(long)]
    pub no_redact: bool,

    /// Only these processes (pid; repeat or use a comma list).
    #[arg(long, value_name = "PID", value_delimiter = ',')]
    pub pid: Vec<u32>,

    /// Only processes with this name (the kernel's 15-byte comm; repeat or
    /// comma list).
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub comm: Vec<String>,

    /// Only this process and all its descendants, also ones started later
    /// (repeat or comma list).
    #[arg(long, value_name = "PID", value_delimiter = ',')]
    pub tree: Vec<u32>,

    /// Bytes kept per library call at most (suffix K, M); longer calls are
    /// marked truncated with their real length. At most 64M.
    #[arg(long, value_name = "SIZE", default_value = "256K", value_parser = parse_size)]
    pub payload_cap: u64,

    /// Bytes of each HTTP body (request and response; as sent, and again
    /// with its content coding removed) and of each WebSocket message kept
    /// in the event (suffix K, M; 0 = none, only sizes and flags). The real
    /// size is still reported (`http.*.body.bytes`); a body cut here is
    /// flagged (`weft.http.body_truncated`, `weft.http.*.body.truncated`)
    /// and the bodies and bytes cut are counted in the exit statistics,
    /// the `weft.loss` event and the metrics. At most 64M.
    #[arg(long, value_name = "SIZE", default_value = "16K", value_parser = parse_max_body)]
    pub max_body: u32,

    /// Kernel ring-buffer size (a power of two; suffix K, M).
    #[arg(long, value_name = "SIZE", default_value = "16M", value_parser = parse_size)]
    pub ring_size: u64,

    /// Worker threads between the kernel reader and the output (default:
    /// one per CPU). Each connection is owned by one worker.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,

    /// Run weft's threads at idle priority (SCHED_IDLE): they only get CPU
    /// time the host's own work leaves over, so a busy service is slowed
    /// less (benches/overhead.sh, docs/performance.md). The price: when
    /// the host stays saturated weft falls behind, and once the ring buffer
    /// fills, records are lost (counted in the loss statistics).
    #[arg(long)]
    pub background: bool,

    /// Serve Prometheus metrics (events, bytes, drops by reason, flows,
    /// probes, per-BPF-program run counts and times) at http://ADDR/metrics.
    /// Off by default; e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,

    /// Console: payload bytes shown per line at most.
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    pub show_bytes: usize,

    /// Console: show the headers of HTTP requests and responses.
    #[arg(long)]
    pub headers: bool,

    /// Console: show HTTP bodies (printable-escaped; binary as a hexdump),
    /// up to --show-bytes each.
    #[arg(long)]
    pub bodies: bool,

    /// Console: never colour the output (also honours NO_COLOR).
    #[arg(long)]
    pub no_color: bool,

    /// Benchmarks only: attach every probe weft uses, but with programs that
    /// return at once (`hooks`, the default: the kernel's trap cost, the
    /// floor of any uprobe sensor), or that only copy each TLS call's
    /// plaintext to the ring, which weft reads and drops (`copy`: the floor
    /// of any plaintext sensor). Captures nothing.
    #[arg(long, value_name = "KIND", num_args = 0..=1, default_missing_value = "hooks")]
    pub bench_floor: Option<BenchFloor>,

    /// Also write every kernel record, as it arrives, to FILE (created
    /// private, 0600): a recording to replay later with --replay, or to
    /// attach to a bug report. It holds the captured plaintext unredacted.
    #[arg(long, value_name = "FILE")]
    pub record: Option<std::path::PathBuf>,

    /// Read the records of a recording (made with --record) instead of the
    /// kernel, through the same decoding and output; needs no privileges.
    /// Executables are unknown in a replay (the processes are gone).
    #[arg(long, value_name = "FILE")]
    pub replay: Option<std::path::PathBuf>,

    /// Benchmarks only: count events and discard them instead of writing
    /// them, to tell decoding cost from output cost.
    #[arg(long, hide = true)]
    pub bench_discard: bool,

    /// Append the session secrets of observed TLS connections to FILE in the
    /// NSS key-log format (SSLKEYLOGFILE, what Wireshark reads), so a packet
    /// capture of them can be decrypted. OpenSSL and BoringSSL (Chromium, shared libssl). The file is
    /// created 0600 and never opened through a symbolic link.
    #[arg(long, value_name = "FILE")]
    pub keylog: Option<std::path::PathBuf>,

    /// Do not report TCP connections. By default every TCP connection's
    /// start and end (tuple, owning process, bytes each way, RTT, duration)
    /// is an event, connections open when weft starts included (sock_ops on
    /// the cgroup v2 root).
    #[arg(long)]
    pub no_connections: bool,
    /// Do not capture unencrypted traffic from the socket syscalls: no
    /// plaintext HTTP, no first bytes of other TCP connections, no DNS
    /// events (nor destination.domain), and no
    /// handshake facts for clients whose TLS library does its socket I/O
    /// outside the hooked calls (node, Chromium, Go). The cheapest mode.
    #[arg(long, conflicts_with = "plaintext_ports")]
    pub no_plaintext: bool,

    /// Decode unencrypted traffic (HTTP/1, h2c) only on connections with
    /// one of these local or remote TCP ports (comma list; default: any
    /// port whose first bytes look like HTTP). First bytes of the other
    /// connections are still reported.
    #[arg(long, value_name = "PORT", value_delimiter = ',')]
    pub plaintext_ports: Vec<u16>,
    /// Packet path: only these interfaces get TC/XDP programs (repeatable;
    /// globs `*` `?`; `!NAME` excludes). Default: every interface of every
    /// network namespace, also ones created later; none with --pid, --comm
    /// or --tree unless given.
    #[arg(long, value_name = "NAME")]
    pub interface: Vec<String>,

    /// Turn the packet path off (no TC/XDP programs, no flow events).
    #[arg(long)]
    pub no_tc: bool,

    /// Packet path: count received packets with XDP (native, generic or
    /// offload) instead of TC ingress; weft fails, leaving nothing attached,
    /// when a driver cannot, and never replaces another XDP program.
    #[arg(long, value_name = "MODE", value_parser = weft_bpf::netdev::XdpMode::parse)]
    pub xdp: Option<weft_bpf::netdev::XdpMode>,

    /// Tests only: attach TC as clsact filters even where tcx works (the
    /// fallback for kernels without tcx).
    #[arg(long, hide = true)]
    pub tc_clsact: bool,

    /// Packet path: flows the kernel's table holds at most (least recently
    /// active evicted first; counted).
    #[arg(long, value_name = "N", default_value_t = 65536)]
    pub flow_table_size: u32,

    /// Packet path: a flow without packets for this many seconds ends.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub flow_idle: u64,

    /// Packet path: a flow still active after this many seconds (and every
    /// such interval after) gives a `flow-update` event with its counts so
    /// far; 0 = only at its end.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub flow_update: u64,

    /// Log level of weft's own diagnostics on stderr (error, warn, info, debug).
    #[arg(long, value_name = "LEVEL", default_value = "warn")]
    pub log_level: String,
}

/// `4096`, `64K`, `4M`, `1G` (binary units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mul) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(format!("unknown size suffix in {s:?} (use K, M or G)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size (examples: 65536, 64K, 4M)"))?;
    n.checked_mul(mul)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// The largest `--max-body`.
pub const MAX_BODY: u64 = 64 << 20;

/// `--max-body`: a size ([`parse_size`]) of at most [`MAX_BODY`].
fn parse_max_body(s: &str) -> Result<u32, String> {
    let n = parse_size(s)?;
    if n > MAX_BODY {
        return Err(format!(
            "{s:?} is above the maximum of 64M (use --record to keep whole bodies of any size)"
        ));
    }
    u32::try_from(n).map_err(|_| format!("{s:?} is too large"))
}

impl Cli {
    /// The decoders' limits: the library's defaults, with the body and
    /// WebSocket message bytes kept set by `--max-body`.
    pub fn decode_limits(&self) -> weft_proto::Limits {
        let d = weft_proto::Limits::default();
        weft_proto::Limits {
            max_body_size: self.max_body,
            max_decoded_body_size: self.max_body,
            ws_max_message_size: self.max_body,
            // A decoded body asked for whole is not stopped short by the
            // decompression guard (16 MiB by default).
            max_decompressed_size: d.max_decompressed_size.max(self.max_body),
            ..d
        }
    }
}

/// `--bench-floor`'s kinds (benches/overhead.sh's (b) and (b')).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchFloor {
    /// Every program returns at once: the kernel's trap cost.
    Hooks,
    /// The TLS library probes copy each call's plaintext to the ring; weft
    /// reads and drops it.
    Copy,
}

impl BenchFloor {
    pub fn mode(floor: Option<BenchFloor>) -> weft_bpf::sensor::Floor {
        match floor {
            None => weft_bpf::sensor::Floor::Off,
            Some(BenchFloor::Hooks) => weft_bpf::sensor::Floor::Hooks,
            Some(BenchFloor::Copy) => weft_bpf::sensor::Floor::Copy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("4m"), Ok(4 << 20));
        assert!(parse_size("4X").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("K").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn pid_lists_and_repeats() {
        let c = Cli::try_parse_from(["weft", "--pid", "1,2", "--pid", "3", "--comm", "curl"])
            .expect("parses");
        assert_eq!(c.pid, vec![1, 2, 3]);
        assert_eq!(c.comm, vec!["curl".to_string()]);
        assert!(!c.json);
    }

    #[test]
    fn plaintext_flags() {
        let c = Cli::try_parse_from(["weft", "--plaintext-ports", "80,8080"]).expect("parses");
        assert_eq!(c.plaintext_ports, vec![80, 8080]);
        assert!(!c.no_plaintext);
        assert!(
            Cli::try_parse_from(["weft", "--no-plaintext", "--plaintext-ports", "80"]).is_err()
        );
    }

    #[test]
    fn packet_path_flags() {
        let c = Cli::try_parse_from([
            "weft",
            "--interface",
            "veth*",
            "--interface",
            "!veth9",
            "--xdp",
            "generic",
        ])
        .expect("parses");
        assert_eq!(c.interface, vec!["veth*".to_string(), "!veth9".to_string()]);
        assert_eq!(c.xdp, Some(weft_bpf::netdev::XdpMode::Generic));
        assert!(!c.no_tc);
        assert!(Cli::try_parse_from(["weft", "--xdp", "fast"]).is_err());
    }

    #[test]
    fn max_body() {
        let c = Cli::try_parse_from(["weft"]).expect("parses");
        assert_eq!(c.max_body, 16 * 1024);
        let l = c.decode_limits();
        assert_eq!(l.max_body_size, 16 * 1024);
        assert_eq!(l.max_decoded_body_size, 16 * 1024);
        assert_eq!(l.ws_max_message_size, 16 * 1024);
        // Everything else is the library's default.
        let d = weft_proto::Limits::default();
        assert_eq!(
            weft_proto::Limits {
                max_body_size: d.max_body_size,
                max_decoded_body_size: d.max_decoded_body_size,
                ws_max_message_size: d.ws_max_message_size,
                ..l
            },
            d
        );

        let c = Cli::try_parse_from(["weft", "--max-body", "0"]).expect("parses");
        let l = c.decode_limits();
        assert_eq!(
            (
                l.max_body_size,
                l.max_decoded_body_size,
                l.ws_max_message_size
            ),
            (0, 0, 0)
        );
        assert_eq!(l.max_decompressed_size, d.max_decompressed_size);

        let c = Cli::try_parse_from(["weft", "--max-body", "1M"]).expect("parses");
        assert_eq!(c.decode_limits().max_body_size, 1 << 20);

        let c = Cli::try_parse_from(["weft", "--max-body", "64M"]).expect("parses");
        let l = c.decode_limits();
        assert_eq!(l.max_body_size, 64 << 20);
        assert_eq!(l.max_decompressed_size, 64 << 20);

        let e = Cli::try_parse_from(["weft", "--max-body", "65M"])
            .expect_err("above the maximum")
            .to_string();
        assert!(e.contains("maximum of 64M"), "{e}");
        assert!(Cli::try_parse_from(["weft", "--max-body", "5G"]).is_err());
        assert!(Cli::try_parse_from(["weft", "--max-body", "16X"]).is_err());
    }

    #[test]
    fn bench_floor_kinds() {
        let f = |args: &[&str]| Cli::try_parse_from(args).map(|c| c.bench_floor);
        assert_eq!(f(&["weft"]).expect("parses"), None);
        assert_eq!(
            f(&["weft", "--bench-floor"]).expect("parses"),
            Some(BenchFloor::Hooks)
        );
        assert_eq!(
            f(&["weft", "--bench-floor", "copy"]).expect("parses"),
            Some(BenchFloor::Copy)
        );
        assert_eq!(
            f(&["weft", "--bench-floor=hooks", "--json"]).expect("parses"),
            Some(BenchFloor::Hooks)
        );
        assert!(f(&["weft", "--bench-floor", "nothing"]).is_err());
    }

    #[test]
    fn bad_pid_is_an_error() {
        assert!(Cli::try_parse_from(["weft", "--pid", "abc"]).is_err());
    }
}
