//! Safe views of the records defined in `bpf/include/weft_abi.h`.
//!
//! Records are decoded field by field from the ring-buffer bytes (no pointer
//! casts), and every size is checked against the header's layout. Nothing
//! outside this crate sees these layouts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

/// Must equal `WEFT_ABI_VERSION` in weft_abi.h.
pub const ABI_VERSION: u32 = 7;

pub const REC_DATA: u32 = 1;
pub const REC_CALL: u32 = 2;
pub const REC_EXEC: u32 = 3;
pub const REC_MMAP: u32 = 4;
pub const REC_EXIT: u32 = 5;
pub const REC_HELLO: u32 = 6;
pub const REC_KEYLOG: u32 = 7;
pub const REC_ALPN: u32 = 8;
/// A call record with its whole payload after it (`captured` bytes, at most
/// [`INLINE_MAX`]): a small call in one record, no data records.
pub const REC_CALL_INLINE: u32 = 9;
/// Payload bytes an inline call record carries at most (`WEFT_INLINE_MAX`).
pub const INLINE_MAX: usize = 1024;
/// `weft --bench-floor copy` only: one call's plaintext, nothing else.
pub const REC_BENCH_COPY: u32 = 10;
/// sizeof(struct weft_bench_copy_rec), the header before the bytes.
pub const BENCH_COPY_HDR_SIZE: usize = 16;
/// A TCP connection was established (or, seeded, existed at start).
pub const REC_CONN_START: u32 = 16;
/// A TCP connection closed.
pub const REC_CONN_END: u32 = 17;
/// An open connection's counts so far (the update iterator's seq file only).
pub const REC_CONN_UPDATE: u32 = 32;
/// TLS hello bytes the packet path copied from the wire (tc.bpf.c).
pub const REC_WIRE_HELLO: u32 = 24;

pub const OP_WRITE: u8 = 1;
pub const OP_READ: u8 = 2;
/// A handshake function returned; `CallRec::len` is its return value,
/// sign-extended (`len as i64`).
pub const OP_HANDSHAKE: u8 = 3;
/// The library object (`SSL*`) was freed.
pub const OP_FREE: u8 = 4;

/// Handshake bytes kept per connection and direction (`WEFT_HELLO_MAX`).
pub const HELLO_MAX: usize = 2048;

pub const LIB_OPENSSL: u64 = 1;
pub const LIB_BORINGSSL: u64 = 2;
pub const LIB_GNUTLS: u64 = 3;
pub const LIB_NSS: u64 = 4;
pub const LIB_WOLFSSL: u64 = 5;
pub const LIB_GO: u64 = 6;

pub const ROLE_CLIENT: u8 = 1;
pub const ROLE_SERVER: u8 = 2;

pub const CALL_TRUNCATED: u32 = 1 << 0;
pub const CALL_COPY_FAULT: u32 = 1 << 1;
pub const CALL_RING_FULL: u32 = 1 << 2;
pub const CALL_SOCK_CACHED: u32 = 1 << 3;
pub const CALL_NO_SOCK: u32 = 1 << 4;
/// Body bytes past the body bound were not copied: the data records leave
/// holes (between their offsets, and [`CallRec::skipped`] minus those after
/// the last one), inside what the kernel read as an HTTP/1 body.
pub const CALL_HOLES: u32 = 1 << 5;
/// Plaintext from a socket syscall outside any TLS call (`lib` is 0).
pub const CALL_PLAIN: u32 = 1 << 16;
/// With [`CALL_PLAIN`]: only a direction's first bytes of a connection weft
/// does not decode (at most [`FIRST_MAX`]); nothing follows.
pub const CALL_FIRST: u32 = 1 << 17;
/// First bytes kept per direction of an undecoded connection (`WEFT_FIRST_MAX`).
pub const FIRST_MAX: usize = 512;
/// With [`CALL_PLAIN`]: one DNS message over UDP (the socket is UDP).
pub const CALL_DNS: u32 = 1 << 18;
/// With [`CALL_DNS`]: stream bytes of a DNS-over-TCP connection.
pub const CALL_DNS_TCP: u32 = 1 << 19;

/// Connection existed before weft started (`WEFT_CONN_SEEDED`).
pub const CONN_SEEDED: u32 = 1 << 0;
/// End of a connection whose start was not reported (`WEFT_CONN_NO_START`).
pub const CONN_NO_START: u32 = 1 << 1;

