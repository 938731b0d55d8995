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
//!
//! A worker can also encode its own output ([`Encoder`]): the events it
//! produced are written (JSON lines) and freed on the thread that built
//! them, while their bytes are still in its cache, and the output stage gets
//! [`Output::Encoded`] chunks it only has to write. Without an encoder the
//! output stage gets the events ([`Output::Events`]) and formats them itself
//! (the console sink, whose lines depend on the events before them).
//! Emptied input batches go back to the reader for reuse ([`Pipeline::send`]):
//! a batch is allocated by one thread and freed by another otherwise.

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

/// Payload buffers the workers are done with, going back to the reader in
/// bundles (one per input batch at most, <= [`BATCH`] buffers of
/// <= [`SPARE_BUFFER_MAX`] bytes each): a capture event's bytes are then
/// allocated and freed by the reader alone, instead of freed by a worker
/// into the reader's malloc arena, and not allocated again for every call.
pub type Buffers = Vec<Vec<u8>>;

/// Capacity of the largest payload buffer sent back for reuse; larger ones
/// are freed by the worker. One TLS record's plaintext: what most
/// libraries hand over per call when the data is large (nginx writes 16
/// KiB, wrk reads 8 KiB), so large bodies do not cost an allocation per call.
pub const SPARE_BUFFER_MAX: usize = 16 << 10;

/// Buffers of more than this capacity are "large": at most
/// [`SPARE_LARGE_PER_BUNDLE`] of them go back per bundle.
pub const SPARE_SMALL_MAX: usize = 2048;

/// Large buffers sent back per bundle, at most (256 KiB).
pub const SPARE_LARGE_PER_BUNDLE: usize = 16;

/// Bundles of [`Buffers`] waiting for the reader, per worker: with
/// [`BATCH`] buffers of at most [`SPARE_SMALL_MAX`] bytes and
/// [`SPARE_LARGE_PER_BUNDLE`] of [`SPARE_BUFFER_MAX`], at most 6 MiB per
/// worker; the live reader takes them all at each pass over the ring and
/// keeps what its assembler's pools allow, so they do not stay queued.
const SPARE_BUNDLES: usize = 16;

/// A worker sends its encoded output once this much is waiting (and at the
/// end of every input batch). With the output queue's 128 chunks, at most
/// ~10 MiB of encoded output waits for the output thread.
const ENCODED_CHUNK: usize = 64 << 10;

/// What the workers hand to the output stage.
#[derive(Debug)]
pub enum Output {
    /// Events for the output stage to format.
    Events(Batch),
    /// Events already encoded by a worker's [`Encoder`]: `events` of them.
    Encoded { bytes: Vec<u8>, events: usize },
}

impl Output {
    /// How many events this carries.
    pub fn events(&self) -> usize {
        match self {
            Output::Events(b) => b.len(),
            Output::Encoded { events, .. } => *events,
        }
    }
}

/// Encodes one event, appending its bytes (nothing for events the format
/// does not show). Shared by all workers; each calls it on its own thread.
pub type EncodeFn = Arc<dyn Fn(&Event, &mut Vec<u8>) + Send + Sync>;

/// Workers that encode their own output.
#[derive(Clone)]
pub struct Encoder {
    pub encode: EncodeFn,
    /// Buffers the output stage has written and sends back for reuse
    /// (cleared); a worker allocates a new one when none is waiting.
    pub spare: Receiver<Vec<u8>>,
}

impl Encoder {
    /// An encoder, and the sender the output stage returns written buffers
    /// through.
    pub fn new(encode: EncodeFn) -> (Encoder, Sender<Vec<u8>>) {
        // A few spare buffers are enough to stop allocating; more would
        // only hold memory.
        let (tx, rx) = bounded(16);
        (Encoder { encode, spare: rx }, tx)
    }

    fn buffer(&self) -> Vec<u8> {
        self.spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(ENCODED_CHUNK + (16 << 10)))
    }
}

