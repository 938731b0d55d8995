/* SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0) */
/*
 * plain.bpf.c: the first bytes of every TCP connection, and the whole data
 * of connections that speak a protocol weft decodes without TLS
 * (docs/adr/0005-plaintext-and-first-bytes.md).
 *
 * Hooks: the same sys_enter/sys_exit tracepoints of the read/write syscall
 * family as tls.bpf.c (write, writev, sendto, sendmsg, read, readv,
 * recvfrom, recvmsg). tls.bpf.c handles threads inside a TLS library call;
 * every other thread comes here (plain_enter / plain_exit).
 *
 * Per connection (`hellos`, keyed by socket cookie, LRU) a verdict:
 *  - UNDECIDED: the first syscall that moves bytes decides, from them:
 *    TLS record header (0x14..0x17, 0x03) -> TLS; an HTTP/1 method, "HTTP/"
 *    or the HTTP/2 preface ("PRI ") -> PLAIN (when the port and the process
 *    are selected); anything else -> OTHER.
 *  - TLS: the first WEFT_HELLO_MAX bytes per direction go out as hello
 *    records (the same records, and the same per-direction offsets, as a
 *    TLS call's handshake bytes: whichever path sees them first reports
 *    them, never both). This gives handshake facts for libraries whose
 *    socket I/O happens outside the hooked calls (node, Chromium, Go).
 *    A TLS library call doing I/O on a connection also sets TLS.
 *  - PLAIN: every syscall's bytes become data + call records exactly like
 *    a TLS call's plaintext (flag WEFT_CALL_PLAIN, lib 0).
 *  - OTHER: each direction's first syscall gives at most WEFT_FIRST_MAX
 *    bytes as one call record flagged WEFT_CALL_FIRST; then that direction
 *    leaves after the one lookup.
 *
 * Cost: a read/write on a non-socket fd leaves after the fd -> file ->
 * inode mode reads; on a TCP socket of a decided connection after one
 * lookup (direction done). The exit program looks its per-thread state
 * up only while some thread is armed (plain_armed).
 *
 * DNS over UDP (docs/adr/0006-dns-from-the-udp-syscalls.md): UDP sockets to
 * or on port 53 are followed by the same programs (dns_enter/dns_exit), and
 * sendmmsg (glibc's A + AAAA queries) and recvmmsg (resolvers that read
 * answers in batches) by tracepoint pairs of their own.
 *
 * Not seen: sendfile/splice data (nginx serving static files with
 * sendfile), recvmmsg/sendmmsg on TCP (nobody batches a stream), MSG_PEEK
 * reads (they are read again), and io_uring I/O (IORING_OP_SEND/RECV/
 * SENDMSG/RECVMSG run in the kernel without a syscall of the thread: no
 * tracepoint to hook; a resolver on io_uring gives no dns events).
 */

#define HS_MMSG 4  /* send/recvmmsg: (fd, mmsghdr array, vlen), DNS only */
#define MMSG_MAX 4 /* messages of one send/recvmmsg followed (glibc sends A + AAAA) */

#define V_UNDECIDED 0
#define V_TLS 1
#define V_PLAIN 2
#define V_OTHER 3
#define V_DNS_TCP 4 /* a TCP connection to or from port 53: DNS, captured whole */

/* 0 off (--no-plaintext), 1 any port, 2 only ports in plain_ports. */
const volatile __u8 plain_mode = 1;

/* --plaintext-ports: local or remote TCP ports (host order) to decode. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u8);
} plain_ports SEC(".maps");

/* A syscall on a followed connection, between its enter and exit. */
struct plain_arm {
	__u64 ptr;
	__u64 cnt;
	__u64 cookie;
	__u64 start_ns;
	__u64 sk;     /* UDP (DNS): the sock, alive for the syscall */
	__u64 addr;   /* UDP (DNS): sendto/recvfrom address argument */
	__u32 fd;
	__u8 kind;    /* HS_BUF / HS_IOV / HS_MSG */
	__u8 is_write;
	__u8 udp;     /* a DNS message over UDP (dns_enter) */
	__u8 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct plain_arm);
} plain_arms SEC(".maps");

