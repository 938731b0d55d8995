//! The user-space pipeline: reader -> sharded workers -> one output stage.
//!
//! Events are sharded by connection (socket cookie; the thread id when the
//! connection is unknown) so that one worker owns each flow: flow state needs
//! no locks and per-flow order is kept. Every queue is bounded. Input queues
//! block when full (the reader slows down and the kernel ring, which counts
//! its drops, absorbs the burst); the output queue blocks too, since sinks
//! must not lose events.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};

use crate::event::{Event, Flow};

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
    /// Capacity of each worker's input queue (events).
    pub queue: usize,
    /// Capacity of the output queue (events).
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
    inputs: Vec<Sender<Event>>,
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
    }
}

impl Pipeline {
    /// Start `cfg.workers` workers, each with a processor from `make`; their
    /// outputs go to `output` (the sink stage's queue).
    pub fn start<P, F>(
        cfg: PipelineConfig,
        mut make: F,
        output: Sender<Event>,
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
            let (tx, rx) = bounded::<Event>(cfg.queue.max(1));
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
            inputs,
            handles,
            seed,
            stats,
        })
    }

    pub fn stats(&self) -> Arc<PipelineStats> {
        Arc::clone(&self.stats)
    }

    /// Hand an event to the worker owning its flow. Blocks while that
    /// worker's queue is full. Returns false when the pipeline is gone.
    pub fn send(&self, ev: Event) -> bool {
        self.stats.events_in.fetch_add(1, Ordering::Relaxed);
        let mut h = self.seed.build_hasher();
        h.write_u64(shard_key(&ev));
        let idx = (h.finish() % self.inputs.len() as u64) as usize;
        let tx = &self.inputs[idx];
        match tx.try_send(ev) {
            Ok(()) => true,
            Err(crossbeam_channel::TrySendError::Full(ev)) => {
                self.stats.input_waits.fetch_add(1, Ordering::Relaxed);
                tx.send(ev).is_ok()
            }
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => false,
        }
    }

    /// Close the inputs and wait for every worker to drain.
    pub fn close(mut self) {
        self.inputs.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn run_worker<P: Processor>(
    p: &mut P,
    rx: &Receiver<Event>,
    out: &Sender<Event>,
    stats: &PipelineStats,
    tick_every: Duration,
) {
    let mut open = true;
    let mut emit = |ev: Event| {
        if open {
            stats.events_out.fetch_add(1, Ordering::Relaxed);
            open = out.send(ev).is_ok();
        }
    };
    let mut last_tick = Instant::now();
    loop {
        match rx.recv_timeout(tick_every) {
            Ok(ev) => p.process(ev, &mut emit),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                p.finish(&mut emit);
                return;
            }
        }
        let now = Instant::now();
        if now.duration_since(last_tick) >= tick_every {
            p.tick(now, &mut emit);
            last_tick = now;
        }
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
        let p = Pipeline::start(cfg, |_| PassThrough, out_tx).expect("start");
        let collector = std::thread::spawn(move || out_rx.iter().collect::<Vec<_>>());
        for seq in 0..3000u64 {
            assert!(p.send(ev(seq % 7 + 1, seq)));
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
}