/// sizeof(struct weft_sock)
pub const SOCK_SIZE: usize = 56;
/// sizeof(struct weft_data_rec), the header before the payload bytes.
pub const DATA_HDR_SIZE: usize = 24;
/// sizeof(struct weft_call_rec)
pub const CALL_SIZE: usize = 192;
/// `struct weft_lost_calls`, which ends call and connection records.
pub const LOST_SIZE: usize = 16;
/// sizeof(struct weft_file_rec)
pub const FILE_SIZE: usize = 24;
/// sizeof(struct weft_exit_rec)
pub const EXIT_SIZE: usize = 16;
/// sizeof(struct weft_hello_rec), the header before the handshake bytes.
pub const HELLO_HDR_SIZE: usize = 40;
/// sizeof(struct weft_keylog_rec)
pub const KEYLOG_SIZE: usize = 160;
/// sizeof(struct weft_alpn_rec)
pub const ALPN_SIZE: usize = 64;
/// sizeof(struct weft_owner)
pub const OWNER_SIZE: usize = 48;
/// sizeof(struct weft_conn_rec)
pub const CONN_SIZE: usize = 184;
/// sizeof(struct weft_wire_hello_rec), the header before the hello bytes.
pub const WIRE_HELLO_HDR_SIZE: usize = 80;
/// `WEFT_WIRE_HELLO_CUT`: the segment had more payload than was copied.
pub const WIRE_HELLO_CUT: u8 = 1 << 0;

/// Names of the per-CPU counters, in `enum weft_stat` order.
pub const STAT_NAMES: [&str; 25] = [
    "calls",
    "bytes",
    "ring_full_data",
    "ring_full_call",
    "ring_full_other",
    "truncated",
    "copy_fault",
    "not_inet",
    "no_socket",
    "failed_calls",
    "state_full",
    "nested",
    "hello_lost",
    "keylog_lost",
    // connections
    "conn_lost",
    "conn_untracked",
    // plaintext and first bytes (bpf/plain.bpf.c)
    "plain_calls",
    "plain_arm_full",
    // packet path (tc.bpf.c)
    "pkt_flows",
    "pkt_flow_full",
    "pkt_not_ip",
    "pkt_short",
    "pkt_hello",
    "pkt_hello_lost",
    // body skip (tls.bpf.c)
    "body_skipped",
];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AbiError {
    #[error("ring-buffer record of {len} bytes is too short for type {ty} (needs {need})")]
    Short { ty: u32, len: usize, need: usize },
    #[error("inline call record claims {0} payload bytes (at most {INLINE_MAX})")]
    InlineTooLong(u64),
    #[error("ring-buffer record has unknown type {0} (kernel and user space ABI differ?)")]
    UnknownType(u32),
}

/// The socket behind a call (struct weft_sock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockRec {
    pub cookie: u64,
    pub local: IpAddr,
    pub remote: IpAddr,
    pub family: u16,
    pub local_port: u16,
    pub remote_port: u16,
    pub role: u8,
    pub fd: u32,
}

/// One finished library call (struct weft_call_rec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallRec {
    pub flags: u32,
    pub call_id: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub len: u64,
    pub captured: u64,
    /// Bytes left out in holes ([`CALL_HOLES`]): body bytes not copied.
    pub skipped: u64,
    pub ssl: u64,
    pub cgroup_id: u64,
    pub proc_start_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub lib: u8,
    pub op: u8,
    pub comm: [u8; 16],
    pub sock: SockRec,
    /// Calls of the same connection whose call records were lost before
    /// this one (ring full).
    pub lost: LostCalls,
}

/// Library calls of one connection whose call records the kernel could
/// not write (ring buffer full), told by the connection's next call
/// record that got through (struct weft_lost_calls). Byte counts saturate
/// at `u32::MAX`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LostCalls {
    pub reads: u32,
    pub writes: u32,
    pub read_bytes: u32,
    pub write_bytes: u32,
}

/// The process that owns a connection (struct weft_owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerRec {
    pub cgroup_id: u64,
    pub proc_start_ns: u64,
    /// 0 = not known.
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: [u8; 16],
}

/// A TCP connection's start or end (struct weft_conn_rec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnRec {
    /// [`REC_CONN_START`], [`REC_CONN_END`] or [`REC_CONN_UPDATE`].
    pub kind: u32,
    /// `CONN_*`.
    pub flags: u32,
    pub ts_ns: u64,
    /// CLOCK_MONOTONIC of establishment; 0 = before weft.
    pub established_ns: u64,
    pub netns_cookie: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Socket inode (seeded records).
    pub ino: u64,
    pub srtt_us: u32,
    /// End records: the highest client stream id of an HTTP/2 header block
    /// the kernel's frame walk saw on the connection (0: none).
    pub h2_last_stream: u32,
    pub owner: OwnerRec,
    pub sock: SockRec,
    /// End records: calls lost with their records that no later call record
    /// of the connection told.
    pub lost: LostCalls,
}

