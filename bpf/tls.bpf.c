/* SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0) */
/*
 * tls.bpf.c: plaintext of TLS library calls, tied to the socket behind them.
 *
 * Hooks:
 *  - uprobe on entry of SSL_write/SSL_read (+ _ex) and SSL_do_handshake:
 *    remember (per thread) the SSL*, the buffer and where the length will be.
 *  - tracepoint syscalls sys_enter_{write,writev,sendto,sendmsg,read,readv,
 *    recvfrom,recvmsg}: while the thread is inside a TLS call, the fd it
 *    uses is the call's socket; fd -> file -> socket -> sock gives family,
 *    5-tuple and cookie (CO-RE reads, works for connections opened before
 *    weft started). Threads not inside a TLS call leave after one lookup.
 *  - uretprobe.s (sleepable) on return: copy exactly the bytes the call
 *    moved, in chunks of at most WEFT_CHUNK_MAX, with bpf_copy_from_user
 *    (which can fault pages in), then close the call with a call record.
 *  - uprobe SSL_free: forget the (tgid, SSL*) socket cache entry.
 *
 * A call that does no socket I/O itself (data served from the library's
 * buffer, or memory BIOs as in node) takes its socket from a cache keyed by
 * (tgid, SSL*), revalidated by every call that does socket I/O. A call with
 * neither leaves a "pending association": the thread's next socket write
 * (node writes the TLS records right after the call) fills the cache.
 *
 * The library is given by the BPF attach cookie (enum weft_lib). All these
 * programs are uprobe.multi: one link per program and file, which attaches
 * and, above all, detaches in one batch (one RCU grace period per link
 * instead of one per probe: detaching 200 classic uprobes took ~20 s here).
 *
 * Fallback: where sleepable uprobes are unavailable the loader may switch
 * the return program to non-sleepable; copies that fault are then flagged
 * (WEFT_CALL_COPY_FAULT) and never claimed.
 */

#define KIND_RET_LEN 1 /* return value is the byte count (SSL_write/SSL_read) */
#define KIND_EX 2      /* returns 1 on success, count stored through len_ptr */
#define KIND_HANDSHAKE 3

struct call_state {
	__u64 ssl;
	__u64 buf;
	__u64 len_ptr;
	__u64 start_ns;
	__u32 depth;
	__u8 op;
	__u8 kind;
	__u8 lib;
	__u8 has_sock;
	__u8 not_inet;
	__u8 _pad[7];
	struct weft_sock sock;
};

struct ssl_key {
	__u64 ssl;
	__u32 tgid;
	__u32 _pad;
};

/* pid_tgid -> the TLS call this thread is inside. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct call_state);
} calls SEC(".maps");

/* (tgid, SSL*) -> its socket; family 0 marks a non-INET transport. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct ssl_key);
	__type(value, struct weft_sock);
} ssl_socks SEC(".maps");

/* pid_tgid -> SSL* whose socket the thread's next socket write reveals. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} pending_assoc SEC(".maps");

/* Number of live pending_assoc entries (approximate): gates the lookup. */
__u64 pending_count = 0;
/* Call ids, unique for the life of the loaded object. */
__u64 call_seq = 0;

static __always_inline void forget_thread(__u64 pid_tgid)
{
	bpf_map_delete_elem(&calls, &pid_tgid);
	if (pending_count && bpf_map_delete_elem(&pending_assoc, &pid_tgid) == 0)
		__sync_fetch_and_add(&pending_count, -1);
}

#define FD_NONE 0  /* not a socket, or no such fd */
#define FD_INET 1  /* a TCP socket over IPv4/IPv6 */
#define FD_OTHER 2 /* another socket: AF_UNIX, UDP, netlink... */

