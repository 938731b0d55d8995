/* SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0) */
/*
 * conn.bpf.c: TCP connections as events (start, end), owned by a process.
 *
 * Hooks:
 *  - sockops on the cgroup v2 root (user space finds it in /proc/mounts):
 *    ACTIVE_ESTABLISHED / PASSIVE_ESTABLISHED record the connection's tuple,
 *    network-namespace cookie and establishment time in `conns`, and turn on
 *    the STATE callback only (no per-packet or per-RTT callbacks: they would
 *    run on every segment). The STATE callback entering TCP_CLOSE emits the
 *    end with bytes acked/received and the smoothed RTT. sock_ops runs in
 *    whatever context the kernel is in (softirq, another task), so its
 *    current task is never taken as the owner.
 *  - tp_btf/inet_sock_set_state: entering SYN_SENT runs in the connecting
 *    task: it is the owner of an active connection (kept in `conns` until
 *    the establishment). Entering TCP_CLOSE ends the connections seeded at
 *    start (their sock_ops flags cannot be set from the iterator).
 *  - tracepoint syscalls sys_exit_accept/accept4: the caller owns the
 *    returned socket. An active connection's start is emitted at
 *    establishment; a passive one's at accept, when its owner is known (so
 *    every start carries its process; a connection closed before anyone
 *    accepted it gets only an end, flagged WEFT_CONN_NO_START).
 *  - iter/tcp (run at start, after sockops is attached, once in every
 *    network namespace: a TCP iterator walks the namespace of the task
 *    that opens it): connections that predate weft are written to the
 *    iterator's seq file as start records with their socket inode (user
 *    space finds the owning process from /proc/<pid>/fd) and tracked until
 *    they close.
 *  - iter/tcp conn_progress (--flow-update: run by user space every
 *    interval, once in every network namespace): one update record per
 *    connection followed here (started, in `conns`) with its bytes and RTT
 *    so far, read from the socket; nothing per packet.
 *
 * Fallback: without sockops (no cgroup v2, attach refused) nothing here is
 * attached and weft captures TLS without connection events.
 */

/* Internal state per connection (socket cookie). Not part of the ABI. */
struct conn_state {
	__u64 established_ns;
	__u64 netns_cookie;
	__u8 started;  /* a start record was emitted (or seeded) */
	__u8 seeded;   /* ended by the state tracepoint, not sock_ops */
	__u8 active;   /* established (tuple known), not just SYN_SENT */
	__u8 _pad0[5];
	struct weft_owner owner;
	struct weft_sock sock;
};

/* Connections being followed, by socket cookie. LRU: a host with more
 * open connections loses the oldest ones' state (their end is counted as
 * WEFT_STAT_CONN_UNTRACKED). ~13 MiB at this size. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct conn_state);
} conns SEC(".maps");

/* Zeroed value to start an entry from (the stack is too small for
 * several of them). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct conn_state);
} conn_scratch SEC(".maps");

static __always_inline struct conn_state *conn_blank(void)
{
	__u32 zero = 0;
	struct conn_state *st = bpf_map_lookup_elem(&conn_scratch, &zero);
	if (st)
		__builtin_memset(st, 0, sizeof(*st));
	return st;
}

/* The current task as a connection's owner. */
static __always_inline void owner_current(struct weft_owner *o)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);
	__u64 ugid = bpf_get_current_uid_gid();
	o->cgroup_id = bpf_get_current_cgroup_id();
	o->proc_start_ns = BPF_CORE_READ(leader, start_boottime);
	o->pid = bpf_get_current_pid_tgid() >> 32;
	o->ppid = BPF_CORE_READ(task, real_parent, tgid);
	o->uid = (__u32)ugid;
	o->gid = ugid >> 32;
	bpf_core_read(&o->comm, sizeof(o->comm), &leader->comm);
}

/* Tuple of a full socket, read with CO-RE (iterator). */
static __always_inline void conn_sock_of(struct sock *sk, __u64 cookie, struct weft_sock *out)
{
	sock_tuple(sk, BPF_CORE_READ(sk, __sk_common.skc_family), out);
	out->cookie = cookie;
}

