//! The ring-buffer consumer: the kernel's BPF ring buffer read through one
//! mapping of its data pages.
//!
//! libbpf maps the data area twice, back to back, so that a record crossing
//! the end reads as one slice. Every page of a ring-buffer mapping is
//! inserted at `mmap` time, so that second view costs the ring's whole size
//! again in the process' resident set (32 MiB of RSS for the default 16 MiB
//! ring) while holding no memory of its own. This consumer maps the data
//! once and copies the rare record that crosses the end into a scratch
//! buffer. The protocol is the kernel's (`kernel/bpf/ringbuf.c`): a
//! consumer-position page (read-write), then the producer-position page and
//! the data (read-only); each record starts with an 8-byte header whose
//! length word carries a busy bit while the producer writes it and a discard
//! bit for dropped reservations; records are 8-byte aligned; the consumer
//! publishes its position with a release store after each record.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::sensor::BpfError;

const BUSY: u32 = 1 << 31;
const DISCARD: u32 = 1 << 30;
const HEADER: u64 = 8;

/// A consumer of one BPF ring buffer calling `cb` with each record.
pub struct Ring<F: FnMut(&[u8]) -> i32> {
    _map: OwnedFd,
    epoll: OwnedFd,
    /// The consumer-position page (read-write), `page` bytes.
    consumer: *mut u8,
    /// The producer-position page followed by the data, `page + size`
    /// bytes, read-only.
    producer: *const u8,
    page: usize,
    size: u64,
    scratch: Vec<u8>,
    cb: F,
}

fn os_err(what: &str) -> BpfError {
    BpfError::Os {
        what: what.into(),
        source: std::io::Error::last_os_error(),
    }
}