/* Armed threads: plain_armed (tls.bpf.c) gates the exit lookup. */

/* The TCP or UDP sock behind fd of the current task, or NULL: the cheap
 * part of resolve_fd, enough for the cookie. */
static __always_inline struct sock *fd_inet_sock(__u64 fd, __u8 *proto)
{
	struct file *f = fd_file(fd);
	if (!f)
		return NULL;
	struct sock *sk = file_sock(f);
	if (!sk)
		return NULL;
	__u16 family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return NULL;
	__u8 p = sk->sk_protocol;
	if (p != IPPROTO_TCP && p != IPPROTO_UDP)
		return NULL;
	*proto = p;
	return sk;
}

static __always_inline struct sock *fd_tcp_sock(__u64 fd)
{
	__u8 proto = 0;
	struct sock *sk = fd_inet_sock(fd, &proto);
	return proto == IPPROTO_TCP ? sk : NULL;
}

static __always_inline bool plain_port_selected(struct sock *sk)
{
	if (plain_mode != 2)
		return true;
	__u16 l = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u16 r = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	return bpf_map_lookup_elem(&plain_ports, &l) || bpf_map_lookup_elem(&plain_ports, &r);
}

/* ---- DNS over UDP (docs/adr/0005-plaintext-and-first-bytes.md) ---- */

#define DNS_PORT 53

/* Unconnected UDP sockets that sent a query to port 53: their replies are
 * DNS too (key: the struct sock address). LRU: a forgotten one only loses
 * the reply of an unconnected socket. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
} dns_socks SEC(".maps");

struct usockaddr {
	__u16 family;
	__u16 port; /* network order */
	__u32 v4;   /* sockaddr_in; sockaddr_in6: flowinfo */
	__u8 v6[16];
};

/* Port (host order) of a user sockaddr_in/in6, 0 when unreadable. */
static __always_inline __u16 sockaddr_port(__u64 p)
{
	struct usockaddr a = {};
	if (!p || bpf_probe_read_user(&a, 4, (const void *)p))
		return 0;
	if (a.family != AF_INET && a.family != AF_INET6)
		return 0;
	return bpf_ntohs(a.port);
}

static __always_inline int dns_enter(struct sock *sk, __u64 fd, bool is_write, __u8 kind,
				     __u64 ptr, __u64 cnt, __u64 addr)
{
	__u16 l = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u16 r = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	__u64 key = (__u64)sk;
	bool dns = l == DNS_PORT || r == DNS_PORT;
	if (!dns && r == 0) {
		if (is_write) {
			__u64 to = addr;
			if (kind == HS_MSG) {
				struct user_msghdr m = {};
				if (!bpf_probe_read_user(&m, sizeof(m), (const void *)ptr))
					to = (__u64)m.msg_name;
			}
			if (sockaddr_port(to) == DNS_PORT) {
				__u8 one = 1;
				bpf_map_update_elem(&dns_socks, &key, &one, BPF_ANY);
				dns = true;
			}
		} else {
			dns = bpf_map_lookup_elem(&dns_socks, &key) != NULL;
		}
	}
	if (!dns)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	if ((__u32)(id >> 32) == self_tgid || !selected(id >> 32))
		return 0;
	struct plain_arm a = {
		.ptr = ptr,
		.cnt = cnt,
		.start_ns = bpf_ktime_get_ns(),
		.sk = key,
		.addr = addr,
		.fd = fd,
		.kind = kind,
		.is_write = is_write,
		.udp = 1,
	};
	if (bpf_map_update_elem(&plain_arms, &id, &a, BPF_ANY)) {
		stat_add(WEFT_STAT_PLAIN_ARM_FULL, 1);
		return 0;
	}
	__sync_fetch_and_add(&plain_armed, 1);
	return 0;
}

/* Called by on_sock_syscall (tls.bpf.c) for a thread outside TLS calls;
 * `id` is its pid_tgid. */