/* Application bytes from the kernel's sequence-space counters at close:
 * bytes_acked counts the SYN of an active open and our FIN once acked;
 * bytes_received counts the peer's FIN once received. `oldstate` is the
 * state the socket leaves for TCP_CLOSE. */
static __always_inline void conn_data_bytes(struct sock *sk, int oldstate, bool active,
					    __u64 *sent, __u64 *received)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	__u32 snd_una = BPF_CORE_READ(tp, snd_una);
	__u32 snd_nxt = BPF_CORE_READ(tp, snd_nxt);
	unsigned long flags = BPF_CORE_READ(sk, __sk_common.skc_flags);
	/* Our FIN was sent (FIN_WAIT*, CLOSING, LAST_ACK) and is acked:
	 * FIN_WAIT2 says so, the others when nothing is outstanding. */
	bool fin_out = oldstate == TCP_FIN_WAIT2 ||
		       ((oldstate == TCP_FIN_WAIT1 || oldstate == TCP_CLOSING ||
			 oldstate == TCP_LAST_ACK) &&
			snd_una == snd_nxt);
	/* tcp_fin() sets SOCK_DONE when the peer's FIN is taken in order. */
	bool fin_in = flags & (1UL << SOCK_DONE);
	__u64 s = *sent, r = *received;
	__u64 extra = (active ? 1 : 0) + (fin_out ? 1 : 0);
	*sent = s > extra ? s - extra : 0;
	*received = fin_in && r ? r - 1 : r;
}

/* Emit a start or end record for `st` to the ring buffer. */
static __always_inline void conn_emit(__u32 type, __u32 flags, const struct conn_state *st,
				      __u64 sent, __u64 received, __u32 srtt_us)
{
	struct weft_conn_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		stat_add(WEFT_STAT_CONN_LOST, 1);
		return;
	}
	r->type = type;
	r->flags = flags | (st->seeded ? WEFT_CONN_SEEDED : 0);
	r->ts_ns = bpf_ktime_get_ns();
	r->established_ns = st->established_ns;
	r->netns_cookie = st->netns_cookie;
	r->bytes_sent = sent;
	r->bytes_received = received;
	r->ino = 0;
	r->srtt_us = srtt_us;
	r->h2_last_stream = type == WEFT_REC_CONN_END ? h2_last_stream(st->sock.cookie) : 0;
	r->owner = st->owner;
	r->sock = st->sock;
	/* Only an end record tells what no call record did. */
	take_lost_calls(type == WEFT_REC_CONN_END ? st->sock.cookie : 0, &r->lost);
	bpf_ringbuf_submit(r, ring_wakeup());
}

