/* SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0) */
/*
 * weft_abi.h: the only contract between weft's BPF programs and user space.
 *
 * Every record that crosses the ring buffer is defined here with fixed-width
 * fields and explicit padding. crates/weft-bpf/src/abi.rs mirrors these
 * layouts and asserts the same sizes; bump WEFT_ABI_VERSION on any change.
 */
#ifndef WEFT_ABI_H
#define WEFT_ABI_H

#define WEFT_ABI_VERSION 7

/* Payload bytes carried by one data record at most. A call that moved more is
 * split into several data records that user space joins back. */
#define WEFT_CHUNK_MAX 16384

/* A call whose captured payload is at most WEFT_INLINE_MAX bytes (no holes)
 * goes out as ONE record, WEFT_REC_CALL_INLINE: its call record with the
 * payload right after it, instead of data records then a call record (one
 * ring reservation and submit instead of two). Two reservation sizes (the
 * verifier wants a constant): WEFT_INLINE_SMALL and WEFT_INLINE_MAX bytes
 * of payload room; `captured` says how many are valid. */
#define WEFT_INLINE_SMALL 256
#define WEFT_INLINE_MAX 1024

/* Handshake bytes kept per connection and direction: the first bytes a TLS
 * library sends and receives on a socket (ClientHello, ServerHello, plaintext
 * alerts), copied once per connection by the syscall tracepoints. */
#define WEFT_HELLO_MAX 2048

/* Record types: the first u32 of every ring-buffer record. */
enum weft_rec_type {
	WEFT_REC_DATA = 1,   /* struct weft_data_rec + payload bytes */
	WEFT_REC_CALL = 2,   /* struct weft_call_rec: closes one library call */
	WEFT_REC_EXEC = 3,   /* struct weft_file_rec: a process exec'd a file */
	WEFT_REC_MMAP = 4,   /* struct weft_file_rec: a new file mapped executable */
	WEFT_REC_EXIT = 5,   /* struct weft_exit_rec: a process exited */
	WEFT_REC_HELLO = 6,  /* struct weft_hello_rec + bytes: TLS handshake bytes */
	WEFT_REC_KEYLOG = 7, /* struct weft_keylog_rec: one session secret (--keylog) */
	WEFT_REC_ALPN = 8,   /* struct weft_alpn_rec: the ALPN protocol the library chose */
	/* struct weft_call_rec + its `captured` payload bytes (<= WEFT_INLINE_MAX):
	 * a whole call, no data records; call_id is 0 (nothing to match). */
	WEFT_REC_CALL_INLINE = 9,
	/* struct weft_bench_copy_rec + bytes: `weft --bench-floor copy` only
	 * (the capture floor of benches/overhead.sh); never in a capture. */
	WEFT_REC_BENCH_COPY = 10,
	/* Connections (conn.bpf.c): numbers 16-23 are theirs. */
	WEFT_REC_CONN_START = 16, /* struct weft_conn_rec: a TCP connection was established */
	WEFT_REC_CONN_END = 17,   /* struct weft_conn_rec: a TCP connection closed */
	/* struct weft_conn_rec: an open connection's counts so far; written
	 * only to the update iterator's seq file (conn_progress), never to the
	 * ring (--flow-update). */
	WEFT_REC_CONN_UPDATE = 32,
	/* Packet path (tc.bpf.c): numbers 24-31 are theirs. */
	WEFT_REC_WIRE_HELLO = 24, /* struct weft_wire_hello_rec + bytes: TLS hello seen on the wire */
};

/* What the library call did. */
enum weft_op {
	WEFT_OP_WRITE = 1,
	WEFT_OP_READ = 2,
	WEFT_OP_HANDSHAKE = 3, /* call record: len = the function's return value (sign-extended) */
	WEFT_OP_FREE = 4,      /* call record: the library object was freed (len 0) */
};

/* Which TLS library; passed to the programs as the BPF attach cookie. */
enum weft_lib {
	WEFT_LIB_OPENSSL = 1,
	WEFT_LIB_BORINGSSL = 2,
	WEFT_LIB_GNUTLS = 3,
	WEFT_LIB_NSS = 4,
	WEFT_LIB_WOLFSSL = 5,
	WEFT_LIB_GO = 6,
};