/// A decoded ring-buffer record, borrowing payload bytes from the ring.
#[derive(Debug, PartialEq, Eq)]
pub enum Record<'a> {
    Data {
        tid: u32,
        call_id: u64,
        offset: u32,
        bytes: &'a [u8],
    },
    Call(CallRec),
    /// A whole call in one record: the call and its payload (`bytes`,
    /// `call.captured` of them). Its `call_id` matches no data record.
    CallInline {
        call: CallRec,
        bytes: &'a [u8],
    },
    /// The capture floor's record (`--bench-floor copy`): a call's return
    /// length; its bytes are not looked at.
    BenchCopy {
        len: u64,
    },
    Exec {
        pid: u32,
        dev: u64,
        ino: u64,
    },
    Mmap {
        pid: u32,
        dev: u64,
        ino: u64,
    },
    Exit {
        pid: u32,
        start_ns: u64,
    },
    /// Handshake bytes a TLS library sent (`op` = [`OP_WRITE`]) or received
    /// on a connection, at `offset` of that direction's stream.
    Hello {
        cookie: u64,
        ts_ns: u64,
        pid: u32,
        tid: u32,
        offset: u32,
        op: u8,
        lib: u8,
        bytes: &'a [u8],
    },
    /// The ALPN protocol a library told the application it chose.
    Alpn {
        pid: u32,
        ssl: u64,
        cookie: u64,
        lib: u8,
        proto: &'a [u8],
    },
    /// One session secret (`--keylog`): an NSS key-log line's parts.
    Keylog {
        pid: u32,
        ssl: u64,
        cookie: u64,
        lib: u8,
        /// Up to the first NUL.
        label: &'a [u8],
        random: &'a [u8],
        secret: &'a [u8],
    },
    /// A TCP connection started or ended.
    Conn(ConnRec),
    /// A TLS hello segment the packet path copied from the wire.
    WireHello(WireHelloRec<'a>),
}

/// One copied segment of a TLS hello seen on the wire (struct
/// weft_wire_hello_rec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireHelloRec<'a> {
    /// The flow, as its entry in the kernel's flow table is keyed.
    pub key: crate::packets::PktKey,
    /// CLOCK_MONOTONIC of the packet.
    pub ts_ns: u64,
    /// TCP sequence number of the first byte.
    pub seq: u32,
    /// 0: sent from endpoint a to b, 1: from b to a.
    pub dir: u8,
    /// 0: the direction's first payload, 1: the segment after it.
    pub seg: u8,
    /// `WIRE_HELLO_*`.
    pub flags: u8,
    pub bytes: &'a [u8],
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn new(b: &'a [u8], at: usize) -> Self {
        Cursor { b, at }
    }
    #[inline(always)]
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        // Callers check the record length first; a short read yields zeros.
        if let Some(s) = self.b.get(self.at..self.at + N) {
            out.copy_from_slice(s);
        }
        self.at += N;
        out
    }
    #[inline(always)]
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    #[inline(always)]
    fn u16(&mut self) -> u16 {
        u16::from_ne_bytes(self.take())
    }
    #[inline(always)]
    fn u32(&mut self) -> u32 {
        u32::from_ne_bytes(self.take())
    }
    #[inline(always)]
    fn u64(&mut self) -> u64 {
        u64::from_ne_bytes(self.take())
    }
    #[inline(always)]
    fn skip(&mut self, n: usize) {
        self.at += n;
    }
}

fn need(ty: u32, b: &[u8], n: usize) -> Result<(), AbiError> {
    if b.len() < n {
        Err(AbiError::Short {
            ty,
            len: b.len(),
            need: n,
        })
    } else {
        Ok(())
    }
}

#[inline]
fn addr(family: u16, raw: [u8; 16]) -> IpAddr {
    if family == 2 {
        IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
    } else {
        let v6 = Ipv6Addr::from(raw);
        // IPv4 traffic on an AF_INET6 socket: report the IPv4 address.
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    }
}

#[inline(always)]
fn sock(c: &mut Cursor<'_>) -> SockRec {
    let cookie = c.u64();
    let local_raw = c.take::<16>();
    let remote_raw = c.take::<16>();
    let family = c.u16();
    let local_port = c.u16();
    let remote_port = c.u16();
    let role = c.u8();
    c.skip(1);
    let fd = c.u32();
    c.skip(4);
    SockRec {
        cookie,
        local: addr(family, local_raw),
        remote: addr(family, remote_raw),
        family,
        local_port,
        remote_port,
        role,
        fd,
    }
}