/* fd of the current task -> TCP socket facts. */
static __always_inline int resolve_fd(__u64 fd, struct weft_sock *out)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
	unsigned int max = BPF_CORE_READ(task, files, fdt, max_fds);
	if (fd >= max)
		return FD_NONE;
	struct file *f = NULL;
	bpf_core_read(&f, sizeof(f), &fds[fd]);
	if (!f)
		return FD_NONE;
	umode_t mode = BPF_CORE_READ(f, f_inode, i_mode);
	/* Files, pipes, eventfds: I/O a library call may do besides its
	 * transport (logging, entropy, wakeups); they say nothing about it. */
	if ((mode & S_IFMT) != S_IFSOCK)
		return FD_NONE;
	struct socket *sock = BPF_CORE_READ(f, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return FD_OTHER;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return FD_OTHER;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return FD_OTHER;
	out->family = family;
	out->fd = fd;
	out->cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	out->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	out->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		__u32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(out->local_addr, &l, 4);
		__builtin_memcpy(out->remote_addr, &r, 4);
	} else {
		BPF_CORE_READ_INTO(&out->local_addr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&out->remote_addr, sk, __sk_common.skc_v6_daddr);
	}
	__u8 *role = out->cookie ? bpf_map_lookup_elem(&sock_role, &out->cookie) : NULL;
	out->role = role ? *role : WEFT_ROLE_UNKNOWN;
	return FD_INET;
}

static __always_inline int on_sock_syscall(__u64 fd, bool is_write)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct call_state *st = bpf_map_lookup_elem(&calls, &id);
	if (!st) {
		if (!is_write || !pending_count)
			return 0;
		__u64 *ssl = bpf_map_lookup_elem(&pending_assoc, &id);
		if (!ssl)
			return 0;
		struct ssl_key key = { .ssl = *ssl, .tgid = id >> 32 };
		bpf_map_delete_elem(&pending_assoc, &id);
		__sync_fetch_and_add(&pending_count, -1);
		struct weft_sock s = {};
		if (resolve_fd(fd, &s) == FD_INET)
			bpf_map_update_elem(&ssl_socks, &key, &s, BPF_ANY);
		return 0;
	}
	if (st->has_sock && st->sock.fd == fd)
		return 0;
	struct weft_sock s = {};
	int kind = resolve_fd(fd, &s);
	if (kind == FD_INET) {
		st->sock = s;
		st->has_sock = 1;
	} else if (kind == FD_OTHER) {
		st->not_inet = 1;
	}
	return 0;
}

#define SOCK_SYSCALL(name, is_write)                                   \
	SEC("tracepoint/syscalls/sys_enter_" #name)                    \
	int sys_enter_##name(struct trace_event_raw_sys_enter *ctx)    \
	{                                                              \
		FLOOR();                                               \
		return on_sock_syscall(ctx->args[0], is_write);        \
	}

SOCK_SYSCALL(write, true)
SOCK_SYSCALL(writev, true)
SOCK_SYSCALL(sendto, true)
SOCK_SYSCALL(sendmsg, true)
SOCK_SYSCALL(read, false)
SOCK_SYSCALL(readv, false)
SOCK_SYSCALL(recvfrom, false)
SOCK_SYSCALL(recvmsg, false)

static __always_inline int enter_call(__u8 op, __u8 kind, __u64 ssl, __u64 buf, __u64 len_ptr)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!selected(id >> 32))
		return 0;
	struct call_state *cur = bpf_map_lookup_elem(&calls, &id);
	if (cur) {
		/* A hooked function called from another: the outer call owns it. */
		cur->depth++;
		stat_add(WEFT_STAT_NESTED, 1);
		return 0;
	}
	if (pending_count && bpf_map_delete_elem(&pending_assoc, &id) == 0)
		__sync_fetch_and_add(&pending_count, -1);
	struct call_state st = {};
	st.ssl = ssl;
	st.buf = buf;
	st.len_ptr = len_ptr;
	st.start_ns = bpf_ktime_get_ns();
	st.op = op;
	st.kind = kind;
	if (bpf_map_update_elem(&calls, &id, &st, BPF_NOEXIST))
		stat_add(WEFT_STAT_STATE_FULL, 1);
	return 0;
}

