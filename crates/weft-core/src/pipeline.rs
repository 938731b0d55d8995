//! The user-space pipeline: reader -> sharded workers -> one output stage.
//!
//! Events are sharded by connection (socket cookie; the thread id when the
//! connection is unknown) so that one worker owns each flow: flow state needs
//! no locks and per-flow order is kept. Every queue is bounded. Input queues
//! block when full (the reader slows down and the kernel ring, which counts
//! its drops, absorbs the burst); the output queue blocks too, since sinks
//! must not lose events.
//!
//! Events travel in batches ([`Batch`], up to [`BATCH`] events): a queue
//! operation, and the wake-up of a sleeping thread it may cost (a futex
//! call, a context switch), is paid per batch instead of per event. The
//! reader calls [`Pipeline::flush`] after each pass over the ring, so a
//! batch never waits for more events to fill it.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};

use crate::event::{Event, Flow};

/// Events moved between stages in one queue operation.
pub type Batch = Vec<Event>;

/// Most events in one [`Batch`].
pub const BATCH: usize = 64;

/// Work done on each event by a worker: owns the state of the flows sharded
/// to it. `emit` hands results to the output stage, in order.
pub trait Processor: Send {
    fn process(&mut self, ev: Event, emit: &mut dyn FnMut(Event));
    /// Called at least every `tick_every` with the current time, to expire
    /// idle state.
    fn tick(&mut self, _now: Instant, _emit: &mut dyn FnMut(Event)) {}
    /// The input is closed: emit what is still pending.
    fn finish(&mut self, _emit: &mut dyn FnMut(Event)) {}
}

/// A processor that forwards events unchanged.
#[derive(Debug, Default)]
pub struct PassThrough;

impl Processor for PassThrough {
    fn process(&mut self, ev: Event, emit: &mut dyn FnMut(Event)) {
        emit(ev);
    }
}

/// Pipeline sizes.
#[derive(Debug, Clone, Copy)]
pub struct PipelineConfig {
    pub workers: usize,
    /// Capacity of each worker's input queue (events, rounded up to whole
    /// batches).
    pub queue: usize,
    /// Capacity of the output queue (events, rounded up to whole batches).
    pub output_queue: usize,
    pub tick_every: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            queue: 4096,
            output_queue: 8192,
            tick_every: Duration::from_millis(500),
        }
    }
}

impl PipelineConfig {
    /// Capacity, in batches, of the output queue to create for [`Pipeline::start`].
    pub fn output_batches(&self) -> usize {
        self.output_queue.div_ceil(BATCH).max(1)
    }
}

/// Counters of the pipeline itself.
#[derive(Debug, Default)]
pub struct PipelineStats {
    pub events_in: AtomicU64,
    /// Times a send to a worker found its queue full and had to wait.
    pub input_waits: AtomicU64,
    pub events_out: AtomicU64,
}

/// The running workers. Drop the pipeline (or call `close`) to end them.
pub struct Pipeline {
    inputs: Vec<Sender<Batch>>,
    /// Events waiting for their worker's batch to be sent.
    pending: Vec<Batch>,
    handles: Vec<JoinHandle<()>>,
    seed: foldhash_like::Seed,
    stats: Arc<PipelineStats>,
}

/// A tiny seeded hash for shard choice: cookies are kernel-assigned, but a
/// seed keeps an adversary from steering many flows onto one worker.
mod foldhash_like {
    #[derive(Clone, Copy)]
    pub struct Seed(pub u64);
    impl std::hash::BuildHasher for Seed {
        type Hasher = H;
        fn build_hasher(&self) -> H {
            H(self.0)
        }
    }
    pub struct H(u64);
    impl std::hash::Hasher for H {
        fn finish(&self) -> u64 {
            // SplitMix64 finaliser.
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
            z ^ (z >> 31)
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100000001b3);
            }
        }
        fn write_u64(&mut self, v: u64) {
            self.0 ^= v;
            self.0 = self.0.rotate_left(29).wrapping_mul(0x9e3779b97f4a7c15);
        }
    }
}

/// The key of a connection: its socket cookie, else (socket unknown) the
/// calling thread, in a range cookies do not reach.
pub fn flow_key(flow: Option<&Flow>, tid: u32) -> u64 {
    match flow {
        Some(f) if f.cookie != 0 => f.cookie,
        _ => 1 << 63 | u64::from(tid),
    }
}