/* Role of the socket's owner in the TCP connection. */
enum weft_role {
	WEFT_ROLE_UNKNOWN = 0,
	WEFT_ROLE_CLIENT = 1, /* actively opened (connect) */
	WEFT_ROLE_SERVER = 2, /* passively opened (accept) */
};

/* Flags on struct weft_call_rec. */
#define WEFT_CALL_TRUNCATED   (1u << 0) /* captured < len because of the cap */
#define WEFT_CALL_COPY_FAULT  (1u << 1) /* a user-memory copy failed: captured < len */
#define WEFT_CALL_RING_FULL   (1u << 2) /* a data record could not be reserved */
#define WEFT_CALL_SOCK_CACHED (1u << 3) /* socket from the (tgid, ssl) cache */
#define WEFT_CALL_NO_SOCK     (1u << 4) /* no socket known for this call */
/* Body bytes past the body bound (--max-body) were not copied: the data
 * records leave holes (gaps between their offsets, and `skipped` minus
 * those after the last record), inside what the kernel read as an HTTP/1
 * Content-Length body. */
#define WEFT_CALL_HOLES       (1u << 5)
/* plaintext (bpf/plain.bpf.c): a read/write syscall on a TCP socket outside
 * any TLS library call; lib is 0 (no TLS library). */
#define WEFT_CALL_PLAIN       (1u << 16)
/* with WEFT_CALL_PLAIN: only this direction's first bytes (at most
 * WEFT_FIRST_MAX) of a connection weft does not decode; nothing follows. */
#define WEFT_CALL_FIRST       (1u << 17)
/* with WEFT_CALL_PLAIN: one DNS message over UDP (port 53), at most
 * WEFT_DNS_MAX bytes; the socket is UDP. */
#define WEFT_CALL_DNS         (1u << 18)
/* with WEFT_CALL_PLAIN | WEFT_CALL_DNS: bytes of a DNS-over-TCP connection
 * (port 53), as read or written: messages are length-prefixed and may span
 * calls (user space joins them). */
#define WEFT_CALL_DNS_TCP     (1u << 19)
#define WEFT_DNS_MAX 4096

/* First bytes kept per direction of a TCP connection that is neither TLS
 * nor a protocol weft decodes (plain.bpf.c), once. */
#define WEFT_FIRST_MAX 512

/* Counters in the per-CPU `stats` array: every drop the kernel side makes. */
enum weft_stat {
	WEFT_STAT_CALLS = 0,          /* library calls that produced a record */
	WEFT_STAT_BYTES,              /* payload bytes submitted */
	WEFT_STAT_RING_FULL_DATA,     /* data records lost: ring buffer full */
	WEFT_STAT_RING_FULL_CALL,     /* call records lost: ring buffer full */
	WEFT_STAT_RING_FULL_OTHER,    /* exec/mmap/exit records lost */
	WEFT_STAT_TRUNCATED,          /* calls cut at the payload cap */
	WEFT_STAT_COPY_FAULT,         /* calls whose buffer could not be read */
	WEFT_STAT_NOT_INET,           /* calls on AF_UNIX/non-socket fds, dropped */
	WEFT_STAT_NO_SOCK,            /* calls emitted without a known socket */
	WEFT_STAT_FAILED_CALLS,       /* calls that returned an error (no data) */
	WEFT_STAT_STATE_FULL,         /* per-thread call state could not be stored */
	WEFT_STAT_NESTED,             /* nested library calls folded into the outer */
	WEFT_STAT_HELLO_LOST,         /* handshake-byte records lost: ring buffer full */
	WEFT_STAT_KEYLOG_LOST,        /* session secrets lost: ring full or unreadable */
	/* connections (conn.bpf.c) */
	WEFT_STAT_CONN_LOST,          /* connection records lost: ring buffer full */
	WEFT_STAT_CONN_UNTRACKED,     /* connections closed whose state was forgotten (table full) */
	/* plaintext and first bytes (bpf/plain.bpf.c) */
	WEFT_STAT_PLAIN_CALLS,        /* socket syscalls reported as plaintext or first bytes */
	WEFT_STAT_PLAIN_ARM_FULL,     /* socket syscalls not followed: per-thread state full */
	/* packet path (tc.bpf.c): */
	WEFT_STAT_PKT_FLOWS,          /* flow entries created in pkt_flows */
	WEFT_STAT_PKT_FLOW_FULL,      /* packets not counted: flow entry could not be stored */
	WEFT_STAT_PKT_NOT_IP,         /* packets that are not IPv4/IPv6 (ARP, LLDP...): not counted */
	WEFT_STAT_PKT_SHORT,          /* IP packets whose headers could not be read: not counted */
	WEFT_STAT_PKT_HELLO,          /* TLS hello segments copied from the wire (wire hello records) */
	WEFT_STAT_PKT_HELLO_LOST,     /* wire hello records lost: ring buffer full */
	WEFT_STAT_BODY_SKIPPED,       /* body bytes past --max-body not copied (holes) */
	WEFT_STAT_MAX,
};