SEC("uprobe.multi")
int BPF_UPROBE(ssl_write_enter, void *ssl, const void *buf, int num)
{
	FLOOR();
	return enter_call(WEFT_OP_WRITE, KIND_RET_LEN, (__u64)ssl, (__u64)buf, 0);
}

SEC("uprobe.multi")
int BPF_UPROBE(ssl_read_enter, void *ssl, void *buf, int num)
{
	FLOOR();
	return enter_call(WEFT_OP_READ, KIND_RET_LEN, (__u64)ssl, (__u64)buf, 0);
}

SEC("uprobe.multi")
int BPF_UPROBE(ssl_write_ex_enter, void *ssl, const void *buf, size_t num, size_t *written)
{
	FLOOR();
	return enter_call(WEFT_OP_WRITE, KIND_EX, (__u64)ssl, (__u64)buf, (__u64)written);
}

SEC("uprobe.multi")
int BPF_UPROBE(ssl_read_ex_enter, void *ssl, void *buf, size_t num, size_t *readbytes)
{
	FLOOR();
	return enter_call(WEFT_OP_READ, KIND_EX, (__u64)ssl, (__u64)buf, (__u64)readbytes);
}

SEC("uprobe.multi")
int BPF_UPROBE(ssl_handshake_enter, void *ssl)
{
	FLOOR();
	return enter_call(WEFT_OP_HANDSHAKE, KIND_HANDSHAKE, (__u64)ssl, 0, 0);
}

/*
 * NSPR (NSS): PR_Write/PR_Read/PR_Send/PR_Recv carry every kind of I/O.
 * Only descriptors with a layer pushed on top of the raw one (NSS's SSL
 * layer on a TLS socket) are TLS: their method table says PR_DESC_LAYERED.
 * Files, pipes and plain sockets are skipped at entry, costing one read.
 */
#define PR_DESC_LAYERED 4

static __always_inline bool nspr_layered(void *fd)
{
	void *methods = NULL;
	int file_type = 0;
	if (bpf_probe_read_user(&methods, sizeof(methods), fd) || !methods)
		return false;
	if (bpf_probe_read_user(&file_type, sizeof(file_type), methods))
		return false;
	return file_type == PR_DESC_LAYERED;
}

SEC("uprobe.multi")
int BPF_UPROBE(nspr_write_enter, void *fd, const void *buf, int amount)
{
	FLOOR();
	if (!nspr_layered(fd))
		return 0;
	return enter_call(WEFT_OP_WRITE, KIND_RET_LEN, (__u64)fd, (__u64)buf, 0);
}

SEC("uprobe.multi")
int BPF_UPROBE(nspr_read_enter, void *fd, void *buf, int amount)
{
	FLOOR();
	if (!nspr_layered(fd))
		return 0;
	return enter_call(WEFT_OP_READ, KIND_RET_LEN, (__u64)fd, (__u64)buf, 0);
}

/*
 * PR_Recv(fd, buf, amount, flags, timeout). With PR_MSG_PEEK the bytes stay
 * in NSS's buffer and the next read returns them again: not a read of the
 * stream. Firefox peeks one byte on every idle connection it picks up
 * (liveness check); reporting it duplicated that byte (HTTP/2 desync).
 */
#define PR_MSG_PEEK 0x2

SEC("uprobe.multi")
int BPF_UPROBE(nspr_recv_enter, void *fd, void *buf, int amount, int flags)
{
	FLOOR();
	if ((flags & PR_MSG_PEEK) || !nspr_layered(fd))
		return 0;
	return enter_call(WEFT_OP_READ, KIND_RET_LEN, (__u64)fd, (__u64)buf, 0);
}

SEC("uprobe.multi")
int BPF_UPROBE(ssl_free_enter, void *ssl)
{
	FLOOR();
	struct ssl_key key = { .ssl = (__u64)ssl, .tgid = bpf_get_current_pid_tgid() >> 32 };
	bpf_map_delete_elem(&ssl_socks, &key);
	return 0;
}

/* ---- payload copy ---- */

