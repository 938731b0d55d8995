//! weft: the binary. Parses the command line and wires the stages together:
//! kernel sensor (weft-bpf) -> reader (assembly, process context) -> sink
//! thread (weft-sink), with discovery of new TLS libraries on its own thread.

mod cli;
mod conn;
mod keylog;
mod metrics;
mod packets;
mod reader;
mod record;
mod stats;
mod targets;

use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use crossbeam_channel::{RecvTimeoutError, bounded};
use weft_bpf::{Sensor, SensorConfig};
use weft_core::decode::{DecodeConfig, DecodeStats, HttpDecoder};
use weft_core::discovery::{self, ALL_LIBRARIES, FileId, ProbeTarget};
use weft_core::event::Event;
use weft_core::pipeline::{Encoder, Output, Pipeline, PipelineConfig};
use weft_sink::{ConsoleOptions, ConsoleSink, JsonOptions, Sink};

use crate::cli::Cli;
use crate::stats::{Snapshot, Stats};

const MAX_PAYLOAD_CAP: u64 = 64 << 20;

fn main() -> ExitCode {
    weft_bpf::sensor::limit_malloc_arenas(2);
    weft_bpf::sensor::fix_malloc_thresholds();
    let cli = Cli::parse();
    init_logging(&cli.log_level);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("weft: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(format!(
        "weft={level},weft_bpf={level},weft_core={level},libbpf=warn"
    ))
    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// A flag SIGINT and SIGTERM set: the main loops stop on it.
fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("cannot install the SIGINT/SIGTERM handler")?;
    }
    Ok(stop)
}

/// `--payload-cap` within its bounds (live capture and replay alike).
fn check_payload_cap(cli: &Cli) -> Result<()> {
    if cli.payload_cap > MAX_PAYLOAD_CAP {
        bail!(
            "--payload-cap {} is above the maximum of 64M",
            cli.payload_cap
        );
    }
    Ok(())
}

fn sensor_config(cli: &Cli) -> Result<SensorConfig> {
    check_payload_cap(cli)?;
    let ring_size = u32::try_from(cli.ring_size)
        .ok()
        .filter(|r| r.is_power_of_two() && *r >= 4096)
        .with_context(|| {
            format!(
                "--ring-size {} must be a power of two between 4K and 2G",
                cli.ring_size
            )
        })?;
    for name in &cli.comm {
        weft_bpf::sensor::comm_key(name).map_err(anyhow::Error::from)?;
    }
    Ok(SensorConfig {
        payload_cap: cli.payload_cap,
        // Body bytes past --max-body reach no event: the kernel need not
        // copy them, unless raw capture events or a recording want every
        // byte.
        body_keep: (!cli.raw && cli.record.is_none()).then_some(u64::from(cli.max_body)),
        ring_size,
        pids: cli.pid.clone(),
        tree_pids: cli.tree.clone(),
        comms: cli.comm.clone(),
        floor: cli::BenchFloor::mode(cli.bench_floor),
        keylog: cli.keylog.is_some(),
        plaintext: !cli.no_plaintext,
        plaintext_ports: cli.plaintext_ports.clone(),
        pkt_flows: check_flow_table_size(cli)?,
    })
}

/// `--flow-table-size` within what the kernel can allocate sensibly.
fn check_flow_table_size(cli: &Cli) -> Result<u32> {
    if !(1..=16 << 20).contains(&cli.flow_table_size) {
        bail!(
            "--flow-table-size {} must be between 1 and 16777216",
            cli.flow_table_size
        );
    }
    Ok(cli.flow_table_size)
}