/// Work done on each event by a worker: owns the state of the flows sharded
/// to it. `emit` hands results to the output stage, in order.
pub trait Processor: Send {
    fn process(&mut self, ev: Event, emit: &mut dyn FnMut(Event));
    /// Called at least every `tick_every` with the current time, to expire
    /// idle state.
    fn tick(&mut self, _now: Instant, _emit: &mut dyn FnMut(Event)) {}
    /// The input is closed: emit what is still pending.
    fn finish(&mut self, _emit: &mut dyn FnMut(Event)) {}
    /// Moves the payload buffers of capture events the processor consumed
    /// into `out`, for the reader to reuse: cleared, each of at most
    /// [`SPARE_BUFFER_MAX`] bytes' capacity, at most [`BATCH`] at a time.
    fn take_spare_buffers(&mut self, _out: &mut Buffers) {}
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
    /// Emptied batches coming back from the workers, for reuse.
    spare: Receiver<Batch>,
    /// Payload buffers coming back from the workers, for reuse.
    spare_buffers: Receiver<Buffers>,
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
    /// With `encoder`, workers send [`Output::Encoded`] chunks; without,
    /// [`Output::Events`].
    pub fn start<P, F>(
        cfg: PipelineConfig,
        mut make: F,
        encoder: Option<Encoder>,
        output: Sender<Output>,
    ) -> std::io::Result<Pipeline>
    where
        P: Processor + 'static,
        F: FnMut(usize) -> P,
    {
        let workers = cfg.workers.max(1);
        let stats = Arc::new(PipelineStats::default());
        let mut inputs = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        let queue = cfg.queue.div_ceil(BATCH).max(1);
        // Room for every batch that can be in flight: a full return queue
        // only means a batch is freed instead of reused.
        let (spare_tx, spare) = bounded::<Batch>(queue * workers + workers);
        let (buffers_tx, spare_buffers) = bounded::<Buffers>(SPARE_BUNDLES * workers);
        for i in 0..workers {
            let (tx, rx) = bounded::<Batch>(queue);
            let mut p = make(i);
            let mut w = Worker {
                out: output.clone(),
                spare: spare_tx.clone(),
                buffers: buffers_tx.clone(),
                bundle: Vec::new(),
                encoder: encoder.clone(),
                stats: Arc::clone(&stats),
                open: true,
                produced: Vec::new(),
                encoded: Vec::new(),
                encoded_events: 0,
                emitted: 0,
            };
            let tick_every = cfg.tick_every;
            let h = std::thread::Builder::new()
                .name(format!("weft-worker-{i}"))
                .spawn(move || w.run(&mut p, &rx, tick_every))?;
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
            spare,
            spare_buffers,
            inputs,
            handles,
            seed,
            stats,
        })
    }

    pub fn stats(&self) -> Arc<PipelineStats> {
        Arc::clone(&self.stats)
    }

    /// A bundle of payload buffers the workers are done with (cleared, see
    /// [`Buffers`]), when one is waiting.
    pub fn spare_buffers(&self) -> Option<Buffers> {
        self.spare_buffers.try_recv().ok()
    }

    /// Hand an event to the worker owning its flow: into that worker's
    /// batch, sent when full or at the next [`Pipeline::flush`]. Blocks
    /// while that worker's queue is full. Returns false when the pipeline
    /// is gone. (Inlined: the event is then built in the batch, not
    /// copied into it.)
    #[inline(always)]
    pub fn send(&mut self, ev: Event) -> bool {
        let idx = if self.inputs.len() == 1 {
            0
        } else {
            let mut h = self.seed.build_hasher();
            h.write_u64(shard_key(&ev));
            (h.finish() % self.inputs.len() as u64) as usize
        };
        if self.pending[idx].capacity() == 0 {
            self.new_batch(idx);
        }
        let batch = &mut self.pending[idx];
        batch.push(ev);
        if batch.len() >= BATCH {
            return self.send_batch(idx);
        }
        true
    }

    /// An emptied batch back from the workers, or a new one, for `idx`.
    #[cold]
    fn new_batch(&mut self, idx: usize) {
        let batch = &mut self.pending[idx];
        match self.spare.try_recv() {
            Ok(b) => *batch = b,
            Err(_) => batch.reserve_exact(BATCH),
        }
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
        // Counted per batch: a counter written per event would share its
        // cache line with the workers' at every event.
        self.stats
            .events_in
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
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

/// A worker's output side.
struct Worker {
    out: Sender<Output>,
    spare: Sender<Batch>,
    /// Payload buffers back to the reader, and the bundle being filled.
    buffers: Sender<Buffers>,
    bundle: Buffers,
    encoder: Option<Encoder>,
    stats: Arc<PipelineStats>,
    /// False once the output stage is gone: output is dropped.
    open: bool,
    /// Events of the current step, without an encoder.
    produced: Batch,
    /// Encoded output of the current step, with one.
    encoded: Vec<u8>,
    encoded_events: usize,
    /// Events produced since the counter was last updated.
    emitted: u64,
}

impl Worker {
    fn run<P: Processor>(&mut self, p: &mut P, rx: &Receiver<Batch>, tick_every: Duration) {
        let mut last_tick = Instant::now();
        loop {
            match rx.recv_timeout(tick_every) {
                Ok(mut batch) => {
                    for ev in batch.drain(..) {
                        p.process(ev, &mut |e| self.emit(e));
                    }
                    // Back to the reader; when its queue is full the batch
                    // is simply freed.
                    let _ = self.spare.try_send(batch);
                    p.take_spare_buffers(&mut self.bundle);
                    if !self.bundle.is_empty() {
                        match self.buffers.try_send(std::mem::take(&mut self.bundle)) {
                            Ok(()) => {}
                            // The reader has enough: these are freed here.
                            Err(e) => {
                                self.bundle = e.into_inner();
                                self.bundle.clear();
                            }
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    p.finish(&mut |e| self.emit(e));
                    self.send(true);
                    return;
                }
            }
            let now = Instant::now();
            if now.duration_since(last_tick) >= tick_every {
                p.tick(now, &mut |e| self.emit(e));
                last_tick = now;
            }
            self.send(false);
        }
    }

    fn emit(&mut self, ev: Event) {
        self.emitted += 1;
        if !self.open {
            return;
        }
        match &self.encoder {
            Some(enc) => {
                (enc.encode)(&ev, &mut self.encoded);
                self.encoded_events += 1;
                // Its allocations serve this thread's next transactions.
                if let Event::Http(h) = ev {
                    weft_proto::recycle(h.transaction);
                }
                if self.encoded.len() >= ENCODED_CHUNK {
                    self.send(false);
                }
            }
            None => {
                self.produced.push(ev);
                if self.produced.len() >= BATCH {
                    self.send(false);
                }
            }
        }
    }

    /// Sends what is waiting. Events that encoded to nothing (internal ones,
    /// everything under `--bench-discard`) only ride along with the next
    /// bytes, or the `last` send: no wake-up of the output thread for them.
    fn send(&mut self, last: bool) {
        if self.emitted > 0 {
            self.stats
                .events_out
                .fetch_add(std::mem::take(&mut self.emitted), Ordering::Relaxed);
        }
        if !self.open {
            return;
        }
        let out = if self.encoded_events > 0 {
            if self.encoded.is_empty() && !last {
                return;
            }
            let fresh = self
                .encoder
                .as_ref()
                .map(Encoder::buffer)
                .unwrap_or_default();
            let bytes = std::mem::replace(&mut self.encoded, fresh);
            let events = std::mem::take(&mut self.encoded_events);
            Output::Encoded { bytes, events }
        } else if !self.produced.is_empty() {
            Output::Events(std::mem::replace(
                &mut self.produced,
                Vec::with_capacity(BATCH),
            ))
        } else {
            return;
        };
        self.open = self.out.send(out).is_ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Direction, Endpoint, Flow, ProcessInfo, Role, TlsData, TlsLibrary};
    use std::net::{IpAddr, Ipv4Addr};

    fn events(o: Output) -> Batch {
        match o {
            Output::Events(b) => b,
            Output::Encoded { .. } => panic!("encoded output without an encoder"),
        }
    }

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
            holes: Vec::new(),
            tls: None,
            first_bytes: false,
            destination_domain: None,
            lost_before: Default::default(),
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
        let mut p = Pipeline::start(cfg, |_| PassThrough, None, out_tx).expect("start");
        let collector =
            std::thread::spawn(move || out_rx.iter().flat_map(events).collect::<Vec<_>>());
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
        let mut p = Pipeline::start(cfg, |_| PassThrough, None, out_tx).expect("start");
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
        assert_eq!(got.events(), 3);
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
        let mut p = Pipeline::start(cfg, |_| Fan, None, out_tx).expect("start");
        assert!(p.send(ev(1, 0)));
        p.close();
        let sizes: Vec<usize> = out_rx.iter().map(|b| b.events()).collect();
        assert_eq!(sizes, vec![BATCH, BATCH, 5]);
    }

    /// Buffers a processor is done with come back to the reader's side.
    #[test]
    fn spare_buffers_come_back() {
        struct Keep(Buffers);
        impl Processor for Keep {
            fn process(&mut self, ev: Event, _emit: &mut dyn FnMut(Event)) {
                if let Event::TlsData(d) = ev {
                    let mut p = d.payload;
                    p.clear();
                    self.0.push(p);
                }
            }
            fn take_spare_buffers(&mut self, out: &mut Buffers) {
                out.append(&mut self.0);
            }
        }
        let (out_tx, _out_rx) = bounded(16);
        let cfg = PipelineConfig {
            workers: 1,
            ..PipelineConfig::default()
        };
        let mut p = Pipeline::start(cfg, |_| Keep(Vec::new()), None, out_tx).expect("start");
        for seq in 0..3 {
            let mut e = ev(1, seq);
            if let Event::TlsData(d) = &mut e {
                d.payload = Vec::with_capacity(100);
            }
            assert!(p.send(e));
        }
        assert!(p.flush());
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut back = Vec::new();
        while back.len() < 3 && Instant::now() < deadline {
            match p.spare_buffers() {
                Some(b) => back.extend(b),
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        assert_eq!(back.len(), 3);
        assert!(back.iter().all(|b| b.is_empty() && b.capacity() >= 100));
        p.close();
    }

    /// With an encoder, workers send bytes: every event encoded once, each
    /// flow's events in order, written buffers reused.
    #[test]
    fn workers_encode_their_output() {
        let (out_tx, out_rx) = bounded(16);
        let cfg = PipelineConfig {
            workers: 2,
            queue: 4,
            output_queue: 16,
            tick_every: Duration::from_millis(10),
        };
        let encode: EncodeFn = Arc::new(|ev: &Event, out: &mut Vec<u8>| {
            if let Event::TlsData(d) = ev {
                let cookie = d.flow.map_or(0, |f| f.cookie);
                out.extend_from_slice(format!("{cookie} {}\n", d.timestamp_ns).as_bytes());
            }
        });
        let (encoder, back) = Encoder::new(encode);
        let mut p = Pipeline::start(cfg, |_| PassThrough, Some(encoder), out_tx).expect("start");
        let collector = std::thread::spawn(move || {
            let mut text = String::new();
            let mut n = 0;
            for o in out_rx.iter() {
                let Output::Encoded { mut bytes, events } = o else {
                    panic!("events without encoding")
                };
                n += events;
                text.push_str(std::str::from_utf8(&bytes).expect("utf-8"));
                bytes.clear();
                let _ = back.try_send(bytes);
            }
            (n, text)
        });
        for seq in 0..5000u64 {
            assert!(p.send(ev(seq % 5 + 1, seq)));
        }
        p.close();
        let (n, text) = collector.join().expect("collector");
        assert_eq!(n, 5000);
        let mut last = std::collections::HashMap::new();
        let mut lines = 0;
        for line in text.lines() {
            let (cookie, seq) = line.split_once(' ').expect("line");
            let seq: u64 = seq.parse().expect("seq");
            let prev = last.insert(cookie.to_string(), seq);
            assert!(prev.is_none_or(|p| p < seq), "flow {cookie} reordered");
            lines += 1;
        }
        assert_eq!(lines, 5000);
    }
}