SEC("sockops")
int conn_sockops(struct bpf_sock_ops *skops)
{
	FLOOR();
	__u32 op = skops->op;
	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB || op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
		__u64 cookie = bpf_get_socket_cookie(skops);
		bool active = op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB;
		struct conn_state *st = bpf_map_lookup_elem(&conns, &cookie);
		if (!st) {
			/* Active without a SYN_SENT owner (another filter's
			 * process, or the owner entry was evicted): a passive one
			 * is always new here. */
			if (active && (filter_pids_on || filter_comms_on))
				return 1;
			st = conn_blank();
			if (!st)
				return 1;
		}
		st->established_ns = bpf_ktime_get_ns();
		st->netns_cookie = bpf_get_netns_cookie(skops);
		st->active = 1;
		struct weft_sock *s = &st->sock;
		__u32 family = skops->family;
		s->cookie = cookie;
		s->family = family;
		s->local_port = skops->local_port;
		s->remote_port = bpf_ntohl(skops->remote_port);
		s->role = active ? WEFT_ROLE_CLIENT : WEFT_ROLE_SERVER;
		if (family == AF_INET) {
			__u32 l = skops->local_ip4, r = skops->remote_ip4;
			__builtin_memcpy(s->local_addr, &l, 4);
			__builtin_memcpy(s->remote_addr, &r, 4);
		} else {
			__u32 a[4];
			a[0] = skops->local_ip6[0];
			a[1] = skops->local_ip6[1];
			a[2] = skops->local_ip6[2];
			a[3] = skops->local_ip6[3];
			__builtin_memcpy(s->local_addr, a, 16);
			a[0] = skops->remote_ip6[0];
			a[1] = skops->remote_ip6[1];
			a[2] = skops->remote_ip6[2];
			a[3] = skops->remote_ip6[3];
			__builtin_memcpy(s->remote_addr, a, 16);
		}
		if (active) {
			st->started = 1;
			conn_emit(WEFT_REC_CONN_START, 0, st, 0, 0, 0);
		}
		bpf_map_update_elem(&conns, &cookie, st, BPF_ANY);
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
							 BPF_SOCK_OPS_STATE_CB_FLAG);
	} else if (op == BPF_SOCK_OPS_STATE_CB && skops->args[1] == TCP_CLOSE) {
		__u64 cookie = bpf_get_socket_cookie(skops);
		struct conn_state *st = bpf_map_lookup_elem(&conns, &cookie);
		if (!st) {
			stat_add(WEFT_STAT_CONN_UNTRACKED, 1);
			return 1;
		}
		/* A passive connection nobody accepted is reported without
		 * an owner, unless a process filter is on (then it is not
		 * one of theirs to report). */
		if (st->started || !(filter_pids_on || filter_comms_on)) {
			__u32 srtt = skops->srtt_us >> 3;
			__u64 sent = skops->bytes_acked, received = skops->bytes_received;
			struct bpf_sock *bsk = skops->sk;
			struct tcp_sock *tp = bsk ? bpf_skc_to_tcp_sock(bsk) : NULL;
			if (tp)
				conn_data_bytes((struct sock *)tp, skops->args[0],
						st->sock.role == WEFT_ROLE_CLIENT, &sent, &received);
			conn_emit(WEFT_REC_CONN_END, st->started ? 0 : WEFT_CONN_NO_START, st,
				  sent, received, srtt);
		}
		bpf_map_delete_elem(&conns, &cookie);
	}
	return 1;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(conn_state_change, struct sock *sk, int oldstate, int newstate)
{
	FLOOR();
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	if (newstate == TCP_SYN_SENT) {
		/* connect() runs this in the connecting task: the owner. */
		__u32 tgid = bpf_get_current_pid_tgid() >> 32;
		if (!selected(tgid))
			return 0;
		__u64 cookie = bpf_get_socket_cookie(sk);
		struct conn_state *st = conn_blank();
		if (!st)
			return 0;
		owner_current(&st->owner);
		bpf_map_update_elem(&conns, &cookie, st, BPF_ANY);
	} else if (newstate == TCP_CLOSE) {
		__u64 cookie = sk->__sk_common.skc_cookie.counter;
		if (!cookie)
			return 0;
		struct conn_state *st = bpf_map_lookup_elem(&conns, &cookie);
		if (!st)
			return 0;
		if (st->seeded) {
			struct tcp_sock *tp = (struct tcp_sock *)sk;
			__u64 sent = BPF_CORE_READ(tp, bytes_acked);
			__u64 received = BPF_CORE_READ(tp, bytes_received);
			__u32 srtt = BPF_CORE_READ(tp, srtt_us) >> 3;
			conn_data_bytes(sk, oldstate, st->sock.role == WEFT_ROLE_CLIENT, &sent,
					&received);
			conn_emit(WEFT_REC_CONN_END, 0, st, sent, received, srtt);
			bpf_map_delete_elem(&conns, &cookie);
		} else if (!st->active) {
			/* Closed from SYN_SENT: the connect failed; sock_ops
			 * never saw it established. */
			bpf_map_delete_elem(&conns, &cookie);
		}
	}
	return 0;
}

/* The caller of accept() owns the returned socket: emit the passive
 * connection's start now that its owner is known. */