static __always_inline int plain_enter(__u64 id, __u64 fd, bool is_write, __u8 kind, __u64 ptr,
				       __u64 cnt, __u64 flags, __u64 addr)
{
	if (!plain_mode || !ptr)
		return 0;
	/* recv*(MSG_PEEK): the same bytes come again with the next read. */
	if (!is_write && (flags & 2 /* MSG_PEEK */))
		return 0;
	/* With a process filter, other processes leave before the fd walk:
	 * they are the busy ones (--comm curl on a web server). */
	if ((__u32)(id >> 32) == self_tgid || !selected(id >> 32))
		return 0;
	__u8 proto = 0;
	struct sock *sk = fd_inet_sock(fd, &proto);
	if (!sk)
		return 0;
	if (proto == IPPROTO_UDP)
		return dns_enter(sk, fd, is_write, kind, ptr, cnt, addr);
	__u64 cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (!cookie)
		return 0;
	struct hello_state *h = bpf_map_lookup_elem(&hellos, &cookie);
	if (h) {
		__u8 v = h->verdict;
		if (v != V_PLAIN && (is_write ? h->done[0] : h->done[1]))
			return 0;
	}
	if (!h) {
		struct hello_state z = {};
		bpf_map_update_elem(&hellos, &cookie, &z, BPF_NOEXIST);
	}
	struct plain_arm a = {
		.ptr = ptr,
		.cnt = cnt,
		.cookie = cookie,
		.start_ns = bpf_ktime_get_ns(),
		.fd = fd,
		.kind = kind,
		.is_write = is_write,
	};
	if (bpf_map_update_elem(&plain_arms, &id, &a, BPF_ANY)) {
		stat_add(WEFT_STAT_PLAIN_ARM_FULL, 1);
		return 0;
	}
	__sync_fetch_and_add(&plain_armed, 1);
	return 0;
}

/* ---- copies (non-sleepable: the syscall just touched these pages) ---- */

/* The syscall's segments (one buffer, or up to HS_IOV_MAX iovecs), already
 * cut to the bytes to copy. One bpf_loop walks all their chunks: chunk i
 * is found by skipping whole segments, so the loop state converges. */
struct pcopy {
	__u64 base[HS_IOV_MAX];
	__u64 len[HS_IOV_MAX];
	__u64 call_id;
	__u64 fail_off; /* payload offset of the first chunk not submitted */
	__u32 tid;
	__u32 flags;
};

#define PLAIN_CLASS(SZ) DATA_CHUNK_FN(plain_chunk, pcopy, SZ, bpf_probe_read_user)

PLAIN_CLASS(64)
PLAIN_CLASS(512)
PLAIN_CLASS(4096)
PLAIN_CLASS(16384)

static long plain_step(__u64 i, void *arg)
{
	struct pcopy *c = arg;
	__u64 idx = i;
	__u64 pos = 0; /* payload offset of segment k */
	for (int k = 0; k < HS_IOV_MAX; k++) {
		__u64 len = c->len[k];
		__u64 nch = (len + WEFT_CHUNK_MAX - 1) / WEFT_CHUNK_MAX;
		if (idx < nch) {
			__u64 off = idx * WEFT_CHUNK_MAX;
			__u64 left = len - off;
			__u32 n = left > WEFT_CHUNK_MAX ? WEFT_CHUNK_MAX : left;
			__u64 src = c->base[k] + off;
			int stop;
			if (n <= 64)
				stop = plain_chunk_64(c, src, pos + off, n);
			else if (n <= 512)
				stop = plain_chunk_512(c, src, pos + off, n);
			else if (n <= 4096)
				stop = plain_chunk_4096(c, src, pos + off, n);
			else
				stop = plain_chunk_16384(c, src, pos + off, n);
			if (stop)
				c->fail_off = pos + off;
			return stop;
		}
		idx -= nch;
		pos += len;
	}
	return 1;
}