/* The socket behind a call: the golden thread. Addresses in network order,
 * IPv4 in the first 4 bytes; ports in host order. */
struct weft_sock {
	__u64 cookie;
	__u8 local_addr[16];
	__u8 remote_addr[16];
	__u16 family; /* AF_INET (2) or AF_INET6 (10) */
	__u16 local_port;
	__u16 remote_port;
	__u8 role;    /* enum weft_role */
	__u8 _pad0;
	__u32 fd;
	__u32 _pad1;
};

/* Library calls of one connection whose call records were lost to a full
 * ring: how many in each direction (as seen by the calling process) and the
 * bytes they moved (saturating). */
struct weft_lost_calls {
	__u32 reads;
	__u32 writes;
	__u32 read_bytes;
	__u32 write_bytes;
};

struct weft_data_rec {
	__u32 type;   /* WEFT_REC_DATA */
	__u32 len;    /* payload bytes that follow the header */
	__u64 call_id;
	__u32 tid;
	__u32 offset; /* of this chunk within the call's payload */
	/* __u8 data[len] follows */
};

struct weft_call_rec {
	__u32 type;   /* WEFT_REC_CALL or WEFT_REC_CALL_INLINE */
	__u32 flags;  /* WEFT_CALL_* */
	__u64 call_id;
	__u64 start_ns;       /* CLOCK_MONOTONIC at entry */
	__u64 end_ns;         /* CLOCK_MONOTONIC at return */
	__u64 len;            /* bytes the call moved */
	__u64 captured;       /* bytes sent in data records (from offset 0 but for holes),
			       * or following this record (WEFT_REC_CALL_INLINE) */
	__u64 skipped;        /* bytes left out in holes (WEFT_CALL_HOLES), not copied */
	__u64 ssl;            /* library connection object (SSL*) */
	__u64 cgroup_id;
	__u64 proc_start_ns;  /* group leader start_boottime (as /proc stat): entity id input */
	__u32 pid;            /* tgid */
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__u32 gid;
	__u8 lib;             /* enum weft_lib */
	__u8 op;              /* enum weft_op */
	__u8 _pad0[2];
	char comm[16];        /* thread-group leader's comm */
	struct weft_sock sock;
	/* Calls of this connection (sock.cookie) whose call records were lost
	 * to a full ring since its previous record got through. Without them
	 * a lost call record would take with it the only account of its call,
	 * and the decoders could not count the transactions it carried. */
	struct weft_lost_calls lost;
};

/* Bytes a TLS library itself wrote to or read from its socket while inside a
 * library call, from the first byte seen on the connection, at most
 * WEFT_HELLO_MAX per direction: the handshake's cleartext start. */