static __always_inline int conn_on_accept(long fd)
{
	if (fd < 0)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
	unsigned int max = BPF_CORE_READ(task, files, fdt, max_fds);
	if (fd >= max)
		return 0;
	struct file *f = NULL;
	bpf_core_read(&f, sizeof(f), &fds[fd]);
	if (!f)
		return 0;
	struct socket *sock = BPF_CORE_READ(f, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return 0;
	__u64 cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (!cookie)
		return 0;
	struct conn_state *st = bpf_map_lookup_elem(&conns, &cookie);
	if (!st || st->started)
		return 0;
	/* Not a selected process: its connection is not reported (the entry
	 * stays, unstarted, until the close removes it without a record). */
	if (!selected(tgid))
		return 0;
	owner_current(&st->owner);
	st->sock.fd = fd;
	st->started = 1;
	conn_emit(WEFT_REC_CONN_START, 0, st, 0, 0, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int conn_accept4(struct trace_event_raw_sys_exit *ctx)
{
	FLOOR();
	return conn_on_accept(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int conn_accept(struct trace_event_raw_sys_exit *ctx)
{
	FLOOR();
	return conn_on_accept(ctx->ret);
}

/* Connections that predate weft: one start record each on the seq file,
 * with the socket inode for user space to find the owner; tracked until
 * they close (conn_state_change). Runs after sockops is attached: a
 * connection sock_ops already follows is skipped. */
SEC("iter/tcp")
int conn_seed(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	if (!skc)
		return 0;
	int state = skc->skc_state;
	if (state == TCP_LISTEN) {
		/* Listeners come first: a connection on a listening port was
		 * accepted (server), any other was connected (client). */
		__u16 lport = skc->skc_num;
		__u8 one = 1;
		bpf_map_update_elem(&listen_ports, &lport, &one, BPF_ANY);
		return 0;
	}
	if (state == TCP_TIME_WAIT || state == TCP_NEW_SYN_RECV ||
	    state == TCP_SYN_SENT || state == TCP_SYN_RECV || state == TCP_CLOSE)
		return 0;
	struct sock *sk = (struct sock *)skc;
	__u64 cookie = bpf_get_socket_cookie(skc);
	if (bpf_map_lookup_elem(&conns, &cookie))
		return 0;
	struct conn_state *st = conn_blank();
	if (!st)
		return 0;
	st->netns_cookie = BPF_CORE_READ(sk, __sk_common.skc_net.net, net_cookie);
	st->started = 1;
	st->seeded = 1;
	st->active = 1;
	conn_sock_of(sk, cookie, &st->sock);
	__u16 port = st->sock.local_port;
	st->sock.role = bpf_map_lookup_elem(&listen_ports, &port) ? WEFT_ROLE_SERVER
								     : WEFT_ROLE_CLIENT;
	if (bpf_map_update_elem(&conns, &cookie, st, BPF_NOEXIST))
		return 0;

	struct weft_conn_rec r = {};
	r.type = WEFT_REC_CONN_START;
	r.flags = WEFT_CONN_SEEDED;
	r.ts_ns = bpf_ktime_get_ns();
	r.netns_cookie = st->netns_cookie;
	r.ino = BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino);
	r.sock = st->sock;
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

/* Open connections' counts so far (WEFT_REC_CONN_UPDATE on the seq file):
 * the connections `conns` follows and reported a start for, with bytes
 * acked/received (SYN and any FIN taken out as at the end) and the
 * smoothed RTT now. User space decides which are old enough to report. */
SEC("iter/tcp")
int conn_progress(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	if (!skc)
		return 0;
	int state = skc->skc_state;
	if (state == TCP_LISTEN || state == TCP_TIME_WAIT || state == TCP_NEW_SYN_RECV ||
	    state == TCP_SYN_SENT || state == TCP_SYN_RECV || state == TCP_CLOSE)
		return 0;
	__u64 cookie = bpf_get_socket_cookie(skc);
	struct conn_state *st = bpf_map_lookup_elem(&conns, &cookie);
	if (!st || !st->started)
		return 0;
	struct sock *sk = (struct sock *)skc;
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	__u64 sent = BPF_CORE_READ(tp, bytes_acked);
	__u64 received = BPF_CORE_READ(tp, bytes_received);
	__u32 srtt = BPF_CORE_READ(tp, srtt_us) >> 3;
	conn_data_bytes(sk, state, st->sock.role == WEFT_ROLE_CLIENT, &sent, &received);

	struct weft_conn_rec r = {};
	r.type = WEFT_REC_CONN_UPDATE;
	r.flags = st->seeded ? WEFT_CONN_SEEDED : 0;
	r.ts_ns = bpf_ktime_get_ns();
	r.established_ns = st->established_ns;
	r.netns_cookie = st->netns_cookie;
	r.bytes_sent = sent;
	r.bytes_received = received;
	r.srtt_us = srtt;
	r.owner = st->owner;
	r.sock = st->sock;
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}
