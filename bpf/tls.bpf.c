/* SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0) */
/*
 * tls.bpf.c: plaintext of TLS library calls, tied to the socket behind them.
 *
 * Hooks:
 *  - uprobe on entry of SSL_write/SSL_read (+ _ex) and SSL_do_handshake:
 *    remember (per thread, in task storage) the SSL*, the buffer and where
 *    the length will be, and the SSL*'s cached socket.
 *  - tracepoint syscalls sys_enter_{write,writev,sendto,sendmsg,read,readv,
 *    recvfrom,recvmsg}: while the thread is inside a TLS call, the fd it
 *    uses is the call's socket; fd -> file -> socket -> sock gives family,
 *    5-tuple and cookie (CO-RE reads, works for connections opened before
 *    weft started). Threads not inside a TLS call leave after one lookup.
 *  - uretprobe.s (sleepable) on return: copy exactly the bytes the call
 *    moved, in chunks of at most WEFT_CHUNK_MAX, with bpf_copy_from_user
 *    (which can fault pages in), then close the call with a call record.
 *  - uprobe SSL_free: forget the (tgid, SSL*) socket cache entry, and tell
 *    user space the connection's TLS object is gone (a handshake that never
 *    finished has failed).
 *  - tracepoint syscalls sys_exit_{same eight}: the handshake's cleartext.
 *    While a thread is inside a TLS call, the first WEFT_HELLO_MAX bytes it
 *    sends and receives on each connection (ClientHello, ServerHello,
 *    plaintext alerts) are copied once per connection (`hellos`, keyed by
 *    socket cookie) into hello records; user space parses them
 *    (docs/adr/0003-tls-handshake-facts.md). The sys_enter program arms the
 *    copy (buffer, iovec or msghdr), the sys_exit program copies exactly the
 *    bytes the syscall moved. A connection whose first byte is not a TLS
 *    handshake record (weft started mid-connection) is marked done at once.
 *  - with a process filter: tp_btf sock_send_length/sock_recv_length do the
 *    two items above instead (tls_sock_io, below), and the syscall
 *    tracepoints are attached only while a selected process is followed.
 *  - handshake functions (SSL_do_handshake, gnutls_handshake, ...) emit a
 *    call record with their return value, so user space sees success.
 *
 * A call that does no socket I/O itself (data served from the library's
 * buffer, or memory BIOs as in node) takes its socket from a cache keyed by
 * (tgid, SSL*), revalidated by every call that does socket I/O. A call with
 * neither leaves a "pending association": the thread's next socket write
 * (node writes the TLS records right after the call) fills the cache.
 * The cache entry is read once, at entry: a call's socket syscalls take the
 * socket from it when fd still holds the socket with the cached cookie, and
 * skip the handshake copy of directions it says are done; the return
 * writes it only when the call learnt something new.
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
	__u8 hs_kind;  /* HS_* : a syscall armed for a handshake-byte copy */
	__u8 hs_op;    /* WEFT_OP_WRITE / WEFT_OP_READ */
	__u8 _pad[5];
	__u64 hs_ptr;  /* the syscall's buffer, iovec array or msghdr */
	__u64 hs_cnt;  /* iovec count (HS_IOV) */
	struct weft_sock sock;
};

#define HS_NONE 0
#define HS_BUF 1 /* write/read/sendto/recvfrom: (fd, buf, len) */
#define HS_IOV 2 /* writev/readv: (fd, iov, iovcnt) */
#define HS_MSG 3 /* sendmsg/recvmsg: (fd, msghdr, flags) */
#define HS_IOV_MAX 4

/* Per connection and direction: handshake bytes already sent to user
 * space, and whether this direction is finished. */
struct hello_state {
	__u32 sent[2];
	__u8 done[2];
	__u8 verdict; /* plain.bpf.c: V_UNDECIDED, V_TLS, V_PLAIN, V_OTHER */
	__u8 data_seen; /* tls.bpf.c body skip: DATA_SEEN_*, DATA_NO_H2_SKIP */
	__u8 _pad[4];
};

/* socket cookie -> hello_state. LRU: a forgotten entry only means a
 * connection's handshake bytes could be copied again, never wrong data. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct hello_state);
} hellos SEC(".maps");

struct hello_rec_full {
	struct weft_hello_rec h;
	__u8 data[WEFT_HELLO_MAX];
};

struct ssl_key {
	__u64 ssl;
	__u32 tgid;
	__u32 _pad;
};

/* A socket cached for a (tgid, SSL*), with what its connection's
 * handshake copy still wants (`hellos` per direction). */
struct ssl_sock {
	struct weft_sock sock; /* family 0: a non-INET transport */
	__u8 hello_done;       /* HELLO_DONE_*: directions whose handshake bytes are done */
	__u8 body_live;        /* BODY_LIVE_*: directions with state in `bodies` (and seen) */
	__u8 _pad[6];
};

#define HELLO_DONE_W 1
#define HELLO_DONE_R 2
/* = WEFT_OP_WRITE / WEFT_OP_READ; shifted by 2: the direction had a data
 * call since the entry was made */
#define BODY_LIVE_W 1
#define BODY_LIVE_R 2

/* Per thread (task storage: no hash update or delete per call, freed with
 * the thread): the TLS call it is inside, and the cache entry of the call's
 * SSL* read at entry, so that its socket syscalls and its return need no
 * more lookups of ssl_socks, sock_role or hellos. */
struct thread_call {
	struct call_state st;
	struct ssl_sock csock; /* valid when `cached` */
	__u8 active;           /* inside a hooked call (st valid) */
	__u8 cached;
	__u8 sock_new;         /* st.sock differs from csock: the cache needs it */
	__u8 hello_new;        /* hello_done learnt by this call (HELLO_DONE_*) */
	__u8 woken;            /* this thread's process already woke the reader */
	__u8 _pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct thread_call);
} calls SEC(".maps");

/* The current thread's state when it is inside a hooked call, else NULL. */
static __always_inline struct thread_call *cur_call(void)
{
	struct thread_call *tc = bpf_task_storage_get(&calls, bpf_get_current_task_btf(), 0, 0);
	return tc && tc->active ? tc : NULL;
}

/* (tgid, SSL*) -> its socket. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct ssl_key);
	__type(value, struct ssl_sock);
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
/* Call ids, unique for the life of the loaded object: a per-CPU sequence
 * number and the CPU (call_id = n << 16 | cpu). One global counter made
 * every call's atomic add bounce a cache line between the CPUs. The
 * program runs with migration disabled; the add stays atomic because a
 * sleepable program can be preempted by another on the same CPU. User
 * space only matches a thread's data records to its call record. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} call_seq SEC(".maps");

static __always_inline __u64 next_call_id(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&call_seq, &zero);
	if (!n)
		return 0;
	return ((__sync_fetch_and_add(n, 1) + 1) << 16) | (bpf_get_smp_processor_id() & 0xffff);
}
/* Threads armed for a copy at their syscall's exit: inside a TLS call
 * (hs_armed, here) and outside (plain_armed, plain.bpf.c). While both are
 * 0 (every connection past its first bytes) the exit program leaves at
 * once. Exact as long as every arm sees its exit; a thread that dies
 * armed only keeps the exits on their slower path. */
__u64 hs_armed = 0;
__u64 plain_armed = 0;
/* Set by user space once tls_sock_send/tls_sock_recv are attached (with a
 * process filter): they tie TLS calls to their sockets, and the syscall
 * programs leave TLS calls to them. */
volatile __u32 sock_io_on = 0;

/* Clear a handshake-copy arm of st (it counts in hs_armed). */
static __always_inline void hs_disarm(struct call_state *st)
{
	if (st->hs_kind != HS_NONE) {
		st->hs_kind = HS_NONE;
		__sync_fetch_and_add(&hs_armed, -1);
	}
}

static __always_inline void forget_thread(__u64 pid_tgid)
{
	if (pending_count && bpf_map_delete_elem(&pending_assoc, &pid_tgid) == 0)
		__sync_fetch_and_add(&pending_count, -1);
}

#define FD_NONE 0  /* not a socket, or no such fd */
#define FD_INET 1  /* a TCP socket over IPv4/IPv6 */
#define FD_OTHER 2 /* another socket: AF_UNIX, UDP, netlink... */

/* A socket's facts (a BTF `sk`), as fd `fd` of the caller: FD_INET for a
 * TCP socket over IPv4/IPv6 (then `out` is filled), FD_OTHER else. */
static __always_inline int resolve_sk(struct sock *sk, __u64 fd, struct weft_sock *out)
{
	__u16 family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return FD_OTHER;
	if (sk->sk_protocol != IPPROTO_TCP)
		return FD_OTHER;
	sock_tuple(sk, family, out);
	out->fd = fd;
	out->cookie = sk->__sk_common.skc_cookie.counter;
	/* A socket that reached TCP_CLOSE (both sides sent FIN: TIME_WAIT, or a
	 * reset) was unhashed and its skc_num zeroed, while the application may
	 * still read what arrived before (a client that half-closed first);
	 * inet_sport keeps the port. */
	if (!out->local_port)
		out->local_port = bpf_ntohs(bpf_core_cast(sk, struct inet_sock)->inet_sport);
	__u8 *role = out->cookie ? bpf_map_lookup_elem(&sock_role, &out->cookie) : NULL;
	out->role = role ? *role : WEFT_ROLE_UNKNOWN;
	return FD_INET;
}

/* fd of the current task -> TCP socket facts. */
static __always_inline int resolve_fd(__u64 fd, struct weft_sock *out)
{
	struct file *f = fd_file(fd);
	if (!f)
		return FD_NONE;
	/* Files, pipes, eventfds: I/O a library call may do besides its
	 * transport (logging, entropy, wakeups); they say nothing about it. */
	if ((f->f_inode->i_mode & S_IFMT) != S_IFSOCK)
		return FD_NONE;
	struct socket *sock = bpf_core_cast(f->private_data, struct socket);
	struct sock *sk = sock->sk;
	if (!sk)
		return FD_OTHER;
	return resolve_sk(sk, fd, out);
}

/* The thread is inside a TLS call doing I/O on its socket: arm a copy of
 * the handshake bytes at the syscall's exit, when this direction of the
 * connection still wants some. */