/// Attach the packet path (TC, XDP) unless `--no-tc`.
fn start_packet_path(
    cli: &Cli,
    sensor: &Sensor,
    stats: &Stats,
) -> Result<Option<weft_bpf::netdev::Netdev>> {
    if cli.no_tc {
        if cli.xdp.is_some() || !cli.interface.is_empty() {
            bail!("--xdp and --interface select where the packet path goes; --no-tc turns it off");
        }
        return Ok(None);
    }
    // A process filter asks for those processes' traffic; packet flows are
    // not tied to processes (yet), so the packet path then stays off unless
    // the user named interfaces.
    let targeted = !cli.pid.is_empty() || !cli.comm.is_empty() || !cli.tree.is_empty();
    if targeted && cli.interface.is_empty() && cli.xdp.is_none() {
        return Ok(None);
    }
    let filter = weft_bpf::netdev::IfFilter::new(&cli.interface)?;
    let netdev = weft_bpf::netdev::Netdev::start(
        sensor,
        weft_bpf::netdev::NetdevConfig {
            filter,
            xdp: cli.xdp,
            rescan: Duration::from_secs(1),
            force_clsact: cli.tc_clsact,
        },
    )
    .context("cannot attach the packet path (turn it off with --no-tc)")?;
    if let Ok(mut r) = stats.netdev.lock() {
        *r = Some(netdev.report());
    }
    Ok(Some(netdev))
}

/// Attach the probes a discovered file needs; warn and carry on on failure.
fn attach(sensor: &mut Sensor, t: &ProbeTarget, stats: &Stats) {
    attach_for(sensor, t, None, stats);
}

/// [`attach`] for every process (`None`) or for one only (`targets`).
pub(crate) fn attach_for(sensor: &mut Sensor, t: &ProbeTarget, pid: Option<u32>, stats: &Stats) {
    use weft_bpf::abi;
    use weft_core::event::TlsLibrary;
    let lib = match t.library {
        TlsLibrary::OpenSsl => abi::LIB_OPENSSL,
        TlsLibrary::BoringSsl => abi::LIB_BORINGSSL,
        TlsLibrary::GnuTls => abi::LIB_GNUTLS,
        TlsLibrary::Nss => abi::LIB_NSS,
        TlsLibrary::WolfSsl => abi::LIB_WOLFSSL,
        TlsLibrary::GoTls => abi::LIB_GO,
        // Discovery never finds "no library": nothing to attach.
        TlsLibrary::None => return,
    };
    let points: Vec<weft_bpf::ProbePoint> = t
        .symbols
        .iter()
        .map(|s| weft_bpf::ProbePoint {
            symbol: s.name.clone(),
            offset: s.offset,
        })
        .collect();
    // Go: entries and RET instructions, never uretprobes (weft_bpf::go).
    let attached = if lib == abi::LIB_GO {
        sensor.attach_go_for(pid, &t.path, &points)
    } else {
        sensor.attach_library_for(pid, &t.path, &points, lib)
    };
    match attached {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(file = %t.display_path, uprobes = n, ?pid, "attached");
            let by = t
                .pid
                .map_or_else(|| "installed".to_string(), |p| format!("pid {p}"));
            let is_go = lib == abi::LIB_GO;
            stats.report_probed(stats::probed_line(t, n, &by, |s| {
                is_go || sensor.probes(lib, s)
            }));
        }
        // A process that exited while its links were being made.
        Err(e) if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) => {
            tracing::debug!("{e} (the process exited)");
        }
        Err(e) => {
            stats.attach_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("{e}; weft keeps running without it");
            stats.report_skipped(format!("{}: {e}", t.display_path));
        }
    }
}

/// Every counter, read now.
fn snapshot<'a>(
    stats: &'a Stats,
    sensor: &Sensor,
    asm: weft_bpf::assemble::AssemblyStats,
    decode_stats: &Mutex<DecodeStats>,
) -> Snapshot<'a> {
    Snapshot {
        stats,
        kernel: sensor.kernel_stats(),
        asm,
        decoded: decode_stats.lock().map(|d| d.clone()).unwrap_or_default(),
        uprobes: sensor.uprobe_count(),
        files: sensor.attached_files(),
    }
}

fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn kernel_dev(id: &FileId) -> u64 {
    (u64::from(id.major()) << 20) | u64::from(id.minor())
}

/// The TLS files installed on the system, found at start-up.
struct InstalledScan {
    installed: Vec<ProbeTarget>,
    errors: Vec<discovery::DiscoveryError>,
    seen: std::collections::HashSet<FileId>,
}