/// A `struct weft_lost_calls` at the cursor.
fn lost_calls(c: &mut Cursor<'_>) -> LostCalls {
    LostCalls {
        reads: c.u32(),
        writes: c.u32(),
        read_bytes: c.u32(),
        write_bytes: c.u32(),
    }
}

/// The bytes of record `b` that carry something: all of them, but for an
/// inline call record, whose reservation has room for [`INLINE_MAX`]
/// payload bytes of which only `captured` are valid (what `--record`
/// keeps). Never more than `b.len()`.
pub fn meaningful_len(b: &[u8]) -> usize {
    let word = |at: usize| {
        b.get(at..at + 8)
            .map(|w| u64::from_ne_bytes(w.try_into().unwrap_or([0; 8])))
    };
    if b.len() > CALL_SIZE
        && b.get(..4) == Some(&REC_CALL_INLINE.to_ne_bytes()[..])
        && let Some(captured) = word(CALL_CAPTURED_AT)
    {
        let n = usize::try_from(captured).unwrap_or(usize::MAX);
        return CALL_SIZE.saturating_add(n).min(b.len());
    }
    b.len()
}

/// Offset of `captured` in `struct weft_call_rec`.
const CALL_CAPTURED_AT: usize = 40;

/// A `struct weft_call_rec` (`b` is exactly its bytes).
#[inline(always)]
fn call_rec(b: &[u8]) -> CallRec {
    // A cursor over a fixed-size record: its reads need no checks.
    let mut c = Cursor::new(b, 4);
    let flags = c.u32();
    let call_id = c.u64();
    let start_ns = c.u64();
    let end_ns = c.u64();
    let len = c.u64();
    let captured = c.u64();
    let skipped = c.u64();
    let ssl = c.u64();
    let cgroup_id = c.u64();
    let proc_start_ns = c.u64();
    let pid = c.u32();
    let tid = c.u32();
    let ppid = c.u32();
    let uid = c.u32();
    let gid = c.u32();
    let lib = c.u8();
    let op = c.u8();
    c.skip(2);
    let comm = c.take::<16>();
    let sock = sock(&mut c);
    let lost = lost_calls(&mut c);
    debug_assert_eq!(c.at, CALL_SIZE);
    CallRec {
        flags,
        call_id,
        start_ns,
        end_ns,
        len,
        captured,
        skipped,
        ssl,
        cgroup_id,
        proc_start_ns,
        pid,
        tid,
        ppid,
        uid,
        gid,
        lib,
        op,
        comm,
        sock,
        lost,
    }
}