static __always_inline void hello_arm(struct thread_call *tc, bool is_write, __u8 kind,
				      __u64 ptr, __u64 cnt)
{
	struct call_state *st = &tc->st;
	__u64 cookie = st->sock.cookie;
	if (!cookie || !ptr)
		return;
	__u8 dir = is_write ? HELLO_DONE_W : HELLO_DONE_R;
	/* Known done for this SSL* (the cache): its `hellos` entry says TLS. */
	if (tc->cached && tc->csock.sock.cookie == cookie && (tc->csock.hello_done & dir))
		return;
	struct hello_state z = {};
	struct hello_state *h = map_entry(&hellos, &cookie, &z);
	if (!h)
		return;
	if (h->verdict != 1 /* V_TLS */) {
		/* A TLS library does I/O here: ciphertext from now on, never
		 * plaintext (plain.bpf.c); its handshake starts now (STARTTLS). */
		struct hello_state tls = { .verdict = 1 };
		*h = tls;
	}
	if (is_write ? h->done[0] : h->done[1]) {
		tc->hello_new |= dir;
		return;
	}
	st->hs_kind = kind;
	__sync_fetch_and_add(&hs_armed, 1);
	st->hs_op = is_write ? WEFT_OP_WRITE : WEFT_OP_READ;
	st->hs_ptr = ptr;
	st->hs_cnt = cnt;
}

/* plain.bpf.c: threads outside TLS calls. */
static __always_inline int plain_enter(__u64 id, __u64 fd, bool is_write, __u8 kind, __u64 ptr,
				       __u64 cnt, __u64 flags, __u64 addr);
/*
 * The socket-syscall capture outside TLS calls (plain.bpf.c) is one program,
 * sys_exit_plain, reached by tail call from every sys_exit_* program: the
 * verifier then checks its many paths once instead of once per syscall (nine
 * inlined copies took 3.3 s of weft's start-up). User space loads it from
 * a second open of this object, in parallel with the rest, and puts it in
 * slot 0 (crates/weft-bpf/src/split.rs); until then the tail call falls
 * through. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32)); /* no BTF key: prog arrays refuse it */
	__uint(value_size, sizeof(__u32));
} plain_exit_prog SEC(".maps");

/* What the call record reports of a socket: a cached entry that differs
 * in none of these is still right. */
static __always_inline bool same_sock(const struct weft_sock *a, const struct weft_sock *b)
{
	return a->cookie == b->cookie && a->fd == b->fd && a->role == b->role &&
	       a->local_port == b->local_port && a->family == b->family;
}

/* The call's socket from the SSL*'s cache entry (read at entry), when fd
 * is still that socket: same fd, and the socket it holds now has the
 * cached cookie (a closed and reused fd, even with a struct file at the
 * same address, holds another socket: cookies are never reused). Costs the
 * fd table walk, not the tuple reads and the sock_role lookup. */
static __always_inline bool sock_from_cache(struct thread_call *tc, __u64 fd)
{
	const struct weft_sock *c = &tc->csock.sock;
	if (!tc->cached || !c->cookie || c->fd != fd)
		return false;
	struct file *f = fd_file(fd);
	if (!f)
		return false;
	struct sock *sk = file_sock(f);
	if (!sk || sk->__sk_common.skc_cookie.counter != c->cookie)
		return false;
	struct call_state *st = &tc->st;
	st->sock = *c;
	st->has_sock = 1;
	if (c->role == WEFT_ROLE_UNKNOWN) {
		/* Learnt since (resolve_fd looks it up every time). */
		__u8 *role = bpf_map_lookup_elem(&sock_role, &c->cookie);
		if (role && *role != WEFT_ROLE_UNKNOWN) {
			st->sock.role = *role;
			tc->sock_new = 1;
		}
	}
	return true;
}

static __always_inline int on_sock_syscall(__u64 fd, bool is_write, __u8 hs_kind, __u64 ptr,
					   __u64 cnt, __u64 flags, __u64 addr)
{
	struct thread_call *tc = cur_call();
	if (!tc) {
		/* Outside a TLS call: the only pid_tgid read of this path. */
		__u64 id = bpf_get_current_pid_tgid();
		/* With sock_io_on the socket tracepoints fill pending
		 * associations (tls_sock_io). */
		if (!is_write || !pending_count || sock_io_on)
			return plain_enter(id, fd, is_write, hs_kind, ptr, cnt, flags, addr);
		__u64 *ssl = bpf_map_lookup_elem(&pending_assoc, &id);
		if (!ssl)
			return plain_enter(id, fd, is_write, hs_kind, ptr, cnt, flags, addr);
		struct ssl_key key = { .ssl = *ssl, .tgid = id >> 32 };
		bpf_map_delete_elem(&pending_assoc, &id);
		__sync_fetch_and_add(&pending_count, -1);
		struct ssl_sock s = {};
		if (resolve_fd(fd, &s.sock) == FD_INET)
			bpf_map_update_elem(&ssl_socks, &key, &s, BPF_ANY);
		return plain_enter(id, fd, is_write, hs_kind, ptr, cnt, flags, addr);
	}
	/* A TLS call's socket I/O: the socket tracepoints' (tls_sock_io). */
	if (sock_io_on)
		return 0;
	struct call_state *st = &tc->st;
	hs_disarm(st);
	if (!(st->has_sock && st->sock.fd == fd) && !sock_from_cache(tc, fd)) {
		struct weft_sock s = {};
		int kind = resolve_fd(fd, &s);
		if (kind == FD_INET) {
			st->sock = s;
			st->has_sock = 1;
			tc->sock_new = !(tc->cached && same_sock(&tc->csock.sock, &s));
		} else {
			if (kind == FD_OTHER)
				st->not_inet = 1;
			return 0;
		}
	}
	hello_arm(tc, is_write, hs_kind, ptr, cnt);
	return 0;
}

/* flags_arg: index of the syscall's flags argument, -1 when it has none;
 * addr_arg: of its address argument (sendto/recvfrom), -1 when none. */
#define ARG(ctx, i) ((i) < 0 ? 0 : (ctx)->args[(i) < 0 ? 0 : (i)])
#define SOCK_SYSCALL(name, is_write, hs_kind, flags_arg, addr_arg)                 \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                \
	int sys_enter_##name(struct trace_event_raw_sys_enter *ctx)                \
	{                                                                          \
		FLOOR();                                                           \
		if (hooks_idle())                                                  \
			return 0;                                                  \
		return on_sock_syscall(ctx->args[0], is_write, hs_kind, ctx->args[1], \
				       ctx->args[2], ARG(ctx, flags_arg),          \
				       ARG(ctx, addr_arg));                        \
	}

SOCK_SYSCALL(write, true, HS_BUF, -1, -1)
SOCK_SYSCALL(writev, true, HS_IOV, -1, -1)
SOCK_SYSCALL(sendto, true, HS_BUF, 3, 4)
SOCK_SYSCALL(sendmsg, true, HS_MSG, 2, -1)
SOCK_SYSCALL(read, false, HS_BUF, -1, -1)
SOCK_SYSCALL(readv, false, HS_IOV, -1, -1)
SOCK_SYSCALL(recvfrom, false, HS_BUF, 3, 4)
SOCK_SYSCALL(recvmsg, false, HS_MSG, 2, -1)

/* Copy `n` bytes at user address `src` as this connection's next handshake
 * bytes in direction `d` (0 sent, 1 received). Returns the bytes taken, 0
 * when the direction is finished. */
static __always_inline __u32 hello_copy(__u64 cookie, __u8 op, __u8 lib, struct hello_state *h,
					__u32 d, __u64 src, __u64 n)
{
	__u32 sent = d ? h->sent[1] : h->sent[0];
	if ((d ? h->done[1] : h->done[0]) || sent >= WEFT_HELLO_MAX || !n)
		return 0;
	__u32 room = WEFT_HELLO_MAX - sent;
	__u32 len = n > room ? room : (__u32)n;
	if (len > WEFT_HELLO_MAX)
		len = WEFT_HELLO_MAX;
	if (len == 0)
		return 0;
	struct hello_rec_full *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		/* A hole would make the rest unparsable: stop this direction. */
		if (d)
			h->done[1] = 1;
		else
			h->done[0] = 1;
		stat_add(WEFT_STAT_HELLO_LOST, 1);
		return 0;
	}
	if (bpf_probe_read_user(r->data, len, (const void *)src) ||
	    (sent == 0 && r->data[0] != 0x16 && r->data[0] != 0x15)) {
		/* Unreadable, or not the start of a TLS handshake or an alert
		 * (weft joined a connection already running): nothing to parse. */
		bpf_ringbuf_discard(r, 0);
		if (d)
			h->done[1] = 1;
		else
			h->done[0] = 1;
		return 0;
	}
	__u64 id = bpf_get_current_pid_tgid();
	r->h.type = WEFT_REC_HELLO;
	r->h.len = len;
	r->h.cookie = cookie;
	r->h.ts_ns = bpf_ktime_get_ns();
	r->h.pid = id >> 32;
	r->h.tid = (__u32)id;
	r->h.offset = sent;
	r->h.op = op;
	r->h.lib = lib;
	r->h._pad0[0] = 0;
	r->h._pad0[1] = 0;
	bpf_ringbuf_submit(r, ring_wakeup());
	if (d) {
		h->sent[1] = sent + len;
		if (sent + len >= WEFT_HELLO_MAX)
			h->done[1] = 1;
	} else {
		h->sent[0] = sent + len;
		if (sent + len >= WEFT_HELLO_MAX)
			h->done[0] = 1;
	}
	return len;
}

struct uiov {
	__u64 base;
	__u64 len;
};

/* The copy armed by hello_arm, now that the I/O moved `ret` bytes. */
static __always_inline int hs_copy(struct thread_call *tc, long ret)
{
	struct call_state *st = &tc->st;
	if (st->hs_kind == HS_NONE)
		return 0;
	__u8 kind = st->hs_kind;
	hs_disarm(st);
	if (ret <= 0)
		return 0;
	__u64 cookie = st->sock.cookie;
	struct hello_state *h = bpf_map_lookup_elem(&hellos, &cookie);
	if (!h)
		return 0;
	__u32 d = st->hs_op == WEFT_OP_WRITE ? 0 : 1;
	__u64 left = ret;
	if (kind == HS_BUF) {
		hello_copy(cookie, st->hs_op, st->lib, h, d, st->hs_ptr, left);
		return 0;
	}
	__u64 iov = st->hs_ptr;
	__u64 cnt = st->hs_cnt;
	if (kind == HS_MSG) {
		struct user_msghdr m = {};
		if (bpf_probe_read_user(&m, sizeof(m), (const void *)st->hs_ptr))
			return 0;
		iov = (__u64)m.msg_iov;
		cnt = m.msg_iovlen;
	}
	for (int i = 0; i < HS_IOV_MAX; i++) {
		if (i >= cnt || !left)
			break;
		struct uiov v = {};
		if (bpf_probe_read_user(&v, sizeof(v), (const void *)(iov + i * sizeof(v))))
			break;
		__u64 n = v.len < left ? v.len : left;
		if (n && hello_copy(cookie, st->hs_op, st->lib, h, d, v.base, n) != n)
			break;
		left -= n;
	}
	return 0;
}