/*
 * Loop state. Only values that converge are written back (flags, and the
 * failing chunk index): a byte counter growing each iteration would keep the
 * verifier from ever seeing two equal states.
 */
struct copy_ctx {
	__u64 call_id;
	__u64 src;
	__u64 total;   /* bytes to copy (already capped) */
	__u64 fail_at; /* index of the first chunk not submitted */
	__u32 tid;
	__u32 flags;   /* WEFT_CALL_COPY_FAULT / WEFT_CALL_RING_FULL */
};

/* One size class of data record: the reservation size must be constant. */
#define DATA_CLASS(SZ)                                                       \
	struct data_rec_##SZ {                                               \
		struct weft_data_rec h;                                      \
		__u8 data[SZ];                                               \
	};                                                                   \
	static __noinline int emit_chunk_##SZ(struct copy_ctx *c, __u64 off, \
					      __u32 n)                       \
	{                                                                    \
		if (n > SZ)                                                  \
			return 1;                                            \
		struct data_rec_##SZ *r =                                    \
			bpf_ringbuf_reserve(&events, sizeof(*r), 0);         \
		if (!r) {                                                    \
			c->flags |= WEFT_CALL_RING_FULL;                     \
			stat_add(WEFT_STAT_RING_FULL_DATA, 1);               \
			return 1;                                            \
		}                                                            \
		if (bpf_copy_from_user(r->data, n,                           \
				       (const void *)(c->src + off))) {     \
			bpf_ringbuf_discard(r, 0);                           \
			c->flags |= WEFT_CALL_COPY_FAULT;                    \
			return 1;                                            \
		}                                                            \
		r->h.type = WEFT_REC_DATA;                                   \
		r->h.len = n;                                                \
		r->h.call_id = c->call_id;                                   \
		r->h.tid = c->tid;                                           \
		r->h.offset = off;                                           \
		bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);                     \
		return 0;                                                    \
	}

DATA_CLASS(64)
DATA_CLASS(512)
DATA_CLASS(4096)
DATA_CLASS(16384)

static long copy_step(__u64 i, void *arg)
{
	struct copy_ctx *c = arg;
	__u64 off = i * WEFT_CHUNK_MAX;
	if (off >= c->total)
		return 1;
	__u64 left = c->total - off;
	__u32 n = left > WEFT_CHUNK_MAX ? WEFT_CHUNK_MAX : left;
	int stop;
	if (n <= 64)
		stop = emit_chunk_64(c, off, n);
	else if (n <= 512)
		stop = emit_chunk_512(c, off, n);
	else if (n <= 4096)
		stop = emit_chunk_4096(c, off, n);
	else
		stop = emit_chunk_16384(c, off, n);
	if (stop)
		c->fail_at = i;
	return stop;
}

/*
 * Emit one finished call: its payload (capped at payload_cap) as data
 * records, then the call record. Shared by every library's return program
 * (it must run in a sleepable program: bpf_copy_from_user). `st` gives the
 * buffer, the library object, the op and the entry time; `sock` the socket.
 */