/* Fill base/len with the syscall's segments, cut to `want` bytes in all. */
static __always_inline void plain_segs(const struct plain_arm *a, __u64 want, struct pcopy *c)
{
	if (a->kind == HS_BUF) {
		c->base[0] = a->ptr;
		c->len[0] = want;
		return;
	}
	__u64 iov = a->ptr;
	__u64 cnt = a->cnt;
	if (a->kind == HS_MSG) {
		struct user_msghdr m = {};
		if (bpf_probe_read_user(&m, sizeof(m), (const void *)a->ptr))
			return;
		iov = (__u64)m.msg_iov;
		cnt = m.msg_iovlen;
	}
	__u64 left = want;
	for (int i = 0; i < HS_IOV_MAX; i++) {
		if (i >= cnt || !left)
			break;
		struct uiov v = {};
		if (bpf_probe_read_user(&v, sizeof(v), (const void *)(iov + i * sizeof(v))))
			break;
		__u64 n = v.len < left ? v.len : left;
		c->base[i] = v.base;
		c->len[i] = n;
		left -= n;
	}
}

static __always_inline bool is_http_start(const __u8 *b)
{
	/* HTTP/1 methods (as weft-proto's Http1Decoder::looks_like_request),
	 * "HTTP/" (a response: weft joined a running connection) and the
	 * HTTP/2 preface "PRI ". Four bytes decide; the decoder confirms. */
	__u32 w = b[0] | (b[1] << 8) | (b[2] << 16) | ((__u32)b[3] << 24);
#define W(a, b2, c, d) ((__u32)(a) | ((__u32)(b2) << 8) | ((__u32)(c) << 16) | ((__u32)(d) << 24))
	switch (w) {
	case W('G', 'E', 'T', ' '):
	case W('P', 'O', 'S', 'T'):
	case W('P', 'U', 'T', ' '):
	case W('D', 'E', 'L', 'E'):
	case W('H', 'E', 'A', 'D'):
	case W('O', 'P', 'T', 'I'):
	case W('P', 'A', 'T', 'C'):
	case W('C', 'O', 'N', 'N'):
	case W('T', 'R', 'A', 'C'):
	case W('P', 'R', 'O', 'P'):
	case W('M', 'K', 'C', 'O'):
	case W('C', 'O', 'P', 'Y'):
	case W('M', 'O', 'V', 'E'):
	case W('L', 'O', 'C', 'K'):
	case W('U', 'N', 'L', 'O'):
	case W('R', 'E', 'P', 'O'):
	case W('S', 'E', 'A', 'R'):
	case W('P', 'U', 'R', 'G'):
	case W('P', 'R', 'I', ' '):
	case W('H', 'T', 'T', 'P'):
		return true;
	}
#undef W
	return false;
}

/* Emit the armed syscall's `moved` bytes (at most `cap`) as one call on
 * `sock`. */
static __noinline void plain_emit_sock(void *ctx, const struct plain_arm *a, __u64 moved,
				       __u64 cap, __u32 flags, const struct weft_sock *sock)
{
	struct pcopy c = {};
	__u64 want = moved > cap ? cap : moved;
	plain_segs(a, want, &c);
	__u64 total = 0, chunks = 0;
	for (int k = 0; k < HS_IOV_MAX; k++) {
		total += c.len[k];
		chunks += (c.len[k] + WEFT_CHUNK_MAX - 1) / WEFT_CHUNK_MAX;
	}
	if (total < moved) {
		flags |= WEFT_CALL_TRUNCATED;
		if (!(flags & WEFT_CALL_FIRST))
			stat_add(WEFT_STAT_TRUNCATED, 1);
	}
	__u8 op = a->is_write ? WEFT_OP_WRITE : WEFT_OP_READ;
	c.call_id = next_call_id();
	c.tid = (__u32)bpf_get_current_pid_tgid();
	if (chunks)
		bpf_loop(chunks, plain_step, &c, 0);
	/* Only what was submitted counts: never claim bytes not copied. */
	__u64 captured = c.flags ? c.fail_off : total;
	flags |= c.flags;
	if (c.flags & WEFT_CALL_COPY_FAULT)
		stat_add(WEFT_STAT_COPY_FAULT, 1);
	if (!call_record_lib(ctx, c.call_id, flags, a->start_ns, moved, captured, 0, 0, op, sock, 0,
			     NULL))
		return;
	stat_add(WEFT_STAT_PLAIN_CALLS, 1);
	stat_add(WEFT_STAT_BYTES, captured);
}

