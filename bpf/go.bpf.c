/* SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0) */
/*
 * go.bpf.c: plaintext of Go's crypto/tls, tied to the socket behind it.
 *
 * Hooks (x86-64, Go >= 1.17 register ABI; found and verified by
 * crates/weft-core/src/discovery/go.rs):
 *  - uprobe on the entry of crypto/tls.(*Conn).Write and (*Conn).Read
 *    (`func (c *Conn) Write(b []byte) (int, error)`): RAX = c, RBX = b.ptr,
 *    RCX = b.len; R14 = the current goroutine g.
 *  - sleepable uprobe on every RET instruction of those functions:
 *    RAX = n, RBX/RCX = the error interface. Never a uretprobe: it replaces
 *    the return address on the goroutine's stack, which Go moves when the
 *    stack grows (and a wrong return address crashes the program).
 *
 * uprobe.multi links (Linux 6.6+): a Go program has ~15 probe points, and
 * every classic uprobe costs an RCU grace period when weft detaches it (this
 * VM, with nine Go tools installed, took 20 s to exit with classic uprobes,
 * 1 s with multi links); a multi link is attached and detached at once. The programs are not loaded by default
 * ("?"): crates/weft-bpf/src/go.rs enables them where the kernel has
 * uprobe.multi, and Go capture is off (with a warning) elsewhere.
 *
 * A goroutine can move to another thread between entry and RET, so the
 * in-flight call is keyed by (tgid, g), not by thread.
 *
 * The socket comes from the Conn itself, no syscall correlation:
 *   tls.Conn.conn (net.Conn interface: itab at +0, data at +8)
 *   -> *net.TCPConn -> conn.fd (*netFD, +0) -> netFD.pfd (poll.FD, +0)
 *   -> pfd.Sysfd (+16, after fdmu, a 16-byte fdMutex)
 * then resolve_fd() as for every other library. The interface's dynamic type
 * is checked first through the itab's copy of the type hash: only
 * *net.TCPConn (and *net.UnixConn, same layout, dropped as not INET) are
 * followed; any other net.Conn (a wrapper, a pipe) is emitted without a
 * socket (WEFT_CALL_NO_SOCK) rather than guessed.
 *
 * Offsets verified for Go 1.23.5 (reflect/unsafe.Offsetof, a program in
 * crates/weft-itest/tests/go/offsets) and Go 1.19.8 (nats-server: the type
 * hash in its type descriptor and type switches). The layouts have not
 * changed since Go 1.9 (fdMutex) and 1.0 (tls.Conn.conn first). g.stack.hi
 * at +8: runtime.g starts with stack{lo, hi} and stackguard0 at +0x10, which
 * discovery checks in every probed function's prologue (cmp rsp, [r14+0x10]).
 *
 * Which RET closes which call: at the RET, RSP is where it was at the entry
 * (pointing at the return address), and its distance from the top of the
 * goroutine's stack, g.stack.hi - RSP, survives stack moves (the runtime
 * copies frames to the same distance from the new top). The call is owned
 * by the outermost entry: an entry deeper on the same goroutine is nested
 * (a tls.Conn over another tls.Conn, e.g. TLS through an HTTPS proxy) and
 * counted (WEFT_STAT_NESTED); an entry at the same depth or above replaces a
 * leftover whose RET never ran (a panic unwinding through crypto/tls); a
 * RET at another depth than the owner's is a nested call's and is ignored.
 */

#define GO_TLSCONN_CONN 0   /* tls.Conn.conn: net.Conn */
#define GO_ITAB_HASH 16     /* abi.ITab: Inter, Type, Hash uint32 */
#define GO_TCPCONN_FD 0     /* net.TCPConn{conn{fd *netFD}} */
#define GO_NETFD_SYSFD 16   /* netFD{pfd poll.FD{fdmu fdMutex (16), Sysfd int}} */
#define GO_G_STACK_HI 8     /* runtime.g{stack{lo, hi}, stackguard0 (0x10)...} */

/*
 * Type hashes of the net.Conn implementations followed: the compiler's hash
 * of the type's link string, NOT(SHA-256("*net.TCPConn")) since Go 1.19
 * (measured: 0xbc020cb9 in Go 1.19.8 and 1.23.5); MD5 in Go 1.18 (from the
 * compiler's source, not measured). A Go release that changes the hash gets
 * its events without a socket (counted), never a wrong one.
 */
#define GO_HASH_TCPCONN 0xbc020cb9u
#define GO_HASH_UNIXCONN 0x35fd9d63u
#define GO_HASH_TCPCONN_GO118 0xb954d952u

struct go_key {
	__u64 g;
	__u32 tgid;
	__u32 _pad;
};

struct go_call {
	struct call_state st;
	__u64 frame; /* g.stack.hi - RSP at the entry */
};

