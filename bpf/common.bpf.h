/* SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0) */
/*
 * Maps, configuration and helpers shared by every concern of weft.bpf.c.
 *
 * All concerns live in one BPF object (see docs/adr/0002-one-bpf-object.md)
 * so that they share these maps without pinning anything.
 */
#ifndef WEFT_COMMON_BPF_H
#define WEFT_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "weft_abi.h"

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define PROT_EXEC 0x4
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

/* ---- configuration, set by user space before load (.rodata) ---- */

/* Bytes of one call's payload copied at most (the per-call cap). */
const volatile __u64 payload_cap = 256 * 1024;
/* Body bytes kept per body (--max-body): past them, the bytes of an
 * HTTP/1 Content-Length body or of an HTTP/2 stream's DATA are not copied
 * (tls.bpf.c, body skip).
 * BODY_KEEP_ALL (the default): copy every byte (--raw, --record). */
#define BODY_KEEP_ALL (~0ULL)
const volatile __u64 body_keep = BODY_KEEP_ALL;
/* Non-zero when --pid/--comm/--tree selected processes: others are skipped. */
const volatile __u8 filter_pids_on = 0;
const volatile __u8 filter_comms_on = 0;
/* weft's own pid: its file accesses are never reported. */
const volatile __u32 self_tgid = 0;
/* Wake the reader once this many bytes wait in the ring (user space sets
 * an eighth of the ring, at most 128 KiB: sensor::wakeup_bytes). Below it
 * records are submitted without a wake-up: the reader polls every 5 ms
 * while records come (100 ms when idle) anyway, and a busy host then pays
 * one wake-up per WAKEUP bytes instead of one per record. */
const volatile __u64 wakeup_bytes = 2 * 1024 * 1024;
/* Payload records are refused (counted as ring full) once this many bytes
 * wait in the ring: the rest is kept for the small records that say what
 * was lost (the call record closing each call carries its length and the
 * bytes captured), so a full ring loses payload, not the accounting of it.
 * 0 = no limit. User space sets the ring size minus a reserve. */
const volatile __u64 data_room = 0;
/* Benchmark floors (weft --bench-floor): 1 = every program returns at
 * once, so the hooks cost only the kernel's trap; 2 (FLOOR_COPY) = the
 * same, but the TLS library probes copy each call's plaintext to the ring
 * (tls.bpf.c floor_copy_*): the least any plaintext sensor does. The
 * verifier drops the dead rest (floor_mode is read-only data). */
const volatile __u8 floor_mode = 0;
#define FLOOR_COPY 2

#define FLOOR()                   \
	do {                      \
		if (floor_mode)   \
			return 0; \
	} while (0)

/* A socket's ports and addresses for its `family` (the caller has read
 * skc_family), as in struct weft_sock; the caller sets the cookie, fd and
 * role. Read through a BTF cast of `sk` (any kernel pointer: a BTF one from
 * fd_file(), or one kept as a number in a map), so each field is a load the
 * verifier guards, not a helper call. Shared by the TLS path (resolve_fd),
 * DNS (dns_exit) and the connection iterator. */
static __always_inline void sock_tuple(void *sk_ptr, __u16 family, struct weft_sock *out)
{
	struct sock *sk = bpf_core_cast(sk_ptr, struct sock);
	out->family = family;
	out->local_port = sk->__sk_common.skc_num;
	out->remote_port = bpf_ntohs(sk->__sk_common.skc_dport);
	if (family == AF_INET) {
		__u32 l = sk->__sk_common.skc_rcv_saddr;
		__u32 r = sk->__sk_common.skc_daddr;
		__builtin_memcpy(out->local_addr, &l, 4);
		__builtin_memcpy(out->remote_addr, &r, 4);
	} else {
		__u64 *l = (__u64 *)&sk->__sk_common.skc_v6_rcv_saddr;
		__u64 *r = (__u64 *)&sk->__sk_common.skc_v6_daddr;
		__u64 a[4] = { l[0], l[1], r[0], r[1] };
		__builtin_memcpy(out->local_addr, &a[0], 16);
		__builtin_memcpy(out->remote_addr, &a[2], 16);
	}
}

/* The current task as an untrusted BTF pointer: the same plain loads as
 * through bpf_get_current_task_btf(), but the verifier does not check each
 * load of a trusted pointer's field against the kernel's list of trusted
 * nested types, a search by name through the whole vmlinux BTF that took
 * most of the verification time of the socket-syscall programs (start-up). */