static __always_inline void plain_emit(void *ctx, const struct plain_arm *a, __u64 moved,
				       __u64 cap, __u32 flags)
{
	struct weft_sock sock = {};
	if (resolve_fd(a->fd, &sock) != FD_INET || sock.cookie != a->cookie)
		return; /* the fd was closed or reused meanwhile */
	plain_emit_sock(ctx, a, moved, cap, flags, &sock);
}

/* A DNS message over UDP: the socket's facts; the peer of an unconnected
 * socket from the syscall's address (sendto/recvfrom, msghdr's msg_name). */
static __always_inline void dns_exit(void *ctx, const struct plain_arm *a, __u64 moved)
{
	struct sock *sk = (struct sock *)a->sk;
	struct weft_sock s = {};
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	sock_tuple(sk, family, &s);
	s.fd = a->fd;
	s.cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (!s.remote_port) {
		__u64 p = a->addr;
		if (a->kind == HS_MSG) {
			struct user_msghdr m = {};
			if (!bpf_probe_read_user(&m, sizeof(m), (const void *)a->ptr))
				p = (__u64)m.msg_name;
		}
		struct usockaddr ua = {};
		if (p && !bpf_probe_read_user(&ua, sizeof(ua), (const void *)p)) {
			s.remote_port = bpf_ntohs(ua.port);
			if (ua.family == AF_INET && family == AF_INET)
				__builtin_memcpy(s.remote_addr, &ua.v4, 4);
			else if (ua.family == AF_INET6 && family == AF_INET6)
				__builtin_memcpy(s.remote_addr, ua.v6, 16);
		}
	}
	s.role = s.local_port == DNS_PORT ? WEFT_ROLE_SERVER : WEFT_ROLE_CLIENT;
	plain_emit_sock(ctx, a, moved, WEFT_DNS_MAX, WEFT_CALL_PLAIN | WEFT_CALL_DNS, &s);
}

/* One message of a send/recvmmsg (bpf_loop callback). */
struct mmsg_ctx {
	void *ctx;
	struct plain_arm a;
	long ret;
};

static long mmsg_step(__u64 i, void *arg)
{
	struct mmsg_ctx *m = arg;
	if (i >= (__u64)m->ret || i >= m->a.cnt)
		return 1;
	__u64 hdr = m->a.ptr + i * sizeof(struct mmsghdr);
	__u32 len = 0;
	if (bpf_probe_read_user(&len, sizeof(len),
				(const void *)(hdr + __builtin_offsetof(struct mmsghdr, msg_len))))
		return 1;
	struct plain_arm b = m->a;
	b.kind = HS_MSG;
	b.ptr = hdr;
	if (len)
		dns_exit(m->ctx, &b, len);
	return 0;
}

/* TLS verdict: the bytes are the next handshake bytes of this direction. */
static __always_inline void plain_hello(const struct plain_arm *a, struct hello_state *h, __u32 d,
					__u64 moved)
{
	struct pcopy c = {};
	plain_segs(a, moved, &c);
	for (int i = 0; i < HS_IOV_MAX; i++) {
		__u64 n = c.len[i];
		if (!n)
			break;
		if (hello_copy(a->cookie, a->is_write ? WEFT_OP_WRITE : WEFT_OP_READ, 0, h, d,
			       c.base[i], n) != n)
			break;
	}
}