/// Find the installed TLS files on a thread of their own. Installed
/// libraries are probed before anything else: processes started later
/// load them from their first call on, with no race against discovery.
/// Executables that embed a TLS library (node, Go programs) likewise:
/// found only when they start, they would race their own first calls.
/// With a process filter, an executable is inspected when a selected
/// process runs it (targets.rs): scanning them all would only slow the
/// start.
fn spawn_installed_scan(targeted: bool) -> Result<std::thread::JoinHandle<InstalledScan>> {
    std::thread::Builder::new()
        .name("weft-scan".into())
        .spawn(move || {
            let t0 = Instant::now();
            let mut seen = std::collections::HashSet::new();
            let (mut installed, mut errors) = discovery::scan_library_dirs(
                discovery::SYSTEM_LIBRARY_DIRS,
                ALL_LIBRARIES,
                &mut seen,
            );
            let exe_dirs = if targeted {
                &[][..]
            } else {
                discovery::SYSTEM_EXECUTABLE_DIRS
            };
            let (embedded, embedded_errors) =
                discovery::scan_executable_dirs(exe_dirs, ALL_LIBRARIES, &mut seen);
            installed.extend(embedded);
            errors.extend(embedded_errors);
            tracing::debug!(
                ms = t0.elapsed().as_millis(),
                "start-up: scan of installed files took"
            );
            InstalledScan {
                installed,
                errors,
                seen,
            }
        })
        .context("cannot start the discovery thread")
}