static __always_inline struct task_struct *current_task(void)
{
	return bpf_core_cast(bpf_get_current_task_btf(), struct task_struct);
}

/* The struct file behind fd of the current task (NULL: none), as a BTF
 * pointer. task -> files -> fdtable are plain loads through BTF pointers;
 * only the fd array slot needs a probe read (the verifier allows no
 * variable offset on BTF pointers): one helper call instead of ~8. */
static __always_inline struct file *fd_file(__u64 fd)
{
	struct task_struct *task = current_task();
	struct fdtable *fdt = task->files->fdt;
	if (!fdt || fd >= fdt->max_fds)
		return NULL;
	struct file **fds = fdt->fd;
	struct file *f = NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	if (!f)
		return NULL;
	return bpf_core_cast(f, struct file);
}

/* The struct sock of a socket file (NULL: not a socket, or no sock). */
static __always_inline struct sock *file_sock(struct file *f)
{
	if ((f->f_inode->i_mode & S_IFMT) != S_IFSOCK)
		return NULL;
	struct socket *sock = bpf_core_cast(f->private_data, struct socket);
	return sock->sk;
}

/* ---- maps ---- */

/* Every record to user space. Size set by user space (--ring-size). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024);
} events SEC(".maps");

/* Processes whose records already woke the reader once (LRU: a forgotten
 * one just wakes it again). Cleared at exit, so a reused pid wakes it too. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __u8);
} woken_pids SEC(".maps");

/* Flags for a record that ends a batch: wake the reader only when enough
 * data waits (see wakeup_bytes). Records that precede one (payload chunks)
 * never wake it. */
/* The bytes waiting in the ring. A caller that needs them twice (data_room
 * and the wake-up) asks once and passes them to the *_at() forms. */
#define RING_AVAIL() bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA)

static __always_inline __u64 ring_wakeup_at(__u64 avail)
{
	return avail >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

static __always_inline __u64 ring_wakeup(void)
{
	return ring_wakeup_at(RING_AVAIL());
}

/* Whether a payload record may still be reserved (see data_room), with
 * `avail` bytes waiting. */
static __always_inline bool data_room_left_at(__u64 avail)
{
	return !data_room || avail < data_room;
}

static __always_inline bool data_room_left(void)
{
	/* No query at all while data_room is off. */
	return !data_room || data_room_left_at(RING_AVAIL());
}

/* Flags for a call record, submitted from the calling process: as
 * ring_wakeup(), and also for the first call record of every process, so
 * that user space reads its executable while it still runs (short-lived
 * processes such as git's https helper live a few milliseconds). */
static __always_inline __u64 ring_wakeup_call_at(__u8 *woken, __u64 avail)
{
	/* `woken`: the calling thread's own flag (tls.bpf.c's thread state),
	 * set once its process is in woken_pids: its later calls skip the
	 * lookup. NULL where there is no thread state. */
	if (woken && *woken)
		return ring_wakeup_at(avail);
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (woken)
		*woken = 1;
	if (!bpf_map_lookup_elem(&woken_pids, &tgid)) {
		__u8 one = 1;
		bpf_map_update_elem(&woken_pids, &tgid, &one, BPF_ANY);
		return BPF_RB_FORCE_WAKEUP;
	}
	return ring_wakeup_at(avail);
}

static __always_inline __u64 ring_wakeup_call(__u8 *woken)
{
	return ring_wakeup_call_at(woken, RING_AVAIL());
}

/* Drop and activity counters, summed over CPUs by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WEFT_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* Selected processes: value 1 = this pid, 2 = this pid and its descendants. */
#define WEFT_SEL_PID 1
#define WEFT_SEL_TREE 2
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} filter_pids SEC(".maps");

/* Selected process names (16 bytes, NUL padded, as the kernel keeps comm). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, char[16]);
	__type(value, __u8);
} filter_comms SEC(".maps");

/* Socket cookie -> enum weft_role, learnt from TCP state changes. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, __u64);
	__type(value, __u8);
} sock_role SEC(".maps");

static __always_inline void stat_add(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		*v += n;
}

/* The entry for `key` in hash map `map`, stored as `init` first when
 * absent; NULL when it cannot be stored (the map is full). */