/* Called by on_sock_syscall_exit (tls.bpf.c) for threads outside TLS calls. */
static __always_inline int plain_exit(void *ctx, long ret)
{
	if (!plain_armed)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	struct plain_arm *ap = bpf_map_lookup_elem(&plain_arms, &id);
	if (!ap)
		return 0;
	struct plain_arm a = *ap;
	bpf_map_delete_elem(&plain_arms, &id);
	__sync_fetch_and_add(&plain_armed, -1);
	if (ret <= 0)
		return 0;
	if (a.udp && a.kind == HS_MMSG) {
		/* send/recvmmsg: ret messages were moved; each mmsghdr says its
		 * length (recvmmsg: the kernel wrote it before returning). A
		 * bpf_loop, not an unrolled loop: the verifier checks dns_exit
		 * once instead of MMSG_MAX times (start-up time). */
		struct mmsg_ctx m = { .ctx = ctx, .a = a, .ret = ret };
		bpf_loop(MMSG_MAX, mmsg_step, &m, 0);
		return 0;
	}
	if (a.udp) {
		dns_exit(ctx, &a, ret);
		return 0;
	}
	struct hello_state *h = bpf_map_lookup_elem(&hellos, &a.cookie);
	if (!h)
		return 0;
	__u32 d = a.is_write ? 0 : 1;
	if (h->verdict == V_UNDECIDED) {
		struct pcopy first = {};
		__u8 b[4] = {};
		struct sock *tsk = fd_tcp_sock(a.fd);
		plain_segs(&a, 4, &first);
		if (tsk && (BPF_CORE_READ(tsk, __sk_common.skc_num) == DNS_PORT ||
			    bpf_ntohs(BPF_CORE_READ(tsk, __sk_common.skc_dport)) == DNS_PORT)) {
			h->verdict = V_DNS_TCP;
		} else if (first.len[0] < 4 || bpf_probe_read_user(b, 4, (const void *)first.base[0])) {
			h->verdict = V_OTHER;
		} else if (b[0] >= 0x14 && b[0] <= 0x17 && b[1] == 0x03) {
			h->verdict = V_TLS;
		} else if (is_http_start(b)) {
			struct sock *sk = fd_tcp_sock(a.fd);
			h->verdict = sk && plain_port_selected(sk) ? V_PLAIN : V_OTHER;
		} else {
			h->verdict = V_OTHER;
		}
	}
	__u8 v = h->verdict;
	if (v == V_TLS) {
		/* With sock_io_on the socket tracepoint, in the middle of this
		 * syscall, has copied them (plain_sock_io). */
		if (!sock_io_on)
			plain_hello(&a, h, d, ret);
		return 0;
	}
	__u64 cap = payload_cap;
	__u32 flags = WEFT_CALL_PLAIN;
	if (v == V_DNS_TCP) {
		/* Every byte: answers may exceed the first bytes' bound and are
		 * read in two calls (length, then message). */
		flags |= WEFT_CALL_DNS | WEFT_CALL_DNS_TCP;
		cap = WEFT_DNS_MAX;
	} else if (v != V_PLAIN) {
		/* OTHER: this direction's first bytes, once. */
		if (d ? h->done[1] : h->done[0])
			return 0;
		if (d)
			h->done[1] = 1;
		else
			h->done[0] = 1;
		cap = WEFT_FIRST_MAX;
		flags |= WEFT_CALL_FIRST;
	}
	plain_emit(ctx, &a, ret, cap, flags);
	return 0;
}

/*
 * The socket tracepoints (tls.bpf.c tls_sock_io, with a process filter) for
 * a thread outside TLS calls: the TLS first bytes of a selected process'
 * connection as hello records, as plain_exit does, so that a short-lived
 * process' handshake is seen before the syscall hooks are attached for it
 * (they come after its uprobes). Every other verdict is plain_exit's: a
 * connection whose first bytes are not TLS is left undecided here.
 */
static __always_inline int plain_sock_io(struct sock *sk, bool is_write, int ret, int flags,
					 __u8 kind, __u64 fd, __u64 ptr, __u64 cnt)
{
	if (!plain_mode || kind == HS_NONE || !ptr || ret <= 0 || (flags & MSG_PEEK))
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	if ((__u32)(id >> 32) == self_tgid || !selected(id >> 32))
		return 0;
	__u16 family = sk->__sk_common.skc_family;
	if ((family != AF_INET && family != AF_INET6) || sk->sk_protocol != IPPROTO_TCP)
		return 0;
	/* DNS over TCP: plain_exit's. */
	if (sk->__sk_common.skc_num == DNS_PORT || bpf_ntohs(sk->__sk_common.skc_dport) == DNS_PORT)
		return 0;
	__u64 cookie = sk->__sk_common.skc_cookie.counter;
	if (!cookie)
		return 0;
	__u32 d = is_write ? 0 : 1;
	struct hello_state *h = bpf_map_lookup_elem(&hellos, &cookie);
	if (h && (h->verdict == V_TLS ? (d ? h->done[1] : h->done[0]) : h->verdict != V_UNDECIDED))
		return 0;
	struct plain_arm a = {
		.ptr = ptr,
		.cnt = cnt,
		.cookie = cookie,
		.fd = fd,
		.kind = kind,
		.is_write = is_write,
	};
	if (!h || h->verdict == V_UNDECIDED) {
		struct pcopy first = {};
		__u8 b[4] = {};
		plain_segs(&a, 4, &first);
		if (first.len[0] < 4 || bpf_probe_read_user(b, 4, (const void *)first.base[0]) ||
		    !(b[0] >= 0x14 && b[0] <= 0x17 && b[1] == 0x03))
			return 0;
		if (!h) {
			struct hello_state z = { .verdict = V_TLS };
			h = map_entry(&hellos, &cookie, &z);
			if (!h)
				return 0;
		}
		if (h->verdict == V_UNDECIDED)
			h->verdict = V_TLS;
		if (h->verdict != V_TLS)
			return 0;
	}
	plain_hello(&a, h, d, ret);
	return 0;
}