/// The shard key of an event: its connection.
pub fn shard_key(ev: &Event) -> u64 {
    match ev {
        Event::TlsData(d) => flow_key(d.flow.as_ref(), d.tid),
        Event::Http(h) => flow_key(h.flow.as_ref(), 0),
        Event::WebSocket(w) => flow_key(w.flow.as_ref(), 0),
        Event::Loss(_) => 0,
        Event::TlsHandshake(h) => flow_key(h.flow.as_ref(), 0),
        Event::TlsWire(w) => w.cookie(),
        // The connection's own shard: its end reaches the worker after the
        // connection's data already queued there, and frees its state.
        Event::Connection(c) => flow_key(Some(&c.flow), 0),
        Event::Dns(d) => flow_key(d.flow.as_ref(), d.tid),
        Event::PacketFlow(f) => f.cookie,
    }
}

impl Pipeline {
    /// Start `cfg.workers` workers, each with a processor from `make`; their
    /// outputs go to `output` (the sink stage's queue).
    pub fn start<P, F>(
        cfg: PipelineConfig,
        mut make: F,
        output: Sender<Batch>,
    ) -> std::io::Result<Pipeline>
    where
        P: Processor + 'static,
        F: FnMut(usize) -> P,
    {
        let workers = cfg.workers.max(1);
        let stats = Arc::new(PipelineStats::default());
        let mut inputs = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers {
            let (tx, rx) = bounded::<Batch>(cfg.queue.div_ceil(BATCH).max(1));
            let mut p = make(i);
            let out = output.clone();
            let st = Arc::clone(&stats);
            let tick_every = cfg.tick_every;
            let h = std::thread::Builder::new()
                .name(format!("weft-worker-{i}"))
                .spawn(move || run_worker(&mut p, &rx, &out, &st, tick_every))?;
            inputs.push(tx);
            handles.push(h);
        }
        let seed = foldhash_like::Seed(
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
        );
        Ok(Pipeline {
            pending: (0..inputs.len()).map(|_| Vec::new()).collect(),
            inputs,
            handles,
            seed,
            stats,
        })
    }

    pub fn stats(&self) -> Arc<PipelineStats> {
        Arc::clone(&self.stats)
    }

    /// Hand an event to the worker owning its flow: into that worker's
    /// batch, sent when full or at the next [`Pipeline::flush`]. Blocks
    /// while that worker's queue is full. Returns false when the pipeline
    /// is gone.
    pub fn send(&mut self, ev: Event) -> bool {
        self.stats.events_in.fetch_add(1, Ordering::Relaxed);
        let mut h = self.seed.build_hasher();
        h.write_u64(shard_key(&ev));
        let idx = (h.finish() % self.inputs.len() as u64) as usize;
        let batch = &mut self.pending[idx];
        if batch.capacity() == 0 {
            batch.reserve_exact(BATCH);
        }
        batch.push(ev);
        if batch.len() >= BATCH {
            return self.send_batch(idx);
        }
        true
    }

    /// Send every partly filled batch now.
    pub fn flush(&mut self) -> bool {
        let mut ok = true;
        for idx in 0..self.pending.len() {
            if !self.pending[idx].is_empty() {
                ok &= self.send_batch(idx);
            }
        }
        ok
    }

    fn send_batch(&mut self, idx: usize) -> bool {
        let batch = std::mem::take(&mut self.pending[idx]);
        let tx = &self.inputs[idx];
        match tx.try_send(batch) {
            Ok(()) => true,
            Err(crossbeam_channel::TrySendError::Full(batch)) => {
                self.stats.input_waits.fetch_add(1, Ordering::Relaxed);
                tx.send(batch).is_ok()
            }
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => false,
        }
    }