static __always_inline void *map_entry(void *map, const void *key, const void *init)
{
	void *v = bpf_map_lookup_elem(map, key);
	if (v)
		return v;
	bpf_map_update_elem(map, key, init, BPF_NOEXIST);
	return bpf_map_lookup_elem(map, key);
}

/*
 * Call records lost to a full ring, per connection (socket cookie), until
 * the connection's next call record gets through and carries them
 * (weft_call_rec.lost; what is left, its end record: weft_conn_rec.lost).
 * `calls`: lost reads in the high 32 bits, writes in the low ones, so one
 * exchange takes both. LRU: a connection forgotten untold stays counted in
 * lost_untold.
 */
struct lost_calls {
	__u64 calls;
	__u64 read_bytes;
	__u64 write_bytes;
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct lost_calls);
} lost_calls SEC(".maps");

/* Lost calls not yet told: the sum of lost_calls' counts, plus those of
 * entries that could not be stored or that the LRU evicted untold. While 0
 * (always, unless the ring filled) a record costs one load, no lookup; user
 * space reads it for its statistics. Raised before the table and lowered
 * after it, so it never falls below the table's sum. */
volatile __u64 lost_untold = 0;

/* The highest client stream id of an HTTP/2 header block the body walk saw
 * on the socket (tls.bpf.c; 0: none), for its connection's end record. */
static __always_inline __u32 h2_last_stream(__u64 cookie);

static __always_inline void note_lost_call(__u64 cookie, __u8 op, __u64 len)
{
	if (op != WEFT_OP_READ && op != WEFT_OP_WRITE)
		return;
	__sync_fetch_and_add(&lost_untold, 1);
	if (!cookie)
		return;
	struct lost_calls zero = {};
	struct lost_calls *l = map_entry(&lost_calls, &cookie, &zero);
	if (!l)
		return;
	bool write = op == WEFT_OP_WRITE;
	__sync_fetch_and_add(&l->calls, write ? 1 : 1ull << 32);
	__sync_fetch_and_add(write ? &l->write_bytes : &l->read_bytes, len);
}

static __always_inline __u32 sat32(__u64 v)
{
	return v > 0xffffffffull ? 0xffffffffu : (__u32)v;
}

/* The connection's lost calls since the last record that told them, taken
 * (zeroed in the table) into `out`; zeros when none or when `cookie` is 0. */
static __always_inline void take_lost_calls(__u64 cookie, struct weft_lost_calls *out)
{
	*out = (struct weft_lost_calls){};
	if (!lost_untold || !cookie)
		return;
	struct lost_calls *l = bpf_map_lookup_elem(&lost_calls, &cookie);
	if (!l)
		return;
	__u64 calls = __sync_lock_test_and_set(&l->calls, 0);
	if (!calls)
		return;
	out->reads = calls >> 32;
	out->writes = (__u32)calls;
	out->read_bytes = sat32(__sync_lock_test_and_set(&l->read_bytes, 0));
	out->write_bytes = sat32(__sync_lock_test_and_set(&l->write_bytes, 0));
	__sync_fetch_and_sub(&lost_untold, (__u64)out->reads + out->writes);
}

static __always_inline bool comm_selected(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	char comm[16] = {};
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);
	bpf_core_read(&comm, sizeof(comm), &leader->comm);
	return bpf_map_lookup_elem(&filter_comms, comm) != NULL;
}

/*
 * With a process filter: non-zero while a selected process may be alive.
 * Set here when one starts (exec, fork: proc.bpf.c), set and cleared by
 * user space as it follows selected processes (Sensor::set_selected_live).
 * The socket-syscall programs return at once while it is 0: without it,
 * every read and write of every other process on the host (a web server
 * next to the `--comm curl` being watched) would pay their lookups.
 */
volatile __u32 sel_live = 0;

/* The syscall programs have nothing to do: a filter, and no selected
 * process alive. */
static __always_inline bool hooks_idle(void)
{
	return (filter_pids_on || filter_comms_on) && !sel_live;
}

/* Is the calling process one the user asked for? Cheap when no filter. */
static __always_inline bool selected(__u32 tgid)
{
	if (!filter_pids_on && !filter_comms_on)
		return true;
	if (filter_pids_on && bpf_map_lookup_elem(&filter_pids, &tgid))
		return true;
	if (filter_comms_on && comm_selected())
		return true;
	return false;
}

#endif /* WEFT_COMMON_BPF_H */