/* (tgid, goroutine) -> the Write/Read call it is inside. LRU: a goroutine
 * that never reaches a RET (a panic unwinding through crypto/tls) leaves an
 * entry that ages out, or is replaced by its next call. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct go_key);
	__type(value, struct go_call);
} go_calls SEC(".maps");

static __always_inline int go_enter_op(struct pt_regs *ctx, __u8 op)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	if (!selected(tgid))
		return 0;
	struct go_key key = { .g = ctx->r14, .tgid = tgid };
	__u64 hi = 0;
	if (bpf_probe_read_user(&hi, sizeof(hi), (const void *)(key.g + GO_G_STACK_HI)) ||
	    hi < ctx->sp) {
		/* Not a goroutine as weft knows it: the call cannot be tracked. */
		stat_add(WEFT_STAT_STATE_FULL, 1);
		return 0;
	}
	__u64 frame = hi - ctx->sp;
	struct go_call *cur = bpf_map_lookup_elem(&go_calls, &key);
	if (cur && frame > cur->frame) {
		stat_add(WEFT_STAT_NESTED, 1);
		return 0;
	}
	struct go_call c = {};
	c.st.ssl = ctx->ax;
	c.st.buf = ctx->bx;
	c.st.start_ns = bpf_ktime_get_ns();
	c.st.op = op;
	c.st.lib = WEFT_LIB_GO;
	c.frame = frame;
	if (bpf_map_update_elem(&go_calls, &key, &c, BPF_ANY))
		stat_add(WEFT_STAT_STATE_FULL, 1);
	return 0;
}

/* Entries of (*Conn).Write and (*Conn).Read: the attach cookie is the op. */
SEC("?uprobe.multi")
int go_enter(struct pt_regs *ctx)
{
	FLOOR();
	__u64 op = bpf_get_attach_cookie(ctx);
	if (op != WEFT_OP_WRITE && op != WEFT_OP_READ)
		return 0;
	return go_enter_op(ctx, op);
}

/* The socket of a *tls.Conn: FD_INET, FD_OTHER (not TCP: dropped) or
 * FD_NONE (unknown: emitted without a socket). Sleepable context. */
static __always_inline int go_conn_sock(__u64 conn, struct weft_sock *out)
{
	__u64 iface[2] = {};
	if (bpf_copy_from_user(iface, sizeof(iface), (const void *)(conn + GO_TLSCONN_CONN)))
		return FD_NONE;
	if (!iface[0] || !iface[1])
		return FD_NONE;
	__u32 hash = 0;
	if (bpf_copy_from_user(&hash, sizeof(hash), (const void *)(iface[0] + GO_ITAB_HASH)))
		return FD_NONE;
	if (hash != GO_HASH_TCPCONN && hash != GO_HASH_UNIXCONN && hash != GO_HASH_TCPCONN_GO118)
		return FD_NONE;
	__u64 netfd = 0;
	if (bpf_copy_from_user(&netfd, sizeof(netfd), (const void *)(iface[1] + GO_TCPCONN_FD)) ||
	    !netfd)
		return FD_NONE;
	__s64 sysfd = -1;
	if (bpf_copy_from_user(&sysfd, sizeof(sysfd), (const void *)(netfd + GO_NETFD_SYSFD)))
		return FD_NONE;
	if (sysfd < 0 || sysfd > 0x7fffffff)
		return FD_NONE;
	return resolve_fd((__u64)sysfd, out);
}

static __always_inline int go_return(struct pt_regs *ctx, __u8 op)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct go_key key = { .g = ctx->r14, .tgid = id >> 32 };
	struct go_call *cur = bpf_map_lookup_elem(&go_calls, &key);
	if (!cur)
		return 0;
	__u64 hi = 0;
	if (bpf_copy_from_user(&hi, sizeof(hi), (const void *)(key.g + GO_G_STACK_HI)) ||
	    hi < ctx->sp || hi - ctx->sp != cur->frame)
		return 0; /* a nested call's RET */
	struct call_state st = cur->st;
	bpf_map_delete_elem(&go_calls, &key);
	if (st.op != op)
		return 0;

	long n = (long)ctx->ax;
	if (n <= 0) {
		stat_add(WEFT_STAT_FAILED_CALLS, 1);
		return 0;
	}
	struct weft_sock sock = {};
	__u32 flags = 0;
	int kind = go_conn_sock(st.ssl, &sock);
	if (kind == FD_OTHER) {
		stat_add(WEFT_STAT_NOT_INET, 1);
		return 0;
	}
	if (kind != FD_INET) {
		__builtin_memset(&sock, 0, sizeof(sock));
		flags |= WEFT_CALL_NO_SOCK;
		stat_add(WEFT_STAT_NO_SOCK, 1);
	}
	emit_call(ctx, &st, (__u64)n, &sock, flags, NULL, 2, false);
	return 0;
}

/* RETs of (*Conn).Write and (*Conn).Read: the attach cookie is the op of
 * the function the RET is in (the library is in the entry's state). One
 * program for both: the verifier walks emit_call() once, not twice (it is
 * most of weft's start-up). */
SEC("?uprobe.multi.s")
int go_ret(struct pt_regs *ctx)
{
	FLOOR();
	__u64 op = bpf_get_attach_cookie(ctx);
	if (op != WEFT_OP_WRITE && op != WEFT_OP_READ)
		return 0;
	return go_return(ctx, op);
}