    /// Send what is pending, close the inputs and wait for every worker to
    /// drain.
    pub fn close(mut self) {
        self.flush();
        self.inputs.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn run_worker<P: Processor>(
    p: &mut P,
    rx: &Receiver<Batch>,
    out: &Sender<Batch>,
    stats: &PipelineStats,
    tick_every: Duration,
) {
    let mut open = true;
    let mut produced: Batch = Vec::new();
    // Sends what the last step produced, in batches of at most BATCH.
    let mut send = |produced: &mut Batch| {
        if produced.is_empty() {
            return;
        }
        stats
            .events_out
            .fetch_add(produced.len() as u64, Ordering::Relaxed);
        if !open {
            produced.clear();
            return;
        }
        let mut rest = std::mem::take(produced);
        while rest.len() > BATCH {
            let tail = rest.split_off(BATCH);
            open = out.send(rest).is_ok();
            rest = tail;
            if !open {
                return;
            }
        }
        open = out.send(rest).is_ok();
    };
    let mut last_tick = Instant::now();
    loop {
        match rx.recv_timeout(tick_every) {
            Ok(batch) => {
                for ev in batch {
                    p.process(ev, &mut |e| produced.push(e));
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                p.finish(&mut |e| produced.push(e));
                send(&mut produced);
                return;
            }
        }
        let now = Instant::now();
        if now.duration_since(last_tick) >= tick_every {
            p.tick(now, &mut |e| produced.push(e));
            last_tick = now;
        }
        send(&mut produced);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Direction, Endpoint, Flow, ProcessInfo, Role, TlsData, TlsLibrary};
    use std::net::{IpAddr, Ipv4Addr};

    fn ev(cookie: u64, seq: u64) -> Event {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Event::TlsData(TlsData {
            timestamp_ns: seq,
            duration_ns: 0,
            process: Arc::new(ProcessInfo {
                pid: 1,
                ppid: 0,
                name: "t".into(),
                executable: None,
                uid: 0,
                gid: 0,
                cgroup_id: 0,
                start_time_ns: 0,
                entity_id: String::new(),
            }),
            tid: 1,
            flow: Some(Flow {
                cookie,
                local: Endpoint { ip, port: 1 },
                remote: Endpoint { ip, port: 2 },
                role: Role::Client,
            }),
            library: TlsLibrary::OpenSsl,
            direction: Direction::Write,
            payload: Vec::new(),
            length: 0,
            tls: None,
            first_bytes: false,
            destination_domain: None,
        })
    }

    #[test]
    fn per_flow_order_is_kept_and_nothing_is_lost() {
        let (out_tx, out_rx) = bounded(16);
        let cfg = PipelineConfig {
            workers: 3,
            queue: 4,
            output_queue: 16,
            tick_every: Duration::from_millis(10),
        };
        let mut p = Pipeline::start(cfg, |_| PassThrough, out_tx).expect("start");
        let collector = std::thread::spawn(move || out_rx.iter().flatten().collect::<Vec<_>>());
        for seq in 0..3000u64 {
            assert!(p.send(ev(seq % 7 + 1, seq)));
            if seq % 97 == 0 {
                assert!(p.flush());
            }
        }
        let stats = p.stats();
        p.close();
        let got = collector.join().expect("collector");
        assert_eq!(got.len(), 3000);
        let mut last = std::collections::HashMap::new();
        for e in got {
            let Event::TlsData(d) = e else {
                panic!("not a capture event")
            };
            let cookie = d.flow.map(|f| f.cookie).unwrap_or(0);
            let prev = last.insert(cookie, d.timestamp_ns);
            assert!(
                prev.is_none_or(|p| p < d.timestamp_ns),
                "flow {cookie} reordered"
            );
        }
        assert_eq!(stats.events_in.load(Ordering::Relaxed), 3000);
        assert_eq!(stats.events_out.load(Ordering::Relaxed), 3000);
    }

    /// A flush delivers a partly filled batch while the pipeline stays open
    /// (a quiet connection's events must not wait for more traffic).
    #[test]
    fn flush_delivers_partial_batches() {
        let (out_tx, out_rx) = bounded(16);
        let cfg = PipelineConfig {
            workers: 2,
            ..PipelineConfig::default()
        };
        let mut p = Pipeline::start(cfg, |_| PassThrough, out_tx).expect("start");
        for seq in 0..3 {
            assert!(p.send(ev(5, seq)));
        }
        assert!(
            out_rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "nothing is sent before a flush or a full batch"
        );
        assert!(p.flush());
        let got = out_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("flushed");
        assert_eq!(got.len(), 3);
        p.close();
    }

    /// A processor that turns one event into many: its output leaves in
    /// batches of at most BATCH, all of it, in order.
    #[test]
    fn large_outputs_are_split_into_batches() {
        struct Fan;
        impl Processor for Fan {
            fn process(&mut self, ev: Event, emit: &mut dyn FnMut(Event)) {
                for _ in 0..(BATCH * 2 + 5) {
                    emit(ev.clone());
                }
            }
        }
        let (out_tx, out_rx) = bounded(64);
        let cfg = PipelineConfig {
            workers: 1,
            ..PipelineConfig::default()
        };
        let mut p = Pipeline::start(cfg, |_| Fan, out_tx).expect("start");
        assert!(p.send(ev(1, 0)));
        p.close();
        let sizes: Vec<usize> = out_rx.iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![BATCH, BATCH, 5]);
    }
}