static __always_inline int on_sock_syscall_exit(void *ctx, long ret)
{
	struct thread_call *tc = hs_armed ? cur_call() : NULL;
	if (!tc) {
		/* Does not return when the tail call is made. */
		if (plain_armed)
			bpf_tail_call(ctx, &plain_exit_prog, 0);
		return 0;
	}
	return hs_copy(tc, ret);
}

/*
 * One program for the exit of all eight socket syscalls above (their exit
 * tracepoints share one layout: the return value is all it reads): user
 * space attaches it to each. Eight identical copies cost the verifier
 * ~35 ms each at start-up. The section name only gives the program type.
 */
SEC("tracepoint/syscalls/sys_exit_read")
int sys_exit_sock(struct trace_event_raw_sys_exit *ctx)
{
	FLOOR();
	if (hooks_idle())
		return 0;
	return on_sock_syscall_exit(ctx, ctx->ret);
}

/*
 * With a process filter the syscall tracepoints are attached only while a
 * selected process is followed: any syscall tracepoint sends every syscall
 * of every thread on the host through the kernel's tracing slow path, which
 * a web server next to a watched `--comm curl` would pay on every request.
 * The TLS calls of a selected process are tied to their sockets here
 * instead: sock:sock_send_length and sock:sock_recv_length (Linux 6.3+) fire
 * from sock_sendmsg_nosec/sock_recvmsg_nosec, after the transfer, with the
 * struct sock, for socket I/O only, and cost other processes one program
 * run that reads sel_live. The syscall's arguments (fd, buffer, iovec or
 * msghdr) come from the thread's saved user registers, so the handshake
 * bytes are copied here too (the transfer is done: `ret` bytes).
 * Any other caller (io_uring, the kernel itself) still gives the socket,
 * without fd and handshake copy. Unavailable (older kernels): user space
 * keeps the syscall hooks on and sock_io_on 0.
 */
#define MSG_PEEK 2
#if defined(__TARGET_ARCH_x86)
#define NR_READ 0
#define NR_WRITE 1
#define NR_READV 19
#define NR_WRITEV 20
#define NR_SENDTO 44
#define NR_RECVFROM 45
#define NR_SENDMSG 46
#define NR_RECVMSG 47
#endif

/* plain.bpf.c: the TLS first bytes of a thread outside TLS calls. */
static __always_inline int plain_sock_io(struct sock *sk, bool is_write, int ret, int flags,
					 __u8 kind, __u64 fd, __u64 ptr, __u64 cnt);

static __always_inline int tls_sock_io(struct sock *sk, bool is_write, int ret, int flags)
{
	/* The syscall this transfer belongs to, from the user registers. */
	__u8 kind = HS_NONE;
	__u64 fd = 0, ptr = 0, cnt = 0;
#if defined(__TARGET_ARCH_x86)
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	long nr = regs->orig_ax;
	if (is_write ? (nr == NR_WRITE || nr == NR_SENDTO) : (nr == NR_READ || nr == NR_RECVFROM))
		kind = HS_BUF;
	else if (nr == (is_write ? NR_WRITEV : NR_READV))
		kind = HS_IOV;
	else if (nr == (is_write ? NR_SENDMSG : NR_RECVMSG))
		kind = HS_MSG;
	if (kind != HS_NONE) {
		fd = (__u32)regs->di;
		ptr = regs->si;
		cnt = regs->dx;
	}
#endif
	struct thread_call *tc = cur_call();
	if (!tc) {
		/* A memory-BIO user's write of what its last call produced. */
		__u64 id = bpf_get_current_pid_tgid();
		__u64 *ssl = is_write && pending_count ? bpf_map_lookup_elem(&pending_assoc, &id)
						       : NULL;
		if (ssl) {
			struct ssl_key key = { .ssl = *ssl, .tgid = id >> 32 };
			bpf_map_delete_elem(&pending_assoc, &id);
			__sync_fetch_and_add(&pending_count, -1);
			struct ssl_sock s = {};
			if (resolve_sk(sk, fd, &s.sock) == FD_INET)
				bpf_map_update_elem(&ssl_socks, &key, &s, BPF_ANY);
		}
		return plain_sock_io(sk, is_write, ret, flags, kind, fd, ptr, cnt);
	}
	struct call_state *st = &tc->st;
	hs_disarm(st);
	__u64 cookie = sk->__sk_common.skc_cookie.counter;
	if (!(st->has_sock && cookie && st->sock.cookie == cookie)) {
		if (tc->cached && cookie && tc->csock.sock.cookie == cookie) {
			/* The SSL*'s cached socket (cookies are never reused). */
			st->sock = tc->csock.sock;
			st->has_sock = 1;
			if (st->sock.role == WEFT_ROLE_UNKNOWN) {
				__u8 *role = bpf_map_lookup_elem(&sock_role, &cookie);
				if (role && *role != WEFT_ROLE_UNKNOWN) {
					st->sock.role = *role;
					tc->sock_new = 1;
				}
			}
		} else {
			struct weft_sock s = {};
			if (resolve_sk(sk, fd, &s) != FD_INET) {
				st->not_inet = 1;
				return 0;
			}
			st->sock = s;
			st->has_sock = 1;
			tc->sock_new = !(tc->cached && same_sock(&tc->csock.sock, &s));
		}
	}
	if (kind == HS_NONE || ret <= 0 || (flags & MSG_PEEK))
		return 0;
	hello_arm(tc, is_write, kind, ptr, cnt);
	return hs_copy(tc, ret);
}

SEC("?tp_btf/sock_send_length")
int BPF_PROG(tls_sock_send, struct sock *sk, int ret, int flags)
{
	FLOOR();
	if (hooks_idle())
		return 0;
	return tls_sock_io(sk, true, ret, flags);
}

SEC("?tp_btf/sock_recv_length")
int BPF_PROG(tls_sock_recv, struct sock *sk, int ret, int flags)
{
	FLOOR();
	if (hooks_idle())
		return 0;
	return tls_sock_io(sk, false, ret, flags);
}

/* The bytes a finished library call moved, from its return value `rc`
 * (SSL_read/SSL_write and alike) or the count an _ex function stored
 * through len_ptr; false when it moved none (error, retry, a handshake). */
static __always_inline bool call_len(const struct call_state *st, long rc, __u64 *len)
{
	*len = 0;
	if (st->kind == KIND_RET_LEN) {
		if ((int)rc <= 0)
			return false;
		*len = (__u64)(int)rc;
		return true;
	}
	if (st->kind == KIND_EX && (int)rc == 1 && st->len_ptr)
		return bpf_copy_from_user(len, sizeof(*len), (const void *)st->len_ptr) == 0;
	return false;
}

/*
 * The capture floor (floor_mode == FLOOR_COPY, `weft --bench-floor copy`):
 * what any plaintext sensor on these hooks must do at the least: the entry
 * keeps the buffer, the return copies the call's bytes to the ring (one
 * record, a size class per call: <= 256, 1024 or WEFT_BENCH_COPY_MAX
 * bytes). No filter, socket, correlation, body skip or accounting. Only
 * reached when floor_mode says so: always inlined, so the verifier never
 * walks it in a capture.
 */
static __always_inline int floor_copy_enter(__u8 kind, __u64 buf, __u64 len_ptr)
{
	struct thread_call *tc = bpf_task_storage_get(&calls, bpf_get_current_task_btf(), 0,
						      BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!tc)
		return 0;
	tc->st.buf = buf;
	tc->st.len_ptr = len_ptr;
	tc->st.kind = kind;
	tc->active = 1;
	return 0;
}

#define FLOOR_COPY_FN(SZ)                                                               \
	struct floor_copy_rec_##SZ {                                                    \
		struct weft_bench_copy_rec h;                                           \
		__u8 data[SZ];                                                          \
	};                                                                              \
	static __always_inline void floor_copy_##SZ(__u64 len, __u64 n, __u64 src)     \
	{                                                                               \
		barrier_var(n);                                                         \
		if (n > SZ)                                                             \
			return;                                                         \
		struct floor_copy_rec_##SZ *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0); \
		if (!r)                                                                 \
			return;                                                         \
		r->h.type = WEFT_REC_BENCH_COPY;                                        \
		r->h.tid = (__u32)bpf_get_current_pid_tgid();                           \
		r->h.len = len;                                                         \
		if (bpf_copy_from_user(r->data, n, (const void *)src))                  \
			r->h.len = 0;                                                   \
		bpf_ringbuf_submit(r, ring_wakeup());                                   \
	}

FLOOR_COPY_FN(256)
FLOOR_COPY_FN(1024)
FLOOR_COPY_FN(WEFT_BENCH_COPY_MAX)

static __always_inline int floor_copy_ret(struct pt_regs *ctx)
{
	struct thread_call *tc = cur_call();
	if (!tc)
		return 0;
	tc->active = 0;
	__u64 len;
	if (!call_len(&tc->st, PT_REGS_RC(ctx), &len))
		return 0;
	__u64 n = len > WEFT_BENCH_COPY_MAX ? WEFT_BENCH_COPY_MAX : len;
	if (n <= 256)
		floor_copy_256(len, n, tc->st.buf);
	else if (n <= 1024)
		floor_copy_1024(len, n, tc->st.buf);
	else
		floor_copy_WEFT_BENCH_COPY_MAX(len, n, tc->st.buf);
	return 0;
}

/* Before FLOOR() in the library entry programs the capture floor keeps. */
#define FLOOR_COPY_ENTER(kind, buf, len_ptr)                                           \
	do {                                                                            \
		if (floor_mode == FLOOR_COPY)                                           \
			return floor_copy_enter(kind, (__u64)(buf), (__u64)(len_ptr));  \
	} while (0)