/*
 * sendmmsg(fd, mmsghdr *vec, vlen, flags): glibc's resolver sends its A and
 * AAAA queries in one call. Only DNS over UDP is followed here (TCP
 * applications do not batch datagrams); at most MMSG_MAX messages.
 */
SEC("tracepoint/syscalls/sys_enter_sendmmsg")
int sys_enter_sendmmsg(struct trace_event_raw_sys_enter *ctx)
{
	FLOOR();
	if (!plain_mode)
		return 0;
	__u64 vec = ctx->args[1];
	if (!vec || !ctx->args[2])
		return 0;
	__u8 proto = 0;
	struct sock *sk = fd_inet_sock(ctx->args[0], &proto);
	if (!sk || proto != IPPROTO_UDP)
		return 0;
	/* The first message's msghdr stands for the batch (msg_name). */
	dns_enter(sk, ctx->args[0], true, HS_MSG, vec, ctx->args[2], 0);
	__u64 id = bpf_get_current_pid_tgid();
	struct plain_arm *ap = bpf_map_lookup_elem(&plain_arms, &id);
	if (ap && ap->udp)
		ap->kind = HS_MMSG;
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_sendmmsg")
int sys_exit_sendmmsg(struct trace_event_raw_sys_exit *ctx)
{
	FLOOR();
	bpf_tail_call(ctx, &plain_exit_prog, 0);
	return 0;
}

/*
 * recvmmsg(fd, mmsghdr *vec, vlen, flags, timeout): answers read in a
 * batch (resolvers such as unbound or c-ares users, DNS load tools). DNS
 * over UDP only, at most MMSG_MAX messages; each message's peer comes
 * from its own msghdr's msg_name (dns_exit).
 */
SEC("tracepoint/syscalls/sys_enter_recvmmsg")
int sys_enter_recvmmsg(struct trace_event_raw_sys_enter *ctx)
{
	FLOOR();
	if (!plain_mode)
		return 0;
	__u64 vec = ctx->args[1];
	if (!vec || !ctx->args[2] || (ctx->args[3] & 2 /* MSG_PEEK */))
		return 0;
	__u8 proto = 0;
	struct sock *sk = fd_inet_sock(ctx->args[0], &proto);
	if (!sk || proto != IPPROTO_UDP)
		return 0;
	dns_enter(sk, ctx->args[0], false, HS_MSG, vec, ctx->args[2], 0);
	__u64 id = bpf_get_current_pid_tgid();
	struct plain_arm *ap = bpf_map_lookup_elem(&plain_arms, &id);
	if (ap && ap->udp)
		ap->kind = HS_MMSG;
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_recvmmsg")
int sys_exit_recvmmsg(struct trace_event_raw_sys_exit *ctx)
{
	FLOOR();
	bpf_tail_call(ctx, &plain_exit_prog, 0);
	return 0;
}

/*
 * The exit side of every socket syscall of a thread outside TLS calls,
 * tail-called from the sys_exit_* programs (tls.bpf.c): never attached
 * itself (no tracepoint in its section name).
 */
SEC("tracepoint")
int sys_exit_plain(struct trace_event_raw_sys_exit *ctx)
{
	return plain_exit(ctx, ctx->ret);
}