struct weft_hello_rec {
	__u32 type;   /* WEFT_REC_HELLO */
	__u32 len;    /* bytes that follow the header */
	__u64 cookie; /* socket cookie (never 0) */
	__u64 ts_ns;  /* CLOCK_MONOTONIC of the syscall's return */
	__u32 pid;
	__u32 tid;
	__u32 offset; /* of these bytes in this direction's handshake stream */
	__u8 op;      /* WEFT_OP_WRITE (sent) or WEFT_OP_READ (received) */
	__u8 lib;     /* enum weft_lib */
	__u8 _pad0[2];
	/* __u8 data[len] follows */
};

#define WEFT_KEYLOG_LABEL_MAX 32
#define WEFT_KEYLOG_RANDOM_MAX 32
#define WEFT_KEYLOG_SECRET_MAX 64

/* One session secret as the library's key-log code got it (OpenSSL's
 * nss_keylog_int): an NSS key-log line's label, client random (or, for
 * the "RSA" label, the first 8 bytes of the encrypted premaster) and
 * secret. */
struct weft_keylog_rec {
	__u32 type;       /* WEFT_REC_KEYLOG */
	__u32 pid;
	__u64 ssl;        /* library connection object */
	__u64 cookie;     /* socket cookie, 0 when not known yet */
	__u8 lib;         /* enum weft_lib */
	__u8 random_len;  /* valid bytes in random[] */
	__u8 secret_len;  /* valid bytes in secret[] */
	__u8 _pad0[5];
	char label[WEFT_KEYLOG_LABEL_MAX]; /* NUL-terminated when shorter */
	__u8 random[WEFT_KEYLOG_RANDOM_MAX];
	__u8 secret[WEFT_KEYLOG_SECRET_MAX];
};

/* One TLS call's plaintext under `weft --bench-floor copy`: the least a
 * plaintext sensor does per call (its first WEFT_BENCH_COPY_MAX bytes to
 * the ring, no socket, no state); user space counts these and drops them. */
#define WEFT_BENCH_COPY_MAX 16384

struct weft_bench_copy_rec {
	__u32 type;   /* WEFT_REC_BENCH_COPY */
	__u32 tid;
	__u64 len;    /* the call's return length; min(len, WEFT_BENCH_COPY_MAX) bytes follow */
};

#define WEFT_ALPN_MAX 32

/* What SSL_get0_alpn_selected returned to the application: the chosen ALPN
 * protocol, which TLS 1.3 sends encrypted (EncryptedExtensions). */
struct weft_alpn_rec {
	__u32 type;   /* WEFT_REC_ALPN */
	__u32 pid;
	__u64 ssl;
	__u64 cookie; /* socket cookie, 0 when not known */
	__u8 lib;
	__u8 len;     /* bytes in proto[] (longer names are cut) */
	__u8 _pad0[6];
	__u8 proto[WEFT_ALPN_MAX];
};

/* The process that owns a connection: the one that connected or accepted
 * it (sock_ops runs in whatever context the kernel is in, so this is taken
 * at connect/accept, never from sock_ops' current task). */
struct weft_owner {
	__u64 cgroup_id;
	__u64 proc_start_ns;  /* group leader start_boottime */
	__u32 pid;            /* tgid; 0 = not known */
	__u32 ppid;
	__u32 uid;
	__u32 gid;
	char comm[16];        /* thread-group leader's comm */
};

/* Flags on struct weft_conn_rec. */
#define WEFT_CONN_SEEDED   (1u << 0) /* existed before weft started (TCP iterator) */
#define WEFT_CONN_NO_START (1u << 1) /* end of a connection whose start was not reported */

/* A TCP connection's start or end (sock_ops, accept, state tracepoint), or,
 * written by the start-up iterator to its seq file, one that predates weft. */