static __always_inline int enter_call(void *ctx, __u8 op, __u8 kind, __u64 ssl, __u64 buf,
				      __u64 len_ptr)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!selected(id >> 32))
		return 0;
	struct thread_call *tc = bpf_task_storage_get(&calls, bpf_get_current_task_btf(), 0,
						      BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!tc) {
		stat_add(WEFT_STAT_STATE_FULL, 1);
		return 0;
	}
	if (tc->active) {
		/* A hooked function called from another: the outer call owns it. */
		tc->st.depth++;
		stat_add(WEFT_STAT_NESTED, 1);
		return 0;
	}
	if (pending_count && bpf_map_delete_elem(&pending_assoc, &id) == 0)
		__sync_fetch_and_add(&pending_count, -1);
	struct call_state *st = &tc->st;
	st->ssl = ssl;
	st->buf = buf;
	st->len_ptr = len_ptr;
	st->start_ns = bpf_ktime_get_ns();
	st->depth = 0;
	st->op = op;
	st->kind = kind;
	st->lib = bpf_get_attach_cookie(ctx);
	st->has_sock = 0;
	st->not_inet = 0;
	hs_disarm(st);
	tc->sock_new = 0;
	tc->hello_new = 0;
	struct ssl_key key = { .ssl = ssl, .tgid = id >> 32 };
	struct ssl_sock *c = bpf_map_lookup_elem(&ssl_socks, &key);
	tc->cached = c != NULL;
	if (c)
		tc->csock = *c;
	tc->active = 1;
	return 0;
}

SEC("uprobe.multi")
int BPF_UPROBE(ssl_write_enter, void *ssl, const void *buf, int num)
{
	FLOOR_COPY_ENTER(KIND_RET_LEN, buf, 0);
	FLOOR();
	return enter_call(ctx, WEFT_OP_WRITE, KIND_RET_LEN, (__u64)ssl, (__u64)buf, 0);
}

SEC("uprobe.multi")
int BPF_UPROBE(ssl_read_enter, void *ssl, void *buf, int num)
{
	FLOOR_COPY_ENTER(KIND_RET_LEN, buf, 0);
	FLOOR();
	return enter_call(ctx, WEFT_OP_READ, KIND_RET_LEN, (__u64)ssl, (__u64)buf, 0);
}

SEC("uprobe.multi")
int BPF_UPROBE(ssl_write_ex_enter, void *ssl, const void *buf, size_t num, size_t *written)
{
	FLOOR_COPY_ENTER(KIND_EX, buf, written);
	FLOOR();
	return enter_call(ctx, WEFT_OP_WRITE, KIND_EX, (__u64)ssl, (__u64)buf, (__u64)written);
}

SEC("uprobe.multi")
int BPF_UPROBE(ssl_read_ex_enter, void *ssl, void *buf, size_t num, size_t *readbytes)
{
	FLOOR_COPY_ENTER(KIND_EX, buf, readbytes);
	FLOOR();
	return enter_call(ctx, WEFT_OP_READ, KIND_EX, (__u64)ssl, (__u64)buf, (__u64)readbytes);
}

SEC("uprobe.multi")
int BPF_UPROBE(ssl_handshake_enter, void *ssl)
{
	FLOOR();
	return enter_call(ctx, WEFT_OP_HANDSHAKE, KIND_HANDSHAKE, (__u64)ssl, 0, 0);
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
	return enter_call(ctx, WEFT_OP_WRITE, KIND_RET_LEN, (__u64)fd, (__u64)buf, 0);
}

SEC("uprobe.multi")
int BPF_UPROBE(nspr_read_enter, void *fd, void *buf, int amount)
{
	FLOOR();
	if (!nspr_layered(fd))
		return 0;
	return enter_call(ctx, WEFT_OP_READ, KIND_RET_LEN, (__u64)fd, (__u64)buf, 0);
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
	return enter_call(ctx, WEFT_OP_READ, KIND_RET_LEN, (__u64)fd, (__u64)buf, 0);
}

/* Fill the call record at r (reserved by the caller: a plain call record,
 * or the head of an inline one, `type`) and submit it with flags `wake`. */
static __always_inline void call_fill_submit(struct weft_call_rec *r, __u32 type, __u64 call_id,
					     __u32 flags, __u64 start_ns, __u64 len, __u64 captured,
					     __u64 skipped, __u64 ssl, __u8 op,
					     const struct weft_sock *sock, __u8 lib, __u64 wake)
{
	__u64 id = bpf_get_current_pid_tgid();
	/* Plain loads through BTF pointers, not a probe read per field. */
	struct task_struct *task = current_task();
	struct task_struct *leader = task->group_leader;
	__u64 ugid = bpf_get_current_uid_gid();
	r->type = type;
	r->flags = flags;
	r->call_id = call_id;
	r->start_ns = start_ns;
	r->end_ns = bpf_ktime_get_ns();
	r->len = len;
	r->captured = captured;
	r->skipped = skipped;
	r->ssl = ssl;
	r->cgroup_id = bpf_get_current_cgroup_id();
	r->proc_start_ns = leader->start_boottime;
	r->pid = id >> 32;
	r->tid = (__u32)id;
	r->ppid = task->real_parent->tgid;
	r->uid = (__u32)ugid;
	r->gid = ugid >> 32;
	r->lib = lib;
	r->op = op;
	r->_pad0[0] = 0;
	r->_pad0[1] = 0;
	__builtin_memcpy(&r->comm, leader->comm, sizeof(r->comm));
	r->sock = *sock;
	/* Only calls that move bytes tell their connection's lost calls: user
	 * space hands those to the connection's decoder (markers such as
	 * SSL_free go elsewhere; the connection's end record takes what is
	 * left, conn.bpf.c). */
	take_lost_calls(op == WEFT_OP_READ || op == WEFT_OP_WRITE ? sock->cookie : 0, &r->lost);
	bpf_ringbuf_submit(r, wake);
}

/* Fill and submit one call record. Returns false when the ring is full. */
static __always_inline bool call_record_lib(void *ctx, __u64 call_id, __u32 flags, __u64 start_ns,
					    __u64 len, __u64 captured, __u64 skipped, __u64 ssl, __u8 op,
					    const struct weft_sock *sock, __u8 lib, __u8 *woken)
{
	struct weft_call_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		stat_add(WEFT_STAT_RING_FULL_CALL, 1);
		note_lost_call(sock->cookie, op, len);
		return false;
	}
	call_fill_submit(r, WEFT_REC_CALL, call_id, flags, start_ns, len, captured, skipped, ssl, op,
			 sock, lib, ring_wakeup_call(woken));
	return true;
}

/*
 * A whole call in one record (WEFT_REC_CALL_INLINE): the call record with
 * its n <= SZ payload bytes at src after it (bpf_copy_from_user: the
 * sleepable return probes only). Returns the bytes it carries when it was
 * submitted, -1 when no record could be reserved (the caller then takes
 * the data records + call record path, which counts what the full ring
 * loses exactly as before). A failed copy still submits the
 * call: captured 0 and WEFT_CALL_COPY_FAULT, as a failed first data
 * record would have left it. `avail`: the bytes waiting in the ring before
 * it (for the wake-up).
 */
#define INLINE_FN(SZ)                                                                    \
	struct inline_rec_##SZ {                                                        \
		struct weft_call_rec c;                                                 \
		__u8 data[SZ];                                                          \
	};                                                                              \
	static __always_inline long inline_call_##SZ(__u32 flags, __u64 start_ns, __u64 len,  \
					       __u64 src, __u64 n, __u64 ssl, __u8 op,  \
					       const struct weft_sock *sock, __u8 lib,  \
					       __u8 *woken, __u64 avail)                \
	{                                                                               \
		/* Checked here, on the register the copy gets (the compiler    \
		 * would drop it as the caller's, then pass an unchecked copy). */ \
		barrier_var(n);                                                         \
		if (n > SZ)                                                             \
			return -1;                                                      \
		struct inline_rec_##SZ *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0); \
		if (!r)                                                                 \
			return -1;                                                      \
		if (bpf_copy_from_user(r->data, n, (const void *)src)) {                              \
			flags |= WEFT_CALL_COPY_FAULT;                                  \
			stat_add(WEFT_STAT_COPY_FAULT, 1);                              \
			n = 0;                                                          \
		}                                                                       \
		call_fill_submit(&r->c, WEFT_REC_CALL_INLINE, 0, flags, start_ns, len,  \
				 n, 0, ssl, op, sock, lib,                              \
				 ring_wakeup_call_at(woken, avail + sizeof(*r)));       \
		return n;                                                               \
	}

INLINE_FN(WEFT_INLINE_SMALL)
INLINE_FN(WEFT_INLINE_MAX)

/* A library call's record: the library is the attach cookie. */
static __always_inline bool call_record(void *ctx, __u64 call_id, __u32 flags, __u64 start_ns,
					__u64 len, __u64 captured, __u64 skipped, __u64 ssl, __u8 op,
					const struct weft_sock *sock, __u8 *woken)
{
	return call_record_lib(ctx, call_id, flags, start_ns, len, captured, skipped, ssl, op, sock,
			       bpf_get_attach_cookie(ctx), woken);
}

/* A call without payload (handshake result, object freed): one record. */
static __always_inline void emit_marker(void *ctx, __u8 op, __u64 ssl, __u64 start_ns,
					__u64 value, const struct weft_sock *sock)
{
	__u64 call_id = next_call_id();
	call_record(ctx, call_id, 0, start_ns, value, 0, 0, ssl, op, sock, NULL);
}

SEC("uprobe.multi")
int BPF_UPROBE(ssl_free_enter, void *ssl)
{
	FLOOR();
	struct ssl_key key = { .ssl = (__u64)ssl, .tgid = bpf_get_current_pid_tgid() >> 32 };
	struct ssl_sock *s = bpf_map_lookup_elem(&ssl_socks, &key);
	if (s && s->sock.family && s->sock.cookie) {
		struct weft_sock copy = s->sock;
		emit_marker(ctx, WEFT_OP_FREE, (__u64)ssl, bpf_ktime_get_ns(), 0, &copy);
	}
	bpf_map_delete_elem(&ssl_socks, &key);
	return 0;
}

/*
 * OpenSSL's nss_keylog_int(prefix, ssl, p1, p1_len, p2, p2_len), located
 * and verified by crates/weft-core/src/discovery/keylog.rs; attached only
 * with --keylog. Every session secret passes here, callback or not.
 * Sleepable: the label lives in the library's .rodata, which may not be
 * paged in yet (bpf_copy_from_user faults it in).
 */