static __always_inline int emit_call(void *ctx, const struct call_state *st, __u64 len,
				     const struct weft_sock *sock, __u32 flags)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct copy_ctx c = {};
	c.call_id = __sync_fetch_and_add(&call_seq, 1) + 1;
	c.src = st->buf;
	c.total = len > payload_cap ? payload_cap : len;
	c.tid = (__u32)id;
	if (c.total < len) {
		flags |= WEFT_CALL_TRUNCATED;
		stat_add(WEFT_STAT_TRUNCATED, 1);
	}
	if (c.total)
		bpf_loop((c.total + WEFT_CHUNK_MAX - 1) / WEFT_CHUNK_MAX, copy_step, &c, 0);
	/* Only what was submitted counts: never claim bytes not copied. */
	__u64 captured = c.flags ? c.fail_at * WEFT_CHUNK_MAX : c.total;
	flags |= c.flags;
	if (c.flags & WEFT_CALL_COPY_FAULT)
		stat_add(WEFT_STAT_COPY_FAULT, 1);

	struct weft_call_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		stat_add(WEFT_STAT_RING_FULL_CALL, 1);
		return 0;
	}
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);
	__u64 ugid = bpf_get_current_uid_gid();
	r->type = WEFT_REC_CALL;
	r->flags = flags;
	r->call_id = c.call_id;
	r->start_ns = st->start_ns;
	r->end_ns = bpf_ktime_get_ns();
	r->len = len;
	r->captured = captured;
	r->ssl = st->ssl;
	r->cgroup_id = bpf_get_current_cgroup_id();
	r->proc_start_ns = BPF_CORE_READ(leader, start_boottime);
	r->pid = tgid;
	r->tid = (__u32)id;
	r->ppid = BPF_CORE_READ(task, real_parent, tgid);
	r->uid = (__u32)ugid;
	r->gid = ugid >> 32;
	r->lib = bpf_get_attach_cookie(ctx);
	r->op = st->op;
	r->_pad0[0] = 0;
	r->_pad0[1] = 0;
	bpf_core_read(&r->comm, sizeof(r->comm), &leader->comm);
	r->sock = *sock;
	bpf_ringbuf_submit(r, ring_wakeup());
	stat_add(WEFT_STAT_CALLS, 1);
	stat_add(WEFT_STAT_BYTES, captured);
	return 0;
}

/* ---- return: one program for every hooked function ---- */

SEC("uretprobe.multi.s")
int ssl_ret(struct pt_regs *ctx)
{
	FLOOR();
	__u64 id = bpf_get_current_pid_tgid();
	struct call_state *cur = bpf_map_lookup_elem(&calls, &id);
	if (!cur)
		return 0;
	if (cur->depth) {
		cur->depth--;
		return 0;
	}
	struct call_state st = *cur;
	bpf_map_delete_elem(&calls, &id);

	__u32 tgid = id >> 32;
	long rc = PT_REGS_RC(ctx);
	__u64 len = 0;
	bool ok = false;
	if (st.kind == KIND_RET_LEN) {
		ok = (int)rc > 0;
		len = ok ? (__u64)(int)rc : 0;
	} else if (st.kind == KIND_EX) {
		if ((int)rc == 1 && st.len_ptr) {
			ok = bpf_copy_from_user(&len, sizeof(len), (const void *)st.len_ptr) == 0;
		}
	}

	/* The socket: from this call's own I/O, else the cache. */
	struct ssl_key key = { .ssl = st.ssl, .tgid = tgid };
	__u32 flags = 0;
	struct weft_sock sock = {};
	if (st.has_sock) {
		sock = st.sock;
		bpf_map_update_elem(&ssl_socks, &key, &sock, BPF_ANY);
	} else if (st.not_inet) {
		/* family 0: remembered as not a TCP socket */
		bpf_map_update_elem(&ssl_socks, &key, &sock, BPF_ANY);
	} else {
		struct weft_sock *cached = bpf_map_lookup_elem(&ssl_socks, &key);
		if (cached) {
			sock = *cached;
			flags |= WEFT_CALL_SOCK_CACHED;
		} else {
			flags |= WEFT_CALL_NO_SOCK;
			if (bpf_map_update_elem(&pending_assoc, &id, &st.ssl, BPF_ANY) == 0)
				__sync_fetch_and_add(&pending_count, 1);
		}
	}
	if (st.kind == KIND_HANDSHAKE)
		return 0;
	if (!ok) {
		stat_add(WEFT_STAT_FAILED_CALLS, 1);
		return 0;
	}
	if (!(flags & WEFT_CALL_NO_SOCK) && sock.family == 0) {
		/* AF_UNIX, pipes, files: not network traffic. */
		stat_add(WEFT_STAT_NOT_INET, 1);
		return 0;
	}
	if (flags & WEFT_CALL_NO_SOCK)
		stat_add(WEFT_STAT_NO_SOCK, 1);

	return emit_call(ctx, &st, len, &sock, flags);
}