struct weft_conn_rec {
	__u32 type;            /* WEFT_REC_CONN_START, _END or _UPDATE */
	__u32 flags;           /* WEFT_CONN_* */
	__u64 ts_ns;           /* CLOCK_MONOTONIC of the event */
	__u64 established_ns;  /* CLOCK_MONOTONIC of establishment; 0 = before weft */
	__u64 netns_cookie;    /* network namespace cookie */
	__u64 bytes_sent;      /* end: bytes the owner sent that the peer acked */
	__u64 bytes_received;  /* end: bytes the owner's socket received */
	__u64 ino;             /* socket inode (seeded records: user space finds the owner) */
	__u32 srtt_us;         /* end: smoothed round-trip time, microseconds */
	/* End: the highest client stream id (odd) of an HTTP/2 header block
	 * the kernel's frame walk (tls.bpf.c h2_step) saw on this connection,
	 * either direction, whether its call reached user space or not; 0 =
	 * none, not walked. Tells the decoder of streams lost whole after the
	 * last block it saw, which no later stream id reveals. */
	__u32 h2_last_stream;
	struct weft_owner owner;
	struct weft_sock sock; /* role: client = connected, server = accepted */
	/* End records: calls of this connection whose call records were lost
	 * (ring full) and that no later call record told (as in
	 * weft_call_rec): the connection made no call after them. */
	struct weft_lost_calls lost;
};

struct weft_file_rec {
	__u32 type;   /* WEFT_REC_EXEC or WEFT_REC_MMAP */
	__u32 pid;
	__u64 dev;    /* kernel s_dev encoding */
	__u64 ino;
};

struct weft_exit_rec {
	__u32 type;   /* WEFT_REC_EXIT */
	__u32 pid;
	__u64 proc_start_ns;
};

/* Key of the inode set shared with user space (files already inspected). */
struct weft_file_key {
	__u64 dev;
	__u64 ino;
};

/* ---- packet path (bpf/tc.bpf.c): per-flow counters kept in the kernel ----
 *
 * No per-packet record crosses the ring: TC (and, opt-in, XDP) programs add
 * each packet to its flow's entry in the LRU hash `pkt_flows`; user space
 * reads and deletes entries when the flow ends (FIN/RST seen, or idle). */

/* One flow as seen on one interface: the endpoints are ordered (a < b by
 * address, then port) so both directions share the entry. IPv4 addresses are
 * stored IPv4-mapped (::ffff:a.b.c.d), so an IPv4 packet and an IPv6 packet
 * carrying mapped addresses meet in one entry. Ports 0 for non-TCP/UDP. */
struct weft_pkt_key {
	__u64 netns;      /* network namespace inode (as /proc/PID/ns/net) */
	__u8 addr_a[16];
	__u8 addr_b[16];
	__u16 port_a;     /* host order */
	__u16 port_b;
	__u32 ifindex;    /* in that namespace */
	__u16 vlan;       /* outermost 802.1Q/802.1ad VLAN id, 0 = untagged */
	__u8 proto;       /* IPPROTO_* */
	__u8 _pad0[5];
};

/* Flags on struct weft_pkt_flow, set when the entry is created. */
#define WEFT_PKT_ORIG_B   (1u << 0) /* endpoint b opened the flow (else a) */
#define WEFT_PKT_ORIG_SYN (1u << 1) /* ... known from a SYN (else: first packet seen) */
#define WEFT_PKT_IPV6     (1u << 2) /* the packets were IPv6 on the wire */

/* Bits of weft_pkt_flow.seen: the OR of the TCP flags each way (FIN 0x01 ...
 * CWR 0x80; bits 0-7 from a to b, 8-15 from b to a) and the programs that
 * counted the flow. */
#define WEFT_PKT_SEEN_TC_INGRESS (1u << 16)
#define WEFT_PKT_SEEN_TC_EGRESS  (1u << 17)
#define WEFT_PKT_SEEN_XDP        (1u << 18)

/* Counters of one flow; index 0 = packets from a to b, 1 = from b to a.
 * bytes are L3 bytes (IP header onwards: packet length minus the link-layer
 * header and VLAN tags); a GSO/GRO packet counts once with all its bytes, as
 * the interface counters (`ip -s link`) count it. */