SEC("uprobe.multi.s")
int BPF_UPROBE(ssl_keylog_enter, const char *label, void *ssl, const __u8 *p1, __u64 p1_len,
	       const __u8 *p2, __u64 p2_len)
{
	FLOOR();
	__u64 id = bpf_get_current_pid_tgid();
	if (!selected(id >> 32))
		return 0;
	if (p1_len > WEFT_KEYLOG_RANDOM_MAX || p2_len > WEFT_KEYLOG_SECRET_MAX || !p2_len) {
		stat_add(WEFT_STAT_KEYLOG_LOST, 1);
		return 0;
	}
	struct weft_keylog_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		stat_add(WEFT_STAT_KEYLOG_LOST, 1);
		return 0;
	}
	__u32 n1 = p1_len;
	__u32 n2 = p2_len;
	if (n1 > WEFT_KEYLOG_RANDOM_MAX)
		n1 = WEFT_KEYLOG_RANDOM_MAX;
	if (n2 > WEFT_KEYLOG_SECRET_MAX)
		n2 = WEFT_KEYLOG_SECRET_MAX;
	if (bpf_copy_from_user(r->label, sizeof(r->label), label) &&
	    bpf_probe_read_user_str(r->label, sizeof(r->label), label) < 0)
		goto fail;
	if (bpf_copy_from_user(r->random, n1, p1) || bpf_copy_from_user(r->secret, n2, p2))
		goto fail;
	r->type = WEFT_REC_KEYLOG;
	r->pid = id >> 32;
	r->ssl = (__u64)ssl;
	r->cookie = 0;
	struct thread_call *tc = cur_call();
	if (tc && tc->st.has_sock) {
		r->cookie = tc->st.sock.cookie;
	} else {
		struct ssl_key key = { .ssl = (__u64)ssl, .tgid = id >> 32 };
		struct ssl_sock *s = bpf_map_lookup_elem(&ssl_socks, &key);
		if (s)
			r->cookie = s->sock.cookie;
	}
	r->lib = bpf_get_attach_cookie(ctx);
	r->random_len = n1;
	r->secret_len = n2;
	__builtin_memset(r->_pad0, 0, sizeof(r->_pad0));
	bpf_ringbuf_submit(r, 0);
	return 0;
fail:
	bpf_ringbuf_discard(r, 0);
	stat_add(WEFT_STAT_KEYLOG_LOST, 1);
	return 0;
}

/*
 * BoringSSL's ssl_log_secret(ssl, label, Span<const uint8_t> secret) (the
 * Span arrives as rdx = data, rcx = size), located and verified in stripped
 * executables by crates/weft-core/src/discovery/boringssl/keylog.rs;
 * attached only with --keylog. Every secret passes here, callback or not.
 * The client random is not an argument: it is read like the function reads
 * it, ssl->s3->client_random, with the two offsets taken from the verified
 * code and carried in the attach cookie: lib | s3 << 16 | client_random << 32.
 */
SEC("uprobe.multi.s")
int BPF_UPROBE(boring_keylog_enter, void *ssl, const char *label, const __u8 *secret,
	       __u64 secret_len)
{
	FLOOR();
	__u64 id = bpf_get_current_pid_tgid();
	if (!selected(id >> 32))
		return 0;
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u64 s3_off = (cookie >> 16) & 0xffff;
	__u64 cr_off = (cookie >> 32) & 0xffff;
	if (secret_len > WEFT_KEYLOG_SECRET_MAX || !secret_len || !ssl) {
		stat_add(WEFT_STAT_KEYLOG_LOST, 1);
		return 0;
	}
	__u64 s3 = 0;
	if (bpf_copy_from_user(&s3, sizeof(s3), (const char *)ssl + s3_off) || !s3) {
		stat_add(WEFT_STAT_KEYLOG_LOST, 1);
		return 0;
	}
	struct weft_keylog_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		stat_add(WEFT_STAT_KEYLOG_LOST, 1);
		return 0;
	}
	__u32 n2 = secret_len;
	if (n2 > WEFT_KEYLOG_SECRET_MAX)
		n2 = WEFT_KEYLOG_SECRET_MAX;
	if (bpf_copy_from_user(r->label, sizeof(r->label), label) &&
	    bpf_probe_read_user_str(r->label, sizeof(r->label), label) < 0)
		goto fail;
	if (bpf_copy_from_user(r->random, WEFT_KEYLOG_RANDOM_MAX, (const char *)s3 + cr_off) ||
	    bpf_copy_from_user(r->secret, n2, secret))
		goto fail;
	r->type = WEFT_REC_KEYLOG;
	r->pid = id >> 32;
	r->ssl = (__u64)ssl;
	r->cookie = 0;
	struct ssl_key key = { .ssl = (__u64)ssl, .tgid = id >> 32 };
	struct ssl_sock *s = bpf_map_lookup_elem(&ssl_socks, &key);
	if (s)
		r->cookie = s->sock.cookie;
	r->lib = cookie & 0xff;
	r->random_len = WEFT_KEYLOG_RANDOM_MAX;
	r->secret_len = n2;
	__builtin_memset(r->_pad0, 0, sizeof(r->_pad0));
	bpf_ringbuf_submit(r, 0);
	return 0;
fail:
	bpf_ringbuf_discard(r, 0);
	stat_add(WEFT_STAT_KEYLOG_LOST, 1);
	return 0;
}

/*
 * SSL_get0_alpn_selected(ssl, const unsigned char **data, unsigned int *len):
 * applications (curl, nginx) ask which ALPN protocol was chosen; in TLS 1.3
 * only the library knows it. Entry keeps the out-parameters per thread, the
 * (sleepable) return reads them.
 */
struct alpn_call {
	__u64 ssl;
	__u64 data_pp;
	__u64 len_p;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct alpn_call);
} alpn_calls SEC(".maps");

SEC("uprobe.multi")
int BPF_UPROBE(ssl_alpn_enter, void *ssl, void *data_pp, void *len_p)
{
	FLOOR();
	__u64 id = bpf_get_current_pid_tgid();
	if (!selected(id >> 32))
		return 0;
	struct alpn_call c = { .ssl = (__u64)ssl, .data_pp = (__u64)data_pp, .len_p = (__u64)len_p };
	bpf_map_update_elem(&alpn_calls, &id, &c, BPF_ANY);
	return 0;
}

SEC("uretprobe.multi.s")
int ssl_alpn_ret(struct pt_regs *ctx)
{
	FLOOR();
	__u64 id = bpf_get_current_pid_tgid();
	struct alpn_call *cp = bpf_map_lookup_elem(&alpn_calls, &id);
	if (!cp)
		return 0;
	struct alpn_call c = *cp;
	bpf_map_delete_elem(&alpn_calls, &id);
	__u64 data = 0;
	__u32 len = 0;
	if (bpf_copy_from_user(&data, sizeof(data), (const void *)c.data_pp) ||
	    bpf_copy_from_user(&len, sizeof(len), (const void *)c.len_p) || !data || !len)
		return 0;
	struct ssl_key key = { .ssl = c.ssl, .tgid = id >> 32 };
	struct ssl_sock *s = bpf_map_lookup_elem(&ssl_socks, &key);
	if (!s || !s->sock.cookie)
		return 0;
	__u64 cookie = s->sock.cookie;
	struct weft_alpn_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		stat_add(WEFT_STAT_RING_FULL_OTHER, 1);
		return 0;
	}
	__u32 n = len > WEFT_ALPN_MAX ? WEFT_ALPN_MAX : len;
	if (bpf_copy_from_user(r->proto, n, (const void *)data)) {
		bpf_ringbuf_discard(r, 0);
		return 0;
	}
	r->type = WEFT_REC_ALPN;
	r->pid = id >> 32;
	r->ssl = c.ssl;
	r->cookie = cookie;
	r->lib = bpf_get_attach_cookie(ctx);
	r->len = n;
	__builtin_memset(r->_pad0, 0, sizeof(r->_pad0));
	bpf_ringbuf_submit(r, 0);
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
	__u64 src;     /* the call's buffer */
	__u64 base;    /* first byte of this extent, within the call */
	__u64 total;   /* bytes of this extent (already capped) */
	__u64 fail_at; /* index of the first chunk not submitted */
	__u32 tid;
	__u32 flags;   /* WEFT_CALL_COPY_FAULT / WEFT_CALL_RING_FULL */
};

/*
 * One size class of data record: the reservation size must be constant.
 * DATA_CHUNK_FN makes the function that submits n <= SZ bytes at addr as the
 * payload piece at offset off of call c (struct CTX: call_id, tid, flags),
 * copied with COPY: bpf_copy_from_user in the sleepable return probes here,
 * bpf_probe_read_user in the tracepoints of plain.bpf.c.
 */
#define DATA_CHUNK_FN(NAME, CTX, SZ, COPY)                                   \
	static __noinline int NAME##_##SZ(struct CTX *c, __u64 addr,        \
					  __u64 off, __u32 n)                \
	{                                                                    \
		if (n > SZ)                                                  \
			return 1;                                            \
		struct data_rec_##SZ *r =                                    \
			data_room_left()                                     \
				? bpf_ringbuf_reserve(&events, sizeof(*r), 0) \
				: NULL;                                      \
		if (!r) {                                                    \
			c->flags |= WEFT_CALL_RING_FULL;                     \
			stat_add(WEFT_STAT_RING_FULL_DATA, 1);               \
			return 1;                                            \
		}                                                            \
		if (COPY(r->data, n, (const void *)addr)) {                  \
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

#define DATA_CLASS(SZ)                                                       \
	struct data_rec_##SZ {                                               \
		struct weft_data_rec h;                                      \
		__u8 data[SZ];                                               \
	};                                                                   \
	DATA_CHUNK_FN(emit_chunk, copy_ctx, SZ, bpf_copy_from_user)

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
	__u64 at = c->base + off;
	int stop;
	if (n <= 64)
		stop = emit_chunk_64(c, c->src + at, at, n);
	else if (n <= 512)
		stop = emit_chunk_512(c, c->src + at, at, n);
	else if (n <= 4096)
		stop = emit_chunk_4096(c, c->src + at, at, n);
	else
		stop = emit_chunk_16384(c, c->src + at, at, n);
	if (stop)
		c->fail_at = i;
	return stop;
}

/* Copy bytes [base, base + n) of the call as data records; returns the
 * bytes submitted (all of them unless c->flags says why not). */
static __always_inline __u64 copy_extent(struct copy_ctx *c, __u64 base, __u64 n)
{
	if (!n)
		return 0;
	c->base = base;
	c->total = n;
	c->fail_at = 0;
	bpf_loop((n + WEFT_CHUNK_MAX - 1) / WEFT_CHUNK_MAX, copy_step, c, 0);
	return c->flags ? c->fail_at * WEFT_CHUNK_MAX : n;
}