impl<F: FnMut(&[u8]) -> i32> Ring<F> {
    /// Maps the ring buffer `map` (a `BPF_MAP_TYPE_RINGBUF` of `size` data
    /// bytes, a power of two and a multiple of the page size).
    pub fn new(map: BorrowedFd<'_>, size: u32, cb: F) -> Result<Self, BpfError> {
        let map = map.try_clone_to_owned().map_err(|source| BpfError::Os {
            what: "duplicate the ring buffer's descriptor".into(),
            source,
        })?;
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let page = usize::try_from(page).unwrap_or(4096);
        let size64 = u64::from(size);
        if !size.is_power_of_two() || !(size as usize).is_multiple_of(page) {
            return Err(BpfError::Config(format!(
                "ring buffer size {size} is not a power of two multiple of the page size"
            )));
        }
        // SAFETY: a fresh shared mapping of the map's first page (the
        // consumer position), which the kernel allows read-write; the
        // result is checked against MAP_FAILED.
        let consumer = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.as_raw_fd(),
                0,
            )
        };
        if consumer == libc::MAP_FAILED {
            return Err(os_err("map the ring buffer's consumer page"));
        }
        // SAFETY: as above, read-only, from the producer page on: one view
        // of the data (the kernel checks the length against the map).
        let producer = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page + size as usize,
                libc::PROT_READ,
                libc::MAP_SHARED,
                map.as_raw_fd(),
                page as libc::off_t,
            )
        };
        if producer == libc::MAP_FAILED {
            let e = os_err("map the ring buffer's data");
            // SAFETY: `consumer` is the mapping made above, unmapped once.
            unsafe { libc::munmap(consumer, page) };
            return Err(e);
        }
        let unmap = || {
            // SAFETY: both mappings were made above and are unmapped once,
            // on this error path only.
            unsafe {
                libc::munmap(consumer, page);
                libc::munmap(producer, page + size as usize);
            }
        };
        // SAFETY: epoll_create1 has no memory-safety preconditions.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            let e = os_err("create an epoll instance");
            unmap();
            return Err(e);
        }
        // SAFETY: `ep` is a new descriptor owned by nothing else.
        let epoll = unsafe { OwnedFd::from_raw_fd(ep) };
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 0,
        };
        // SAFETY: both descriptors are open; `ev` is a valid epoll_event.
        if unsafe {
            libc::epoll_ctl(
                epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                map.as_raw_fd(),
                &mut ev,
            )
        } < 0
        {
            let e = os_err("watch the ring buffer");
            unmap();
            return Err(e);
        }
        Ok(Ring {
            _map: map,
            epoll,
            consumer: consumer.cast(),
            producer: producer.cast::<u8>().cast_const(),
            page,
            size: size64,
            scratch: Vec::new(),
            cb,
        })
    }

    fn consumer_pos(&self) -> &AtomicU64 {
        // SAFETY: the consumer page is mapped for the life of `self`, page
        // aligned, and its first 8 bytes are the kernel's consumer position,
        // which only this consumer writes.
        unsafe { &*self.consumer.cast::<AtomicU64>() }
    }

    fn producer_pos(&self) -> &AtomicU64 {
        // SAFETY: the producer page is mapped for the life of `self`, page
        // aligned; its first 8 bytes are the position the kernel publishes
        // with release stores. Only loads are made through this reference.
        unsafe { &*self.producer.cast::<AtomicU64>() }
    }

    fn data(&self) -> *const u8 {
        // SAFETY: the data follows the producer page inside the mapping.
        unsafe { self.producer.add(self.page) }
    }

    /// Waits up to `timeout` for the kernel's wake-up, then reads every
    /// record available. A signal ends the wait early (not an error).
    /// Returns the ring bytes read (records and their headers).
    pub fn poll(&mut self, timeout: Duration) -> Result<u64, BpfError> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `ev` is a valid buffer for one event.
        let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), &mut ev, 1, ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(BpfError::Os {
                    what: "wait for the ring buffer".into(),
                    source: e,
                });
            }
        }
        self.consume()
    }

    /// Reads every committed record, in order, and gives the space back to
    /// the kernel record by record. Stops early when the callback returns
    /// non-zero. Returns the ring bytes read (records and their headers).
    pub fn consume(&mut self) -> Result<u64, BpfError> {
        let mask = self.size - 1;
        let start_pos = self.consumer_pos().load(Ordering::Acquire);
        let mut cons = start_pos;
        loop {
            let prod = self.producer_pos().load(Ordering::Acquire);
            if cons >= prod {
                return Ok(cons - start_pos);
            }
            while cons < prod {
                // SAFETY: headers are 8-byte aligned inside the data (both
                // positions are multiples of 8 and the size a power of two
                // >= a page), so the length word is an aligned u32 in the
                // mapping; the kernel writes it with release semantics.
                let hdr = unsafe {
                    (*self.data().add((cons & mask) as usize).cast::<AtomicU32>())
                        .load(Ordering::Acquire)
                };
                if hdr & BUSY != 0 {
                    return Ok(cons - start_pos); // the producer is still writing it
                }
                let len = u64::from(hdr & !(BUSY | DISCARD));
                if len > self.size - HEADER {
                    return Err(BpfError::Config(format!(
                        "ring buffer record of {len} bytes in a {}-byte ring",
                        self.size
                    )));
                }
                let mut stop = false;
                if hdr & DISCARD == 0 {
                    let start = (cons + HEADER) & mask;
                    let first = len.min(self.size - start);
                    // SAFETY: `start + first <= size`: inside the data view;
                    // the record is committed (busy bit clear) and the
                    // kernel does not reuse its space before the consumer
                    // position passes it.
                    let a = unsafe {
                        std::slice::from_raw_parts(self.data().add(start as usize), first as usize)
                    };
                    let rc = if first == len {
                        (self.cb)(a)
                    } else {
                        // The record crosses the end: join its two parts.
                        // SAFETY: the rest is at the start of the data view,
                        // `len - first < size` bytes.
                        let b = unsafe {
                            std::slice::from_raw_parts(self.data(), (len - first) as usize)
                        };
                        self.scratch.clear();
                        self.scratch.extend_from_slice(a);
                        self.scratch.extend_from_slice(b);
                        (self.cb)(&self.scratch)
                    };
                    stop = rc != 0;
                }
                cons += (len + HEADER + 7) & !7;
                self.consumer_pos().store(cons, Ordering::Release);
                if stop {
                    return Ok(cons - start_pos);
                }
            }
        }
    }
}

impl<F: FnMut(&[u8]) -> i32> AsFd for Ring<F> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}

impl<F: FnMut(&[u8]) -> i32> Drop for Ring<F> {
    fn drop(&mut self) {
        // SAFETY: the two mappings made in `new`, unmapped exactly once.
        unsafe {
            libc::munmap(self.consumer.cast(), self.page);
            libc::munmap(
                self.producer.cast_mut().cast(),
                self.page + self.size as usize,
            );
        }
    }
}