struct weft_pkt_flow {
	__u64 first_ns;     /* CLOCK_MONOTONIC of the first packet */
	__u64 last_ns;      /* ... of the last one */
	__u64 packets[2];
	__u64 bytes[2];
	__u64 cookie;       /* socket cookie of a local socket on this flow, 0 = unknown */
	__u32 seen;         /* WEFT_PKT_SEEN_* and TCP flags, OR-ed atomically */
	__u8 flags;         /* WEFT_PKT_* */
	__u8 lookups;       /* ingress socket lookups tried (bounded) */
	__u16 vlan_inner;   /* inner VLAN id of a double-tagged (QinQ) packet */
	/* TLS hello copy per direction (index as packets[]), tc.bpf.c: */
	__u32 hello_seq[2]; /* WEFT_PKT_HELLO_MORE: TCP sequence number wanted next */
	__u16 hello_len[2]; /* bytes copied so far */
	__u8 hello[2];      /* WEFT_PKT_HELLO_* */
	__u8 _pad0[2];
};

/* weft_pkt_flow.hello[dir]: where the direction's hello copy stands. Set
 * with plain stores: two CPUs racing on one flow may copy a segment twice,
 * which user space recognises by its sequence number. */
#define WEFT_PKT_HELLO_WAIT 0 /* no payload seen yet this way */
#define WEFT_PKT_HELLO_MORE 1 /* first segment copied, its record continues */
#define WEFT_PKT_HELLO_DONE 2 /* copied, not TLS, or not TCP: nothing more */

/* Segments copied per flow and direction at most (a ClientHello with large
 * key shares spans two segments). */
#define WEFT_WIRE_HELLO_SEGS 2

/* Flags on struct weft_wire_hello_rec. */
#define WEFT_WIRE_HELLO_CUT (1u << 0) /* the segment had more payload than copied */

/* The first payload of one direction of a TCP flow, copied when it starts
 * a TLS handshake record (0x16 0x03 0x0X): the ClientHello or ServerHello
 * of traffic that no local socket needs to see (forwarded, bridged). At
 * most WEFT_WIRE_HELLO_SEGS records per direction, WEFT_HELLO_MAX bytes in
 * all. */
struct weft_wire_hello_rec {
	__u32 type;              /* WEFT_REC_WIRE_HELLO */
	__u32 len;               /* bytes that follow the header */
	struct weft_pkt_key key; /* the flow, as in pkt_flows */
	__u64 ts_ns;             /* CLOCK_MONOTONIC of the packet */
	__u32 seq;               /* TCP sequence number of the first byte */
	__u8 dir;                /* 0: sent from a to b, 1: from b to a */
	__u8 seg;                /* 0: the direction's first payload, 1: the next */
	__u8 flags;              /* WEFT_WIRE_HELLO_* */
	__u8 _pad0;
	/* __u8 data[len] follows */
};

#ifdef __BPF__
_Static_assert(sizeof(struct weft_pkt_key) == 56, "weft_pkt_key layout");
_Static_assert(sizeof(struct weft_pkt_flow) == 80, "weft_pkt_flow layout");
_Static_assert(sizeof(struct weft_wire_hello_rec) == 80, "weft_wire_hello_rec layout");
_Static_assert(sizeof(struct weft_sock) == 56, "weft_sock layout");
_Static_assert(sizeof(struct weft_lost_calls) == 16, "weft_lost_calls layout");
_Static_assert(sizeof(struct weft_data_rec) == 24, "weft_data_rec layout");
_Static_assert(sizeof(struct weft_call_rec) == 192, "weft_call_rec layout");
_Static_assert(sizeof(struct weft_file_rec) == 24, "weft_file_rec layout");
_Static_assert(sizeof(struct weft_hello_rec) == 40, "weft_hello_rec layout");
_Static_assert(sizeof(struct weft_keylog_rec) == 160, "weft_keylog_rec layout");
_Static_assert(sizeof(struct weft_alpn_rec) == 64, "weft_alpn_rec layout");
_Static_assert(sizeof(struct weft_bench_copy_rec) == 16, "weft_bench_copy_rec layout");
_Static_assert(sizeof(struct weft_exit_rec) == 16, "weft_exit_rec layout");
_Static_assert(sizeof(struct weft_owner) == 48, "weft_owner layout");
_Static_assert(sizeof(struct weft_conn_rec) == 184, "weft_conn_rec layout");
#endif

#endif /* WEFT_ABI_H */