/* ---- body skip: body bytes past --max-body ----
 *
 * Past the first body_keep bytes of an HTTP/1 message body, or of an
 * HTTP/2 stream's DATA, no event carries the body's bytes, so they are not
 * copied: the call's data records leave holes there (WEFT_CALL_HOLES, call
 * record `skipped`), and the decoder steps over them inside the body it
 * knows the length of (docs/adr/0008-kernel-body-skip.md). Per connection
 * and direction the kernel keeps its state in `bodies`; the SSL*'s cache
 * entry says which directions have some (body_live), so calls of other
 * connections pay nothing but that bit test.
 *
 * HTTP/1: a message is followed only when its head starts a call (or
 * follows the end of the previous body in it), the call has at least
 * BODY_SCAN_MIN bytes from there, the whole head is in the first
 * BODY_SCAN_MAX of them, it has a Content-Length and no Transfer-Encoding,
 * a response's status allows a body, and body bytes follow the head in the
 * same call (a response to HEAD has none: it is never followed). Anything
 * else is copied whole, as without the skip. One HTTP/1 hole per call.
 *
 * HTTP/2: every frame of a direction whose first data call weft saw after
 * the handshake (h2_start, h2_step below); up to MAX_HOLES per call.
 */
#define BODY_SCAN_MIN 1024
#define BODY_SCAN_MAX 1024

#define H2_STREAMS 8
/* Holes of one call at most (more are copied). */
#define MAX_HOLES 4

struct body_dir {
	__u64 left;      /* HTTP/1: body bytes still to come */
	__u64 copy_left; /* of those, bytes still to copy before the hole */
	/* HTTP/2 (h2 set): frame boundaries, from the direction's first byte */
	__u64 pos;       /* the walk's place in the current call */
	__u64 len;       /* the current call's length */
	__u64 buf;       /* the current call's buffer */
	__u32 frame_left;      /* payload bytes left in the current frame */
	__u8 h2;
	__u8 hdr_have;         /* bytes of a frame header cut by the call's end */
	__u8 slot;             /* the current DATA frame's stream slot, H2_STREAMS: none */
	__u8 _pad;
	__u8 hdr[16];          /* that header (9 bytes) */
	__u32 ids[H2_STREAMS]; /* streams with DATA so far (0: free) */
	__u32 kept[H2_STREAMS];/* their DATA bytes copied (at most body_keep) */
	/* The holes the walk found in the current call (in the map value,
	 * not the loop's stack context: nothing there for the verifier to
	 * follow from one step to the next). */
	__u64 ha[MAX_HOLES];
	__u64 hb[MAX_HOLES];
	__u32 nholes;
	/* The highest client (odd) stream id of a HEADERS frame walked in
	 * this direction, its call delivered or lost (h2_last_stream). */
	__u32 last_block;
};

struct body_state {
	struct body_dir d[2]; /* [0] writes, [1] reads */
};

/* socket cookie -> its bodies in progress. LRU: a forgotten entry only
 * means the rest of a body is copied. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct body_state);
} bodies SEC(".maps");

/* A new entry's value (too large for the return probe's stack). */
const struct body_state body_zero = {};

static __always_inline __u32 h2_last_stream(__u64 cookie)
{
	struct body_state *bs = bpf_map_lookup_elem(&bodies, &cookie);
	if (!bs)
		return 0;
	__u32 w = bs->d[0].last_block, r = bs->d[1].last_block;
	return w > r ? w : r;
}

struct body_scratch {
	__u8 b[BODY_SCAN_MAX + 32]; /* room for a 16-byte load at any line start */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct body_scratch);
} body_scratch SEC(".maps");

struct head_scan {
	struct body_scratch *s;
	__u64 n;          /* bytes in s->b */
	__u64 line;       /* start of the current line */
	__u64 end;        /* end of the head (after the empty line), 0 until found */
	__u64 clpos;      /* where the Content-Length value starts, 0: none */
	__u8 first_done;  /* the start line ended */
	__u8 request;     /* the start line is not a status line */
	__u8 bad;         /* not followable: stop */
	__u8 _pad[5];
};

/* Little-endian words of lower-cased header names (| 0x20 per byte). */
#define W_CONTENT_ 0x2d746e65746e6f63ULL /* "content-" */
#define W_LENGTH_C 0x003a6874676e656cULL /* "length:" (7 bytes) */
#define W_TRANSFER 0x7265667372617274ULL /* "transfer" */
#define W_HTTP_1_ 0x2e312f50545448ULL    /* "HTTP/1." (7 bytes) */
#define LOWER 0x2020202020202020ULL
#define LOW7 0x00ffffffffffffffULL

static __always_inline __u64 load64(const struct body_scratch *s, __u64 at)
{
	__u64 w;
	__builtin_memcpy(&w, &s->b[at & (BODY_SCAN_MAX - 1)], 8);
	return w;
}

/*
 * The line starting at `at` (after a '\n'): the end of the head, or a
 * header weft needs. No loop here, and only values of bounded range are
 * kept in `h` (the verifier checks the bpf_loop callbacks until their
 * state stops changing): the Content-Length digits are read after the
 * scan.
 */
static __always_inline void head_line(struct head_scan *h, __u64 at)
{
	struct body_scratch *s = h->s;
	__u64 prev = h->line;
	h->line = at;
	if (!h->first_done) {
		h->first_done = 1;
		/* A request line ends with " HTTP/1.x\r\n". */
		if (h->request &&
		    (at < 11 || (load64(s, at - 10) & LOW7) != W_HTTP_1_ ||
		     s->b[(at - 2) & (BODY_SCAN_MAX - 1)] != '\r'))
			h->bad = 1;
		return;
	}
	if (at - prev == 2) {
		h->end = at; /* an empty line: "\r\n" */
		return;
	}
	if (at + 16 > h->n)
		return; /* a shorter line: none of the names below */
	__u64 w1 = load64(s, at) | LOWER;
	if (w1 == W_TRANSFER) {
		h->bad = 1; /* chunked or another coding: not followed */
		return;
	}
	if (w1 != W_CONTENT_ || ((load64(s, at + 8) | LOWER) & LOW7) != W_LENGTH_C)
		return;
	if (h->clpos)
		h->bad = 1; /* two of them: not followed */
	else
		h->clpos = at + 15;
}

/* One byte of a word that holds a '\n' (head_word): a line starts after it. */
struct head_word_ctx {
	struct head_scan *h;
	__u64 off;
};

static long head_byte(__u64 k, void *arg)
{
	struct head_word_ctx *w = arg;
	struct head_scan *h = w->h;
	__u64 p = w->off + k;
	if (p >= h->n)
		return 1;
	if (h->s->b[p & (BODY_SCAN_MAX - 1)] != '\n')
		return 0;
	head_line(h, p + 1);
	return h->bad || h->end;
}