fn run(cli: Cli) -> Result<ExitCode> {
    if let Some(path) = cli.replay.clone() {
        return run_replay(&cli, &path);
    }
    let cfg = sensor_config(&cli)?;
    let started = Instant::now();
    let stats = Arc::new(Stats::default());

    let stop = stop_flag()?;

    let keylog = cli.keylog.as_deref().map(keylog::open).transpose()?;
    // The installed files are found while the kernel verifies the programs:
    // both take a few hundred milliseconds, on different cores.
    let installed_scan = spawn_installed_scan(cfg.targeted())?;
    let mut sensor = Sensor::load(&cfg)?;
    tracing::debug!(
        ms = started.elapsed().as_millis(),
        "start-up: BPF programs loaded and verified"
    );
    // Connection events: attached before anything else so the seeding
    // iterator and sock_ops leave no gap between them.
    let connections = if cli.no_connections || cli.bench_floor.is_some() {
        None
    } else {
        conn::start(&sensor, cfg.targeted())
    };
    let netdev = start_packet_path(&cli, &sensor, &stats)?;
    let mut flow_reporter = netdev.as_ref().map(|n| {
        packets::FlowReporter::new(
            n.names(),
            cli.flow_idle,
            cli.flow_update,
            weft_bpf::sensor::monotonic_to_unix_offset_ns(),
        )
    });

    // Everything already running: attach once per file.
    let proc_root = Path::new("/proc");
    let InstalledScan {
        installed,
        errors,
        mut seen,
    } = installed_scan
        .join()
        .map_err(|_| anyhow::anyhow!("the scan of installed TLS libraries panicked"))?;
    tracing::debug!(
        ms = started.elapsed().as_millis(),
        files = installed.len(),
        "start-up: installed TLS files found"
    );
    for e in &errors {
        tracing::debug!("{e}");
        stats.report_skipped(e.to_string());
    }
    // Discovery of files exec'd or mapped later (dlopen included).
    let (disc_tx, disc_rx) = bounded::<(u32, u64, u64)>(4096);
    // With a process filter: uprobes in the selected processes only.
    let (inspect_tx, inspect_rx) = bounded::<(u32, u64, u64)>(4096);
    let mut targets = targets::Targets::new(
        &cli.pid,
        &cli.tree,
        &cli.comm,
        installed.clone(),
        disc_rx.clone(),
        inspect_tx,
    );
    let processes = if let Some(targets) = targets.as_mut() {
        targets.start(&mut sensor, &stats)
    } else {
        for t in &installed {
            attach(&mut sensor, t, &stats);
        }
        tracing::debug!(
            ms = started.elapsed().as_millis(),
            "start-up: installed files probed"
        );
        let summary = discovery::scan_all(proc_root, ALL_LIBRARIES, &mut seen)
            .context("cannot list processes in /proc")?;
        tracing::debug!(
            ms = started.elapsed().as_millis(),
            "start-up: processes scanned"
        );
        for (pid, e) in &summary.errors {
            tracing::debug!(pid, "{e}");
            stats.report_skipped(format!("pid {pid}: {e}"));
        }
        for t in &summary.targets {
            attach(&mut sensor, t, &stats);
        }
        summary.processes
    };
    drop(installed);
    tracing::debug!(
        ms = started.elapsed().as_millis(),
        processes,
        "start-up: probes attached, running processes scanned"
    );
    for id in &seen {
        sensor.mark_seen(kernel_dev(id), id.ino);
    }

    let (found_tx, found_rx) = bounded::<ProbeTarget>(1024);
    let disc_stats = Arc::clone(&stats);
    // With targets, the records are theirs: the thread inspects the files
    // they pass on.
    let disc_rx = if targets.is_some() {
        inspect_rx
    } else {
        disc_rx
    };
    let discovery_thread = std::thread::Builder::new()
        .name("weft-discovery".into())
        .spawn(move || {
            for (pid, kdev, ino) in disc_rx {
                if seen.contains(&FileId::from_kernel_dev(kdev, ino)) {
                    continue;
                }
                match discovery::scan_process(proc_root, pid, ALL_LIBRARIES, &mut seen) {
                    Ok(scan) => {
                        for e in scan.errors {
                            tracing::debug!(pid, "{e}");
                            disc_stats.report_skipped(format!("pid {pid}: {e}"));
                        }
                        for t in scan.targets {
                            if found_tx.send(t).is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) if e.is_process_gone() => {
                        disc_stats.discovery_missed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => tracing::debug!(pid, "{e}"),
                }
            }
        })
        .context("cannot start the discovery thread")?;

    let (ev_tx, encoder, sink_thread) = spawn_output(&cli, &stats, &stop)?;
    let (pipeline, decode_stats) = start_pipeline(&cli, &stats, encoder, ev_tx)?;
    let pipeline_stats = pipeline.stats();
    let host = reader::Host::live()?;
    let recorder = match &cli.record {
        Some(path) => Some(record::Recorder::create(path, &host.header())?),
        None => None,
    };
    let reader = reader::Reader::new(
        cfg.payload_cap,
        host,
        pipeline,
        Some(disc_tx),
        recorder,
        Arc::clone(&stats),
    );
    if let Some(k) = keylog {
        reader.set_keylog(k);
    }
    // Seeded starts go first: the ring's records about them come later.
    let _conn_links = connections.map(|c| {
        reader.seed_connections(c.seeded, &c.owners);
        c.links
    });
    // Long connections' counts so far (--flow-update), when connection
    // events are on.
    let mut conn_updater = _conn_links
        .as_ref()
        .and_then(|_| conn::ConnUpdater::new(cli.flow_update));
    let mut rb = sensor.ring_buffer(reader.callback())?;

    weft_bpf::sensor::release_free_memory();
    if cli.background {
        // After start-up (which then runs at normal priority): the
        // pipeline's threads exist by now; later ones inherit the class.
        weft_bpf::sensor::run_in_background()
            .context("--background: cannot set the idle scheduling class")?;
    } else {
        match weft_bpf::sensor::request_short_slices() {
            Ok(0) => {}
            Ok(n) => tracing::debug!(threads = n, "short scheduler slices refused"),
            Err(e) => tracing::debug!(error = %e, "short scheduler slices not requested"),
        }
    }
    let packet_path = match &netdev {
        Some(n) => {
            let r = n.report();
            format!(
                ", packet path on {} interfaces in {} network namespaces",
                r.interfaces, r.namespaces
            )
        }
        None => String::new(),
    };
    tracing::debug!(ms = started.elapsed().as_millis(), "start-up: ready");
    eprintln!(
        "weft: ready: {} uprobes on {} files, {} processes scanned{packet_path} (Ctrl-C to stop)",
        sensor.uprobe_count(),
        sensor.attached_files(),
        processes
    );
    let _ = std::io::stderr().flush();

    // Metrics: opt-in; the page is refreshed by this loop once a second.
    let metrics = match cli.metrics {
        Some(addr) => {
            let run_stats = sensor.enable_run_stats()?;
            let page: metrics::Page = Arc::new(Mutex::new(String::new()));
            let bound = metrics::serve(addr, Arc::clone(&page))?;
            tracing::info!(%bound, "metrics at http://{bound}/metrics");
            Some((page, run_stats))
        }
        None => None,
    };
    let mut last_refresh = Instant::now() - Duration::from_secs(10);
    // Loss reports: a `weft-loss` event when counters of lost data grew.
    const LOSS_EVERY: Duration = Duration::from_secs(10);
    let mut last_loss = Instant::now();
    let mut reported: std::collections::HashMap<&'static str, u64> =
        std::collections::HashMap::new();

    // Memory freed by closed flows goes back to the system (the allocator
    // keeps it in its arenas otherwise, and resident size never shrinks).
    const TRIM_EVERY: Duration = Duration::from_secs(30);
    let mut last_trim = Instant::now();
    // Packet flows: the kernel's table is read once a second.
    const FLOWS_EVERY: Duration = Duration::from_secs(1);
    let mut last_flows = Instant::now();
    // The ring is read when the kernel wakes the reader (see
    // `sensor::wakeup_bytes`) or when the wait ends: every 5 ms while
    // records keep coming, so that a trickle below the wake-up threshold is
    // read and passed on in small pieces too, and every 100 ms once a wait
    // found nothing (an idle host costs weft ten wake-ups a second).
    const POLL_BUSY: Duration = Duration::from_millis(5);
    const POLL_IDLE: Duration = Duration::from_millis(100);
    let mut poll_wait = POLL_IDLE;
    while !stop.load(Ordering::Relaxed) {
        let read = weft_bpf::sensor::poll(&mut rb, poll_wait)?;
        poll_wait = if read > 0 { POLL_BUSY } else { POLL_IDLE };
        reader.flush();
        if let Some(fr) = flow_reporter.as_mut()
            && last_flows.elapsed() >= FLOWS_EVERY
        {
            last_flows = Instant::now();
            if let (Some(n), Ok(mut r)) = (&netdev, stats.netdev.lock()) {
                *r = Some(n.report());
            }
            for ev in fr.poll(&sensor, &stats, &reader, false) {
                reader.inject(ev);
            }
        }
        if let Some(u) = conn_updater.as_mut() {
            reader.connection_updates(u.poll(&sensor));
        }
        if last_trim.elapsed() >= TRIM_EVERY {
            last_trim = Instant::now();
            weft_bpf::sensor::release_free_memory();
        }
        if let Some(t) = targets.as_mut() {
            t.step(&mut sensor, &stats);
        }
        while let Ok(t) = found_rx.try_recv() {
            match targets.as_mut() {
                Some(targets) => targets.found(&mut sensor, t, &stats),
                None => attach(&mut sensor, &t, &stats),
            }
        }
        if let Some((page, _)) = &metrics
            && last_refresh.elapsed() >= Duration::from_secs(1)
        {
            last_refresh = Instant::now();
            let snap = snapshot(&stats, &sensor, reader.assembly_stats(), &decode_stats);
            let text = metrics::render(&snap.families(&sensor.program_stats()));
            if let Ok(mut p) = page.lock() {
                *p = text;
            }
        }
        if last_loss.elapsed() >= LOSS_EVERY {
            let interval = last_loss.elapsed();
            last_loss = Instant::now();
            let snap = snapshot(&stats, &sensor, reader.assembly_stats(), &decode_stats);
            let mut counts = Vec::new();
            for row in snap.losses().into_iter().filter(|r| r.lost) {
                let before = reported.insert(row.key, row.value).unwrap_or(0);
                if row.value > before {
                    counts.push((row.key, row.value - before));
                }
            }
            if !counts.is_empty() {
                reader.inject(Event::Loss(weft_core::event::Loss {
                    timestamp_ns: wall_clock_ns(),
                    interval_ns: u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX),
                    counts,
                }));
            }
        }
    }
    // Drain what the kernel already produced, then close the pipeline.
    let _ = rb.consume();
    reader.flush();
    // The packet path: detach, then report every flow still in the table.
    if let Some(n) = netdev {
        if let Ok(mut r) = stats.netdev.lock() {
            *r = Some(n.report());
        }
        n.stop();
    }
    if let Some(fr) = flow_reporter.as_mut() {
        for ev in fr.poll(&sensor, &stats, &reader, true) {
            reader.inject(ev);
        }
    }
    drop(rb);
    let (asm, recorder) = reader.finish();
    drop(found_rx);
    // The targets hold the discovery thread's queue open.
    drop(targets);
    tracing::debug!(
        events_in = pipeline_stats.events_in.load(Ordering::Relaxed),
        waits = pipeline_stats.input_waits.load(Ordering::Relaxed),
        "pipeline"
    );
    let _ = sink_thread.join();
    let _ = discovery_thread.join();

    snapshot(&stats, &sensor, asm, &decode_stats).print(&mut std::io::stderr(), started.elapsed());
    if let Some(r) = &recorder {
        report_recording(r, &stats);
    }
    drop(metrics);
    drop(sensor);
    Ok(if stats.sink_failed.load(Ordering::Relaxed) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Where the output stage writes: a sink formatting events (console), or
/// bytes the workers already encoded (JSON lines, or nothing for
/// `--bench-discard`), written to standard output as they come: the chunks
/// are whole lines, ~64 KiB (more for one huge event), so a buffer would only
/// add a copy.
enum Out {
    Sink(Box<dyn Sink + Send>),
    Encoded(std::fs::File),
}

impl Out {
    fn write(&mut self, o: Output) -> Result<Option<Vec<u8>>, weft_sink::SinkError> {
        match (self, o) {
            (Out::Sink(s), Output::Events(batch)) => {
                for ev in &batch {
                    s.write(ev)?;
                }
                Ok(None)
            }
            (Out::Encoded(w), Output::Encoded { mut bytes, .. }) => {
                w.write_all(&bytes)
                    .map_err(|source| weft_sink::SinkError::Write {
                        sink: "JSON lines",
                        source,
                    })?;
                bytes.clear();
                // A buffer grown for a huge event is not kept for reuse.
                Ok((bytes.capacity() <= 256 << 10).then_some(bytes))
            }
            // Not produced: the workers encode exactly when the output is
            // `Encoded`.
            (Out::Sink(_), Output::Encoded { .. }) | (Out::Encoded(_), Output::Events(_)) => {
                Ok(None)
            }
        }
    }

    fn flush(&mut self) -> Result<(), weft_sink::SinkError> {
        match self {
            Out::Sink(s) => s.flush(),
            Out::Encoded(w) => w.flush().map_err(|source| weft_sink::SinkError::Flush {
                sink: "JSON lines",
                source,
            }),
        }
    }
}

/// The output stage on its own thread, fed through a bounded queue: the
/// console sink formats events there; JSON lines are encoded by the workers
/// (`Encoder`) and only written here. A slow output blocks the workers and
/// the reader; live, the kernel ring then fills and counts its drops.
fn spawn_output(
    cli: &Cli,
    stats: &Arc<Stats>,
    stop: &Arc<AtomicBool>,
) -> Result<(
    crossbeam_channel::Sender<Output>,
    Option<Encoder>,
    std::thread::JoinHandle<()>,
)> {
    let (ev_tx, ev_rx) = bounded::<Output>(PipelineConfig::default().output_batches());
    let stdout = || std::io::BufWriter::with_capacity(1 << 16, std::io::stdout());
    let raw_stdout = || -> Result<std::fs::File> {
        Ok(std::fs::File::from(
            std::io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .context("cannot use standard output")?,
        ))
    };
    let (mut out, encoder, back) = if cli.bench_discard {
        // Events are built, then dropped by the workers unencoded.
        let (enc, back) = Encoder::new(Arc::new(|_: &Event, _: &mut Vec<u8>| {}));
        (Out::Encoded(raw_stdout()?), Some(enc), Some(back))
    } else if cli.json {
        let opts = JsonOptions::default().redact(!cli.no_redact);
        let (enc, back) = Encoder::new(Arc::new(move |ev: &Event, buf: &mut Vec<u8>| {
            let before = buf.len();
            weft_sink::encode_event_with(ev, &opts, buf);
            if buf.len() > before {
                buf.push(b'\n');
            }
        }));
        (Out::Encoded(raw_stdout()?), Some(enc), Some(back))
    } else {
        let color = !cli.no_color
            && std::env::var_os("NO_COLOR").is_none()
            && std::io::stdout().is_terminal();
        let sink = ConsoleSink::new(
            stdout(),
            ConsoleOptions::default()
                .color(color)
                .max_payload_bytes(cli.show_bytes)
                .show_headers(cli.headers)
                .show_bodies(cli.bodies)
                .redact(!cli.no_redact),
        );
        (Out::Sink(Box::new(sink)), None, None)
    };
    let sink_stats = Arc::clone(stats);
    let sink_stop = Arc::clone(stop);
    let sink_thread = std::thread::Builder::new()
        .name("weft-sink".into())
        .spawn(move || {
            // Flush at least every FLUSH_EVERY while events trickle in, and
            // whenever the queue runs dry: a person watching sees each event
            // within a fraction of a second, a busy pipe gets full buffers.
            const FLUSH_EVERY: Duration = Duration::from_millis(200);
            let mut last_flush = Instant::now();
            let mut dirty = false;
            // A closed pipe (`weft | head`) ends weft quietly; any other
            // output error is reported and makes the exit status non-zero.
            let fail = |e: &weft_sink::SinkError| {
                if !e.is_broken_pipe() {
                    eprintln!("weft: error: {e}: {}", e.io_error());
                    sink_stats.sink_failed.store(true, Ordering::Relaxed);
                }
                sink_stop.store(true, Ordering::Relaxed);
            };
            loop {
                match ev_rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(o) => {
                        let n = o.events();
                        match out.write(o) {
                            Ok(Some(spare)) => {
                                if let Some(back) = &back {
                                    let _ = back.try_send(spare);
                                }
                            }
                            Ok(None) => {}
                            Err(e) => {
                                fail(&e);
                                return;
                            }
                        }
                        dirty = true;
                        sink_stats.events_out.fetch_add(n as u64, Ordering::Relaxed);
                        if last_flush.elapsed() < FLUSH_EVERY {
                            continue;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        let _ = out.flush();
                        return;
                    }
                }
                if dirty {
                    if let Err(e) = out.flush() {
                        fail(&e);
                        return;
                    }
                    dirty = false;
                }
                last_flush = Instant::now();
            }
        })
        .context("cannot start the output thread")?;
    Ok((ev_tx, encoder, sink_thread))
}

/// Workers between the reader and the sink: one owner per connection.
fn start_pipeline(
    cli: &Cli,
    stats: &Stats,
    encoder: Option<Encoder>,
    ev_tx: crossbeam_channel::Sender<Output>,
) -> Result<(Pipeline, Arc<Mutex<DecodeStats>>)> {
    let pipeline_cfg = PipelineConfig {
        workers: cli
            .workers
            .map_or_else(|| PipelineConfig::default().workers, usize::from),
        ..PipelineConfig::default()
    };
    let decode_cfg = DecodeConfig {
        limits: cli.decode_limits(),
        raw: cli.raw,
        redact: !cli.no_redact,
        ..DecodeConfig::default()
    };
    let decode_stats = Arc::new(Mutex::new(DecodeStats::default()));
    let pipeline = Pipeline::start(
        pipeline_cfg,
        |_| {
            weft_core::tls::TlsSessions::new(
                HttpDecoder::new(decode_cfg, Arc::clone(&decode_stats)),
                Arc::clone(&stats.tls),
            )
        },
        encoder,
        ev_tx,
    )
    .context("cannot start the worker threads")?;
    Ok((pipeline, decode_stats))
}

fn report_recording(r: &record::Recorder, stats: &Stats) {
    match &r.error {
        None => eprintln!(
            "weft: recorded {} records ({} bytes) to {}",
            r.records,
            r.bytes,
            r.path().display()
        ),
        Some(e) => {
            eprintln!(
                "weft: error: the recording {} stopped after {} records: {e}",
                r.path().display(),
                r.records
            );
            stats.sink_failed.store(true, Ordering::Relaxed);
        }
    }
}

/// `--replay FILE`: a recording's records through the same stages as live
/// records (assembly, process context, decoding, output), as fast as they
/// go. Needs no privileges and no kernel support.
fn run_replay(cli: &Cli, path: &Path) -> Result<ExitCode> {
    for (given, flag) in [
        (!cli.pid.is_empty(), "--pid"),
        (!cli.comm.is_empty(), "--comm"),
        (!cli.tree.is_empty(), "--tree"),
        (cli.record.is_some(), "--record"),
        (cli.bench_floor.is_some(), "--bench-floor"),
        (cli.metrics.is_some(), "--metrics"),
        (cli.xdp.is_some(), "--xdp"),
        (!cli.interface.is_empty(), "--interface"),
    ] {
        if given {
            bail!("{flag} applies to live capture and cannot be combined with --replay");
        }
    }
    check_payload_cap(cli)?;
    let mut replay = record::Replay::open(path, weft_bpf::abi::ABI_VERSION)?;
    let started = Instant::now();
    let cpu_before = weft_bpf::sensor::process_cpu_ns();
    let stats = Arc::new(Stats::default());
    let stop = stop_flag()?;
    let (ev_tx, encoder, sink_thread) = spawn_output(cli, &stats, &stop)?;
    let (pipeline, decode_stats) = start_pipeline(cli, &stats, encoder, ev_tx)?;
    let reader = reader::Reader::new(
        cli.payload_cap,
        reader::Host::replayed(&replay.header),
        pipeline,
        None,
        None,
        Arc::clone(&stats),
    );
    let (mut records, mut bytes) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let Some(rec) = replay.next_record()? else {
            break;
        };
        records += 1;
        bytes += rec.len() as u64;
        reader.feed(rec);
    }
    let (asm, _) = reader.finish();
    let _ = sink_thread.join();
    let elapsed = started.elapsed();
    let cpu_s = weft_bpf::sensor::process_cpu_ns().saturating_sub(cpu_before) as f64 / 1e9;
    let decoded = decode_stats.lock().map(|d| d.clone()).unwrap_or_default();
    Snapshot {
        stats: &stats,
        kernel: Vec::new(),
        asm,
        decoded,
        uprobes: 0,
        files: 0,
    }
    .print(&mut std::io::stderr(), elapsed);
    if replay.cut_short {
        eprintln!(
            "weft: warning: {} ends inside a record (the recording was cut short); \
             the records before it were replayed",
            path.display()
        );
    }
    let events = stats.events_out.load(Ordering::Relaxed);
    let calls = stats.calls_in.load(Ordering::Relaxed);
    let per_cpu = |n: u64| if cpu_s > 0.0 { n as f64 / cpu_s } else { 0.0 };
    eprintln!(
        "weft: replayed {records} records ({calls} library calls, {bytes} bytes) into {events} \
         events in {:.3} s ({cpu_s:.3} CPU-s: {:.0} calls/s, {:.0} events/s, {:.1} MB/s per \
         CPU-second)",
        elapsed.as_secs_f64(),
        per_cpu(calls),
        per_cpu(events),
        per_cpu(bytes) / 1e6,
    );
    Ok(if stats.sink_failed.load(Ordering::Relaxed) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