/// Decode one ring-buffer record.
pub fn parse(b: &[u8]) -> Result<Record<'_>, AbiError> {
    need(0, b, 4)?;
    let mut c = Cursor::new(b, 0);
    let ty = c.u32();
    match ty {
        REC_DATA => {
            need(ty, b, DATA_HDR_SIZE)?;
            // A cursor over a fixed-size header: its reads need no checks.
            let mut c = Cursor::new(&b[..DATA_HDR_SIZE], 4);
            let len = c.u32() as usize;
            let call_id = c.u64();
            let tid = c.u32();
            let offset = c.u32();
            let end = DATA_HDR_SIZE + len;
            need(ty, b, end)?;
            Ok(Record::Data {
                tid,
                call_id,
                offset,
                bytes: &b[DATA_HDR_SIZE..end],
            })
        }
        REC_CALL => {
            need(ty, b, CALL_SIZE)?;
            Ok(Record::Call(call_rec(&b[..CALL_SIZE])))
        }
        REC_CALL_INLINE => {
            need(ty, b, CALL_SIZE)?;
            let call = call_rec(&b[..CALL_SIZE]);
            // The kernel reserves a fixed size; `captured` says what is valid.
            let n = usize::try_from(call.captured).unwrap_or(usize::MAX);
            if n > INLINE_MAX {
                return Err(AbiError::InlineTooLong(call.captured));
            }
            need(ty, b, CALL_SIZE + n)?;
            Ok(Record::CallInline {
                call,
                bytes: &b[CALL_SIZE..CALL_SIZE + n],
            })
        }
        REC_BENCH_COPY => {
            need(ty, b, BENCH_COPY_HDR_SIZE)?;
            let _tid = c.u32();
            Ok(Record::BenchCopy { len: c.u64() })
        }
        REC_EXEC | REC_MMAP => {
            need(ty, b, FILE_SIZE)?;
            let pid = c.u32();
            let dev = c.u64();
            let ino = c.u64();
            Ok(if ty == REC_EXEC {
                Record::Exec { pid, dev, ino }
            } else {
                Record::Mmap { pid, dev, ino }
            })
        }
        REC_EXIT => {
            need(ty, b, EXIT_SIZE)?;
            let pid = c.u32();
            let start_ns = c.u64();
            Ok(Record::Exit { pid, start_ns })
        }
        REC_HELLO => {
            need(ty, b, HELLO_HDR_SIZE)?;
            let len = c.u32() as usize;
            let cookie = c.u64();
            let ts_ns = c.u64();
            let pid = c.u32();
            let tid = c.u32();
            let offset = c.u32();
            let op = c.u8();
            let lib = c.u8();
            let end = HELLO_HDR_SIZE + len.min(HELLO_MAX);
            need(ty, b, end)?;
            Ok(Record::Hello {
                cookie,
                ts_ns,
                pid,
                tid,
                offset,
                op,
                lib,
                bytes: &b[HELLO_HDR_SIZE..end],
            })
        }
        REC_ALPN => {
            need(ty, b, ALPN_SIZE)?;
            let pid = c.u32();
            let ssl = c.u64();
            let cookie = c.u64();
            let lib = c.u8();
            let len = usize::from(c.u8()).min(32);
            Ok(Record::Alpn {
                pid,
                ssl,
                cookie,
                lib,
                proto: &b[32..32 + len],
            })
        }
        REC_KEYLOG => {
            need(ty, b, KEYLOG_SIZE)?;
            let pid = c.u32();
            let ssl = c.u64();
            let cookie = c.u64();
            let lib = c.u8();
            let random_len = usize::from(c.u8()).min(32);
            let secret_len = usize::from(c.u8()).min(64);
            let label = &b[32..64];
            let label = &label[..label.iter().position(|x| *x == 0).unwrap_or(label.len())];
            Ok(Record::Keylog {
                pid,
                ssl,
                cookie,
                lib,
                label,
                random: &b[64..64 + random_len],
                secret: &b[96..96 + secret_len],
            })
        }
        REC_CONN_START | REC_CONN_END | REC_CONN_UPDATE => {
            need(ty, b, CONN_SIZE)?;
            let flags = c.u32();
            let ts_ns = c.u64();
            let established_ns = c.u64();
            let netns_cookie = c.u64();
            let bytes_sent = c.u64();
            let bytes_received = c.u64();
            let ino = c.u64();
            let srtt_us = c.u32();
            let h2_last_stream = c.u32();
            let owner = OwnerRec {
                cgroup_id: c.u64(),
                proc_start_ns: c.u64(),
                pid: c.u32(),
                ppid: c.u32(),
                uid: c.u32(),
                gid: c.u32(),
                comm: c.take::<16>(),
            };
            let sock = sock(&mut c);
            let lost = lost_calls(&mut c);
            debug_assert_eq!(c.at, CONN_SIZE);
            Ok(Record::Conn(ConnRec {
                kind: ty,
                flags,
                ts_ns,
                established_ns,
                netns_cookie,
                bytes_sent,
                bytes_received,
                ino,
                srtt_us,
                h2_last_stream,
                owner,
                sock,
                lost,
            }))
        }
        REC_WIRE_HELLO => {
            need(ty, b, WIRE_HELLO_HDR_SIZE)?;
            let len = c.u32() as usize;
            let key = crate::packets::PktKey::decode(&b[8..8 + crate::packets::PKT_KEY_SIZE])
                .ok_or(AbiError::Short {
                    ty,
                    len: b.len(),
                    need: WIRE_HELLO_HDR_SIZE,
                })?;
            c.skip(crate::packets::PKT_KEY_SIZE);
            let ts_ns = c.u64();
            let seq = c.u32();
            let dir = c.u8();
            let seg = c.u8();
            let flags = c.u8();
            c.skip(1);
            debug_assert_eq!(c.at, WIRE_HELLO_HDR_SIZE);
            let end = WIRE_HELLO_HDR_SIZE + len.min(HELLO_MAX);
            need(ty, b, end)?;
            Ok(Record::WireHello(WireHelloRec {
                key,
                ts_ns,
                seq,
                dir,
                seg,
                flags,
                bytes: &b[WIRE_HELLO_HDR_SIZE..end],
            }))
        }
        other => Err(AbiError::UnknownType(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_bytes() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&REC_CALL.to_ne_bytes());
        b.extend_from_slice(&(CALL_TRUNCATED).to_ne_bytes());
        for v in [7u64, 100, 200, 5000, 4096, 300, 0xdead, 42, 999] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        for v in [10u32, 11, 1, 1000, 1001] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        b.extend_from_slice(&[1, OP_WRITE, 0, 0]);
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"curl");
        b.extend_from_slice(&comm);
        // sock
        b.extend_from_slice(&77u64.to_ne_bytes());
        let mut l = [0u8; 16];
        l[..4].copy_from_slice(&[127, 0, 0, 1]);
        b.extend_from_slice(&l);
        let mut r = [0u8; 16];
        r[..4].copy_from_slice(&[127, 0, 0, 2]);
        b.extend_from_slice(&r);
        b.extend_from_slice(&2u16.to_ne_bytes());
        b.extend_from_slice(&40000u16.to_ne_bytes());
        b.extend_from_slice(&443u16.to_ne_bytes());
        b.extend_from_slice(&[ROLE_CLIENT, 0]);
        b.extend_from_slice(&5u32.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        // lost calls before this one
        for v in [3u32, 1, 300, 20] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(b.len(), CALL_SIZE);
        b
    }

    #[test]
    fn call_record_round_trip() {
        let b = call_bytes();
        let Ok(Record::Call(c)) = parse(&b) else {
            panic!("not a call record")
        };
        assert_eq!(c.call_id, 7);
        assert_eq!(c.len, 5000);
        assert_eq!(c.captured, 4096);
        assert_eq!(c.skipped, 300);
        assert_eq!(c.pid, 10);
        assert_eq!(c.gid, 1001);
        assert_eq!(c.op, OP_WRITE);
        assert_eq!(&c.comm[..4], b"curl");
        assert_eq!(c.sock.cookie, 77);
        assert_eq!(
            c.lost,
            LostCalls {
                reads: 3,
                writes: 1,
                read_bytes: 300,
                write_bytes: 20
            }
        );
        assert_eq!(c.sock.local, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(c.sock.remote_port, 443);
        assert_eq!(c.sock.role, ROLE_CLIENT);
        assert_eq!(c.sock.fd, 5);
    }

    #[test]
    fn inline_call_record_carries_captured_bytes() {
        let mut b = call_bytes();
        b[..4].copy_from_slice(&REC_CALL_INLINE.to_ne_bytes());
        b[CALL_CAPTURED_AT..CALL_CAPTURED_AT + 8].copy_from_slice(&5u64.to_ne_bytes());
        // The reservation's room: valid bytes, then stale ones.
        b.extend_from_slice(b"hello");
        b.extend_from_slice(&[0xee; 251]);
        assert_eq!(meaningful_len(&b), CALL_SIZE + 5);
        let Ok(Record::CallInline { call, bytes }) = parse(&b) else {
            panic!("not an inline call record")
        };
        assert_eq!(bytes, b"hello");
        assert_eq!(call.captured, 5);
        assert_eq!(call.len, 5000);
        assert_eq!(call.sock.cookie, 77);
        // Trimmed (as --record keeps it), it reads the same.
        assert!(matches!(
            parse(&b[..CALL_SIZE + 5]),
            Ok(Record::CallInline {
                bytes: b"hello",
                ..
            })
        ));
        // Fewer bytes than captured, or more than an inline record holds:
        // errors, not panics.
        assert!(parse(&b[..CALL_SIZE + 4]).is_err());
        for n in 0..CALL_SIZE {
            assert!(parse(&b[..n]).is_err(), "prefix {n} accepted");
        }
        b[CALL_CAPTURED_AT..CALL_CAPTURED_AT + 8].copy_from_slice(&u64::MAX.to_ne_bytes());
        assert_eq!(parse(&b), Err(AbiError::InlineTooLong(u64::MAX)));
        assert_eq!(meaningful_len(&b), b.len());
        // Other records are kept whole.
        assert_eq!(meaningful_len(&call_bytes()), CALL_SIZE);
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        let b = call_bytes();
        for n in 0..b.len() {
            assert!(parse(&b[..n]).is_err(), "prefix {n} accepted");
        }
        assert_eq!(parse(&99u32.to_ne_bytes()), Err(AbiError::UnknownType(99)));
    }

    #[test]
    fn data_record_len_is_bounded_by_record() {
        let mut b = Vec::new();
        b.extend_from_slice(&REC_DATA.to_ne_bytes());
        b.extend_from_slice(&5u32.to_ne_bytes());
        b.extend_from_slice(&1u64.to_ne_bytes());
        b.extend_from_slice(&9u32.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(b"hel");
        assert!(parse(&b).is_err());
        b.extend_from_slice(b"lo and stale tail");
        let Ok(Record::Data { bytes, tid, .. }) = parse(&b) else {
            panic!()
        };
        assert_eq!(bytes, b"hello");
        assert_eq!(tid, 9);
    }

    #[test]
    fn wire_hello_record_round_trip_and_bounds() {
        let mut b = Vec::new();
        b.extend_from_slice(&REC_WIRE_HELLO.to_ne_bytes());
        b.extend_from_slice(&3u32.to_ne_bytes());
        let mut k = vec![0u8; crate::packets::PKT_KEY_SIZE];
        k[..8].copy_from_slice(&4026531840u64.to_ne_bytes());
        k[8 + 10] = 0xff;
        k[8 + 11] = 0xff;
        k[8 + 12..8 + 16].copy_from_slice(&[10, 0, 0, 1]);
        k[24 + 10] = 0xff;
        k[24 + 11] = 0xff;
        k[24 + 12..24 + 16].copy_from_slice(&[10, 0, 0, 2]);
        k[40..42].copy_from_slice(&40000u16.to_ne_bytes());
        k[42..44].copy_from_slice(&443u16.to_ne_bytes());
        k[44..48].copy_from_slice(&9u32.to_ne_bytes());
        k[50] = 6;
        b.extend_from_slice(&k);
        b.extend_from_slice(&123u64.to_ne_bytes());
        b.extend_from_slice(&0xfffffff0u32.to_ne_bytes());
        b.extend_from_slice(&[1, 1, WIRE_HELLO_CUT, 0]);
        assert_eq!(b.len(), WIRE_HELLO_HDR_SIZE);
        b.extend_from_slice(&[0x16, 3, 1]);
        let Record::WireHello(w) = parse(&b).expect("valid") else {
            panic!("not a wire hello");
        };
        let key = crate::packets::PktKey::decode(&k).expect("key");
        assert_eq!(key.a, ("10.0.0.1".parse().expect("ip"), 40000));
        assert_eq!((key.ifindex, key.proto), (9, 6));
        assert_eq!(
            w,
            WireHelloRec {
                key,
                ts_ns: 123,
                seq: 0xfffffff0,
                dir: 1,
                seg: 1,
                flags: WIRE_HELLO_CUT,
                bytes: &[0x16, 3, 1],
            }
        );
        // A length past the record's end is an error, not a panic.
        b.truncate(WIRE_HELLO_HDR_SIZE + 2);
        assert!(matches!(parse(&b), Err(AbiError::Short { .. })));
        assert!(matches!(
            parse(&b[..WIRE_HELLO_HDR_SIZE - 1]),
            Err(AbiError::Short { .. })
        ));
    }

    #[test]
    fn hello_record_round_trip_and_bounds() {
        let mut b = Vec::new();
        b.extend_from_slice(&REC_HELLO.to_ne_bytes());
        b.extend_from_slice(&3u32.to_ne_bytes());
        b.extend_from_slice(&77u64.to_ne_bytes());
        b.extend_from_slice(&5u64.to_ne_bytes());
        b.extend_from_slice(&10u32.to_ne_bytes());
        b.extend_from_slice(&11u32.to_ne_bytes());
        b.extend_from_slice(&5u32.to_ne_bytes());
        b.extend_from_slice(&[OP_READ, 3, 0, 0]);
        assert_eq!(b.len(), HELLO_HDR_SIZE);
        b.extend_from_slice(&[0x16, 3, 1]);
        let r = parse(&b).expect("valid");
        assert_eq!(
            r,
            Record::Hello {
                cookie: 77,
                ts_ns: 5,
                pid: 10,
                tid: 11,
                offset: 5,
                op: OP_READ,
                lib: 3,
                bytes: &[0x16, 3, 1],
            }
        );
        // A length past the record's end is an error, not a panic.
        b.truncate(HELLO_HDR_SIZE + 2);
        assert!(parse(&b).is_err());
    }

    #[test]
    fn alpn_record_is_decoded_and_bounded() {
        let mut b = vec![0u8; ALPN_SIZE];
        b[..4].copy_from_slice(&REC_ALPN.to_ne_bytes());
        b[16..24].copy_from_slice(&7u64.to_ne_bytes());
        b[25] = 2;
        b[32..34].copy_from_slice(b"h2");
        assert!(matches!(
            parse(&b),
            Ok(Record::Alpn {
                cookie: 7,
                proto: b"h2",
                ..
            })
        ));
        b[25] = 255; // clamped to the 32 bytes the record has
        assert!(matches!(parse(&b), Ok(Record::Alpn { proto, .. }) if proto.len() == 32));
        assert!(parse(&b[..ALPN_SIZE - 1]).is_err());
    }

    #[test]
    fn keylog_record_is_decoded_and_bounded() {
        let mut b = vec![0u8; KEYLOG_SIZE];
        b[..4].copy_from_slice(&REC_KEYLOG.to_ne_bytes());
        b[4..8].copy_from_slice(&9u32.to_ne_bytes());
        b[16..24].copy_from_slice(&5u64.to_ne_bytes());
        b[24] = 1;
        b[25] = 32;
        b[26] = 200; // more than fits: clamped to 64
        b[32..45].copy_from_slice(b"CLIENT_RANDOM");
        b[64] = 0xaa;
        b[96] = 0xbb;
        match parse(&b).expect("valid") {
            Record::Keylog {
                pid,
                cookie,
                label,
                random,
                secret,
                ..
            } => {
                assert_eq!((pid, cookie), (9, 5));
                assert_eq!(label, b"CLIENT_RANDOM");
                assert_eq!((random.len(), random[0]), (32, 0xaa));
                assert_eq!((secret.len(), secret[0]), (64, 0xbb));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&b[..KEYLOG_SIZE - 1]).is_err());
    }

    #[test]
    fn bench_copy_record_is_counted_not_read() {
        let mut b = Vec::new();
        b.extend_from_slice(&REC_BENCH_COPY.to_ne_bytes());
        b.extend_from_slice(&77u32.to_ne_bytes());
        b.extend_from_slice(&300u64.to_ne_bytes());
        b.extend_from_slice(&[0xaa; 256]);
        assert!(matches!(parse(&b), Ok(Record::BenchCopy { len: 300 })));
        assert!(parse(&b[..BENCH_COPY_HDR_SIZE - 1]).is_err());
    }

    #[test]
    fn conn_record_is_decoded_field_by_field() {
        let mut b = Vec::new();
        b.extend_from_slice(&REC_CONN_END.to_ne_bytes());
        b.extend_from_slice(&CONN_SEEDED.to_ne_bytes());
        for v in [100u64, 50, 0xabc, 1234, 5678, 99] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        b.extend_from_slice(&250u32.to_ne_bytes());
        b.extend_from_slice(&0x7fff_fff1u32.to_ne_bytes());
        // owner
        b.extend_from_slice(&7u64.to_ne_bytes());
        b.extend_from_slice(&8u64.to_ne_bytes());
        for v in [42u32, 1, 1000, 1001] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        let mut comm = [0u8; 16];
        comm[..6].copy_from_slice(b"python");
        b.extend_from_slice(&comm);
        assert_eq!(b.len(), CONN_SIZE - LOST_SIZE - SOCK_SIZE);
        // the socket and the lost calls, as in a call record
        b.extend_from_slice(&call_bytes()[CALL_SIZE - LOST_SIZE - SOCK_SIZE..]);
        assert_eq!(b.len(), CONN_SIZE);
        let Ok(Record::Conn(c)) = parse(&b) else {
            panic!("not a connection record")
        };
        assert_eq!((c.kind, c.flags), (REC_CONN_END, CONN_SEEDED));
        assert_eq!(
            (c.ts_ns, c.established_ns, c.netns_cookie),
            (100, 50, 0xabc)
        );
        assert_eq!((c.bytes_sent, c.bytes_received, c.ino), (1234, 5678, 99));
        assert_eq!(c.srtt_us, 250);
        assert_eq!(c.h2_last_stream, 0x7fff_fff1);
        assert_eq!((c.owner.pid, c.owner.ppid, c.owner.gid), (42, 1, 1001));
        assert_eq!((c.owner.cgroup_id, c.owner.proc_start_ns), (7, 8));
        assert_eq!(&c.owner.comm[..6], b"python");
        assert_eq!(c.sock.cookie, 77);
        assert_eq!(c.sock.remote_port, 443);
        assert_eq!((c.lost.reads, c.lost.writes), (3, 1));
        for n in 0..CONN_SIZE {
            assert!(parse(&b[..n]).is_err(), "prefix {n} accepted");
        }
    }

    #[test]
    fn mapped_ipv4_is_normalised() {
        let mut raw = [0u8; 16];
        raw[10] = 0xff;
        raw[11] = 0xff;
        raw[12..].copy_from_slice(&[10, 1, 2, 3]);
        assert_eq!(addr(10, raw), IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)));
    }
}