/* Eight bytes of the head: most hold no '\n' and cost one test. */
static long head_word(__u64 i, void *arg)
{
	struct head_scan *h = arg;
	__u64 off = i * 8;
	if (off >= h->n || h->bad || h->end)
		return 1;
	__u64 w = load64(h->s, off) ^ 0x0a0a0a0a0a0a0a0aULL;
	if (!((w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL))
		return 0;
	struct head_word_ctx c = { .h = h, .off = off };
	bpf_loop(8, head_byte, &c, 0);
	return h->bad || h->end;
}

struct head_facts {
	__u64 head_len; /* bytes of the head, its empty line included */
	__u64 clen;     /* Content-Length */
};

/*
 * Reads the head at `addr` (n bytes of the call from there): true with its
 * length and Content-Length when the message is one body_plan follows.
 * A global function: the verifier checks it once, not on every path of
 * the return probe that reaches it.
 */
__noinline int weft_head_of(__u64 addr, __u64 n, struct head_facts *out)
{
	__u32 zero = 0;
	if (!out)
		return 0;
	struct body_scratch *s = bpf_map_lookup_elem(&body_scratch, &zero);
	if (!s)
		return 0;
	if (n > BODY_SCAN_MAX)
		n = BODY_SCAN_MAX;
	/* The first bytes first: calls of other protocols (HTTP/2 frames,
	 * WebSocket, anything binary) stop here. */
	__u64 first;
	if (n < 16 || bpf_copy_from_user(&first, sizeof(first), (const void *)addr))
		return 0;
	bool status = (first & LOW7) == W_HTTP_1_;
	if (!status && ((__u8)first < 'A' || (__u8)first > 'Z'))
		return 0;
	if (bpf_copy_from_user(s->b, n, (const void *)addr))
		return 0;
	struct head_scan h = { .s = s, .n = n };
	if (status) {
		/* "HTTP/1.x NNN": no body for 1xx, 204, 304 */
		__u8 c0 = s->b[9], c1 = s->b[10], c2 = s->b[11];
		if (c0 < '2' || c0 > '9' || (c1 == '0' && c2 == '4' && (c0 == '2' || c0 == '3')))
			return 0;
	} else {
		h.request = 1; /* a method token: checked at the line's end */
	}
	bpf_loop(BODY_SCAN_MAX / 8, head_word, &h, 0);
	if (h.bad || !h.end || !h.clpos || h.clpos >= h.end)
		return 0;
	__u64 v = 0, digits = 0;
	for (int k = 0; k < 24; k++) {
		__u64 p = h.clpos + k;
		if (p >= h.end)
			break;
		__u8 ch = s->b[p & (BODY_SCAN_MAX - 1)];
		if (ch >= '0' && ch <= '9') {
			if (++digits > 15)
				return 0; /* a petabyte: not followed */
			v = v * 10 + (ch - '0');
		} else if ((ch != ' ' && ch != '\t') || digits) {
			break;
		}
	}
	if (!digits)
		return 0;
	out->head_len = h.end;
	out->clen = v;
	return 1;
}

/* The state of direction `op` (a call's WEFT_OP_*) of a connection. */
static __always_inline struct body_dir *body_dir_of(struct body_state *bs, __u8 op)
{
	return op == WEFT_OP_WRITE ? &bs->d[0] : &bs->d[1];
}

/* Holes of one call, in order (body_plan). */
struct plan {
	__u64 a[MAX_HOLES];
	__u64 b[MAX_HOLES];
	__u32 n;
	__u32 _pad;
	__u64 skipped; /* out (weft_copy_extents): bytes left out before the copy ended */
};

/* Adds the hole [a, b) to the n holes in ha/hb (joined to the previous
 * one when they touch; dropped, so copied, past MAX_HOLES). */
static __always_inline void hole_add(__u64 *ha, __u64 *hb, __u32 *np, __u64 a, __u64 b)
{
	if (b <= a)
		return;
	__u32 n = *np;
	if (n > 0 && n <= MAX_HOLES && hb[(n - 1) & (MAX_HOLES - 1)] == a) {
		hb[(n - 1) & (MAX_HOLES - 1)] = b;
		return;
	}
	if (n >= MAX_HOLES)
		return;
	ha[n & (MAX_HOLES - 1)] = a;
	hb[n & (MAX_HOLES - 1)] = b;
	*np = n + 1;
}

static __always_inline void add_hole(struct plan *p, __u64 a, __u64 b)
{
	hole_add(p->a, p->b, &p->n, a, b);
}

struct h2_ctx {
	struct body_dir *d;
	struct body_scratch *s; /* the call's bytes when it has <= BODY_SCAN_MAX */
	__u64 wlen;             /* bytes in s->b (0: none) */
};

/* add_hole for the HTTP/2 walk: in the direction's map value. */
static __always_inline void h2_hole(struct body_dir *d, __u64 a, __u64 b)
{
	hole_add(d->ha, d->hb, &d->nholes, a, b);
}

/* The stream slot of `id` for a DATA frame: found, or taken (a free one,
 * else the one of the lowest id: streams mostly end in order). */
static __always_inline __u8 h2_slot(struct body_dir *d, __u32 id)
{
	__u8 low = 0;
	for (int k = 0; k < H2_STREAMS; k++) {
		if (d->ids[k] == id)
			return k;
		if (d->ids[k] < d->ids[low])
			low = k;
	}
	low &= H2_STREAMS - 1;
	d->ids[low] = id;
	d->kept[low] = 0;
	return low;
}

/*
 * One step of the HTTP/2 walk over a call (bpf_loop): the next frame header
 * when no frame is open (read in place from the copy of a small call, or
 * from the call, or finished from the bytes the previous call ended with),
 * then as much of the open frame's payload as the call holds (a hole when
 * it is DATA of a stream past body_keep): one step per frame of a call,
 * not two. The walk's state lives in
 * the map value, not in the loop's context: the verifier then has nothing
 * growing to follow from one iteration to the next.
 */
static long h2_step(__u64 i, void *arg)
{
	struct h2_ctx *c = arg;
	struct body_dir *d = c->d;
	__u64 pos = d->pos, len = d->len;
	if (pos >= len || !d->h2)
		return 1;
	if (!d->frame_left) {
		/* The next frame header, then (same step) its payload. */
		__u8 have = d->hdr_have;
		__u32 flen, id;
		__u8 type;
		if (!have && c->s && pos + 9 <= c->wlen) {
			/* Whole in the copy of a small call: read in place. */
			const __u8 *h = &c->s->b[pos & (BODY_SCAN_MAX - 1)];
			flen = (__u32)h[0] << 16 | (__u32)h[1] << 8 | h[2];
			type = h[3];
			id = ((__u32)h[5] << 24 | (__u32)h[6] << 16 | (__u32)h[7] << 8 | h[8]) &
			     0x7fffffff;
			pos += 9;
		} else {
			if (have > 8) {
				d->h2 = 0;
				return 1;
			}
			__u64 left = len - pos;
			__u64 take = 9 - have;
			if (take > left)
				take = left;
			if (take < 1 || take > 9) {
				d->h2 = 0;
				return 1;
			}
			if (c->s && pos + take <= c->wlen) {
				for (int k = 0; k < 9; k++) {
					if (k >= take)
						break;
					d->hdr[(have + k) & 15] =
						c->s->b[(pos + k) & (BODY_SCAN_MAX - 1)];
				}
			} else if (bpf_copy_from_user(&d->hdr[have & 7], take,
						      (const void *)(d->buf + pos))) {
				d->h2 = 0; /* lost: copy everything from now on */
				return 1;
			}
			pos += take;
			have += take;
			if (have < 9) {
				d->pos = pos;
				d->hdr_have = have;
				return 1;
			}
			d->hdr_have = 0;
			flen = (__u32)d->hdr[0] << 16 | (__u32)d->hdr[1] << 8 | d->hdr[2];
			type = d->hdr[3];
			id = ((__u32)d->hdr[5] << 24 | (__u32)d->hdr[6] << 16 |
			      (__u32)d->hdr[7] << 8 | d->hdr[8]) &
			     0x7fffffff;
		}
		d->pos = pos;
		d->frame_left = flen;
		d->slot = H2_STREAMS;
		if (type == 0 /* DATA */ && id && flen)
			d->slot = h2_slot(d, id);
		else if (type == 1 /* HEADERS */ && (id & 1) && id > d->last_block)
			d->last_block = id;
		if (!flen || pos >= len)
			return pos >= len;
	}
	__u64 left = len - pos;
	__u64 n = d->frame_left < left ? d->frame_left : left;
	__u32 slot = d->slot;
	if (slot < H2_STREAMS) {
		/* Masked after the barrier: the compiler would drop a mask it
		 * knows is redundant, and index with an unchecked copy. */
		barrier_var(slot);
		slot &= H2_STREAMS - 1;
		__u32 kept = d->kept[slot];
		__u64 room = kept < body_keep ? body_keep - kept : 0;
		if (n > room) {
			h2_hole(d, pos + room, pos + n);
			d->kept[slot] = body_keep;
		} else {
			d->kept[slot] = kept + n;
		}
	}
	d->frame_left -= n;
	d->pos = pos + n;
	return 0;
}

#define H2_PREFACE_LEN 24
#define H2_SETTINGS_MAX 8 /* settings read from the server's first frame */
#define H2_NO_SKIP (-2)   /* HTTP/2, but not to be followed */

/*
 * The direction's first call since its connection's handshake: HTTP/2 when
 * it starts with the client preface (frames follow it) or the server's
 * SETTINGS frame. Returns the offset of the first frame, or -1.
 */
static __always_inline long h2_start(__u64 buf, __u64 len)
{
	__u8 b[H2_PREFACE_LEN];
	if (len < 9 || bpf_copy_from_user(b, 9, (const void *)buf))
		return -1;
	/* SETTINGS (type 4), no flags, stream 0, a length of whole settings */
	__u32 flen = (__u32)b[0] << 16 | (__u32)b[1] << 8 | b[2];
	if (b[3] == 4 && b[4] == 0 && !b[5] && !b[6] && !b[7] && !b[8] && flen % 6 == 0) {
		/* A server that allows extended CONNECT (RFC 8441) may carry
		 * WebSocket in DATA frames: a stream of messages, not a body
		 * bounded by --max-body. Its connection is not followed. */
		__u8 set[H2_SETTINGS_MAX * 6] = {};
		__u32 n = flen < sizeof(set) ? flen : sizeof(set);
		if (len < 9 + n || (n && bpf_copy_from_user(set, n, (const void *)(buf + 9))))
			return H2_NO_SKIP;
		for (int k = 0; k < H2_SETTINGS_MAX; k++) {
			if (k * 6 + 6 > n)
				break;
			__u16 id = (__u16)set[k * 6] << 8 | set[k * 6 + 1];
			if (id == 8 /* SETTINGS_ENABLE_CONNECT_PROTOCOL */ &&
			    (set[k * 6 + 2] | set[k * 6 + 3] | set[k * 6 + 4] | set[k * 6 + 5]))
				return H2_NO_SKIP;
		}
		return 0;
	}
	if (len < H2_PREFACE_LEN || bpf_copy_from_user(b, H2_PREFACE_LEN, (const void *)buf))
		return -1;
	__u64 w0, w1, w2;
	__builtin_memcpy(&w0, b, 8);
	__builtin_memcpy(&w1, b + 8, 8);
	__builtin_memcpy(&w2, b + 16, 8);
	/* "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" */
	if (w0 == 0x50545448202a2049ULL && w1 == 0x0a0d0a0d302e322fULL &&
	    w2 == 0x0a0d0a0d0a0d4d53ULL)
		return H2_PREFACE_LEN;
	return -1;
}

#define DATA_SEEN_W 1
#define DATA_SEEN_R 2
#define DATA_NO_H2_SKIP 4 /* the server allows extended CONNECT */

/* Connection `cookie`'s handshake state when it was seen from its
 * handshake and this is the first data call of direction `op` since (told
 * once per direction: `hellos` keeps the answer), else NULL. */
static __always_inline struct hello_state *first_data_call(__u64 cookie, __u8 op)
{
	struct hello_state *h = bpf_map_lookup_elem(&hellos, &cookie);
	if (!h)
		return NULL;
	__u8 bit = op == WEFT_OP_WRITE ? DATA_SEEN_W : DATA_SEEN_R;
	if (h->data_seen & bit)
		return NULL;
	h->data_seen |= bit;
	return h->sent[0] && h->sent[1] ? h : NULL;
}

/* HTTP/2: the holes of the call in the direction's walk `d`. */
static __always_inline void h2_plan(struct body_dir *d, __u64 buf, __u64 len, __u64 from,
				    struct plan *p)
{
	d->pos = from;
	d->len = len;
	d->buf = buf;
	d->nholes = 0;
	struct h2_ctx c = { .d = d };
	if (len <= BODY_SCAN_MAX && len > from + 9) {
		/* A small call (many small frames, most likely): one copy of it
		 * instead of one per frame header. Nothing in the walk sleeps
		 * before it is read (per-CPU: a copy that sleeps on a fault
		 * lets another program on this CPU use it). */
		__u32 zero = 0;
		struct body_scratch *s = bpf_map_lookup_elem(&body_scratch, &zero);
		/* The bound again, on the register the copy gets: the compiler
		 * knows len is small and would drop it, then pass a reloaded,
		 * unchecked len (the verifier refused it). */
		__u64 n = len;
		barrier_var(n);
		if (s && n <= BODY_SCAN_MAX && !bpf_copy_from_user(s->b, n, (const void *)buf)) {
			c.s = s;
			c.wlen = len;
		}
	}
	bpf_loop(128, h2_step, &c, 0);
	if (d->h2 && d->pos < d->len) {
		d->h2 = 0; /* more frames than steps: lost, copy from now on */
		return;
	}
	__u32 n = d->nholes;
	if (n > MAX_HOLES)
		n = MAX_HOLES;
	for (int k = 0; k < MAX_HOLES; k++) {
		p->a[k] = d->ha[k];
		p->b[k] = d->hb[k];
	}
	p->n = n;
}

/*
 * The holes of a call of `len` bytes on connection `cookie` (direction by
 * op) in `p`, and whether the direction needs its state at the next call
 * (inside an HTTP/1 body, or an HTTP/2 connection). `live`: the SSL*'s
 * cache says so; 2: unknown (no cache: look). `first`: the cache entry
 * has not seen a data call of this direction yet.
 */
static __always_inline bool body_plan(__u64 buf, __u64 len, __u8 op, __u64 cookie, __u8 live,
				      bool first, struct plan *p)
{
	if (body_keep == BODY_KEEP_ALL || !cookie || !buf)
		return false;
	__u64 pos = 0;
	struct body_state *bs = NULL;
	struct body_dir *d = NULL;
	if (live) {
		bs = bpf_map_lookup_elem(&bodies, &cookie);
		if (bs) {
			d = body_dir_of(bs, op);
			if (d->h2) {
				h2_plan(d, buf, len, 0, p);
				return d->h2;
			}
			if (d->left) {
				__u64 body = len < d->left ? len : d->left;
				__u64 copy = body < d->copy_left ? body : d->copy_left;
				add_hole(p, copy, body);
				d->left -= body;
				d->copy_left -= copy;
				pos = body;
				if (d->left)
					return true;
				if (p->n)
					return false; /* one HTTP/1 hole per call */
			}
		}
	} else if (first) {
		struct hello_state *h = first_data_call(cookie, op);
		long at = h ? h2_start(buf, len) : -1;
		if (at == H2_NO_SKIP && h) {
			/* Nor the other direction, whether it started already or
			 * starts later. */
			h->data_seen |= DATA_NO_H2_SKIP;
			bs = bpf_map_lookup_elem(&bodies, &cookie);
			if (bs) {
				bs->d[0].h2 = 0;
				bs->d[1].h2 = 0;
			}
			return false;
		}
		if (at >= 0 && h && !(h->data_seen & DATA_NO_H2_SKIP)) {
			bs = map_entry(&bodies, &cookie, &body_zero);
			if (!bs)
				return false;
			d = body_dir_of(bs, op);
			__builtin_memset(d, 0, sizeof(*d));
			d->h2 = 1;
			d->slot = H2_STREAMS;
			h2_plan(d, buf, len, at, p);
			return d->h2;
		}
	}
	if (pos >= len || len - pos < BODY_SCAN_MIN)
		return false;
	struct head_facts hf = {};
	if (!weft_head_of(buf + pos, len - pos, &hf))
		return false;
	__u64 head = hf.head_len, clen = hf.clen;
	__u64 rest = len - pos - head;
	__u64 here = clen < rest ? clen : rest;
	if (!here)
		return false; /* no body bytes after the head: maybe a reply to HEAD */
	if (here > body_keep)
		add_hole(p, pos + head + body_keep, pos + head + here);
	if (clen == here)
		return false;
	if (!bs) {
		bs = map_entry(&bodies, &cookie, &body_zero);
		if (!bs)
			return false;
	}
	d = body_dir_of(bs, op);
	d->h2 = 0;
	d->left = clen - here;
	d->copy_left = here >= body_keep ? 0 : body_keep - here;
	return true;
}

/*
 * Copies a call's bytes around the holes of `p` (at most `total`): the
 * bytes before each hole, then from the last hole's end. Returns the bytes
 * submitted; p->skipped the bytes left out before the copy ended (a failed
 * copy stops it: what follows is truncation, not holes). A global
 * function: its loops are verified once, not on every path to it.
 */
__noinline __u64 weft_copy_extents(struct copy_ctx *c, struct plan *p, __u64 total)
{
	if (!c || !p)
		return 0;
	/* bpf_loop wants its context on this function's stack. */
	struct copy_ctx lc = *c;
	__u32 n = p->n;
	if (n > MAX_HOLES)
		n = MAX_HOLES;
	__u64 from = 0, captured = 0, skipped = 0;
	for (int k = 0; k <= MAX_HOLES; k++) {
		if (k > n)
			break;
		__u64 to = k < n ? p->a[k & (MAX_HOLES - 1)] : total;
		if (to > total)
			to = total;
		if (to > from)
			captured += copy_extent(&lc, from, to - from);
		if (lc.flags || k == n)
			break;
		__u64 hb = p->b[k & (MAX_HOLES - 1)];
		if (hb > total)
			hb = total;
		if (to < from)
			to = from;
		if (hb > to)
			skipped += hb - to;
		from = hb > to ? hb : to;
	}
	p->skipped = skipped;
	c->flags = lc.flags;
	return captured;
}

/*
 * Emit one finished call: its payload (capped at payload_cap) as data
 * records, then the call record. Shared by every library's return program
 * (it must run in a sleepable program: bpf_copy_from_user). `st` gives the
 * buffer, the library object, the op and the entry time; `sock` the socket.
 * `live`/`first`: the body-skip state of the call's direction (body_plan);
 * the return value says whether it needs that state at the next call.
 */
static __always_inline bool emit_call(void *ctx, const struct call_state *st, __u64 len,
				      const struct weft_sock *sock, __u32 flags, __u8 *woken,
				      __u8 live, bool first)
{
	__u64 total = len > payload_cap ? payload_cap : len;
	if (total < len) {
		flags |= WEFT_CALL_TRUNCATED;
		stat_add(WEFT_STAT_TRUNCATED, 1);
	}
	struct plan p = {};
	bool keep_state = body_plan(st->buf, len, st->op, sock->cookie, live, first, &p);
	/* A small call without holes: one record (WEFT_REC_CALL_INLINE). A
	 * payload record like the data records: not past data_room. */
	if (!p.n && total && total <= WEFT_INLINE_MAX) {
		__u64 avail = RING_AVAIL();
		/* The library: the entry's attach cookie, kept in st (Go's
		 * return programs carry the same one). */
		__u8 lib = st->lib;
		long sent = -1;
		if (data_room_left_at(avail))
			sent = total <= WEFT_INLINE_SMALL
				       ? inline_call_WEFT_INLINE_SMALL(flags, st->start_ns, len,
								       st->buf, total, st->ssl,
								       st->op, sock, lib, woken, avail)
				       : inline_call_WEFT_INLINE_MAX(flags, st->start_ns, len,
								     st->buf, total, st->ssl,
								     st->op, sock, lib, woken, avail);
		if (sent >= 0) {
			stat_add(WEFT_STAT_CALLS, 1);
			stat_add(WEFT_STAT_BYTES, sent);
			return keep_state;
		}
	}
	struct copy_ctx c = {};
	c.call_id = next_call_id();
	c.src = st->buf;
	c.tid = (__u32)bpf_get_current_pid_tgid();
	/* Only what was submitted counts: never claim bytes not copied. */
	__u64 captured, skipped = 0;
	if (p.n) {
		captured = weft_copy_extents(&c, &p, total);
		skipped = p.skipped;
		if (skipped) {
			flags |= WEFT_CALL_HOLES;
			stat_add(WEFT_STAT_BODY_SKIPPED, skipped);
		}
	} else {
		captured = copy_extent(&c, 0, total);
	}
	flags |= c.flags;
	if (c.flags & WEFT_CALL_COPY_FAULT)
		stat_add(WEFT_STAT_COPY_FAULT, 1);

	if (!call_record_lib(ctx, c.call_id, flags, st->start_ns, len, captured, skipped, st->ssl,
			     st->op, sock, st->lib, woken))
		return keep_state;
	stat_add(WEFT_STAT_CALLS, 1);
	stat_add(WEFT_STAT_BYTES, captured);
	return keep_state;
}

/* ---- return: one program for every hooked function ---- */

SEC("uretprobe.multi.s")
int ssl_ret(struct pt_regs *ctx)
{
	if (floor_mode == FLOOR_COPY)
		return floor_copy_ret(ctx);
	FLOOR();
	struct thread_call *tc = cur_call();
	if (!tc)
		return 0;
	struct call_state *st = &tc->st;
	if (st->depth) {
		st->depth--;
		return 0;
	}
	/* Only this thread touches its state: the fields stay readable. */
	tc->active = 0;

	__u64 id = bpf_get_current_pid_tgid();
	long rc = PT_REGS_RC(ctx);
	__u64 len;
	bool ok = call_len(st, rc, &len);

	/* The socket: from this call's own I/O, else the cache (read at
	 * entry). The cache is written only when this call learnt something. */
	struct ssl_key key = { .ssl = st->ssl, .tgid = id >> 32 };
	__u32 flags = 0;
	struct weft_sock sock = {};
	if (st->has_sock) {
		sock = st->sock;
		__u8 done = tc->hello_new;
		if (tc->cached && tc->csock.sock.cookie == sock.cookie)
			done |= tc->csock.hello_done;
		if (tc->sock_new || !tc->cached || done != tc->csock.hello_done) {
			struct ssl_sock v = { .sock = sock, .hello_done = done };
			if (tc->cached && tc->csock.sock.cookie == sock.cookie)
				v.body_live = tc->csock.body_live;
			bpf_map_update_elem(&ssl_socks, &key, &v, BPF_ANY);
		}
	} else if (st->not_inet) {
		/* family 0: remembered as not a TCP socket */
		struct ssl_sock v = {};
		bpf_map_update_elem(&ssl_socks, &key, &v, BPF_ANY);
	} else if (tc->cached) {
		sock = tc->csock.sock;
		flags |= WEFT_CALL_SOCK_CACHED;
	} else {
		flags |= WEFT_CALL_NO_SOCK;
		if (bpf_map_update_elem(&pending_assoc, &id, &st->ssl, BPF_ANY) == 0)
			__sync_fetch_and_add(&pending_count, 1);
	}
	if (st->kind == KIND_HANDSHAKE) {
		/* The result, for user space's handshake facts (sign-extended:
		 * OpenSSL 1 = done, GnuTLS 0 = done, negative = error/retry). */
		if (sock.family && sock.cookie)
			emit_marker(ctx, WEFT_OP_HANDSHAKE, st->ssl, st->start_ns, (__u64)(__s64)(int)rc,
				    &sock);
		return 0;
	}
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

	/* Body skip: this direction's state, from the cache read at entry. */
	__u8 bit = st->op == WEFT_OP_WRITE ? BODY_LIVE_W : BODY_LIVE_R;
	__u8 lives = 0;
	bool cached = tc->cached && tc->csock.sock.cookie == sock.cookie;
	if (cached)
		lives = tc->csock.body_live;
	/* The first data call of this direction since the cache entry (made
	 * by the handshake) may start an HTTP/2 connection. */
	bool first = cached && !(lives & (bit << 2));
	bool in_body = emit_call(ctx, st, len, &sock, flags, &tc->woken, lives & bit, first);
	__u8 now = (in_body ? lives | bit : lives & ~bit) | (bit << 2);
	if (now != lives) {
		struct ssl_sock *e = bpf_map_lookup_elem(&ssl_socks, &key);
		if (e && e->sock.cookie == sock.cookie)
			e->body_live = now;
	}
	return 0;
}
