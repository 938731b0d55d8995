/* SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0) */
/*
 * sock.bpf.c: which side opened each TCP connection, and socket cookies.
 *
 * Hooks:
 *  - tp_btf/inet_sock_set_state: a socket entering SYN_SENT was connected by
 *    its owner (client); one entering SYN_RECV was accepted (server). Calling
 *    bpf_get_socket_cookie() here also makes the kernel assign the cookie, so
 *    the syscall side (tls.bpf.c) can read sk->skc_cookie directly.
 *  - iter/tcp (run once at start): connections that existed before weft get
 *    their cookie assigned and their role guessed from the listening ports
 *    (the iterator visits listeners first).
 *
 * Fallback: without tp_btf (older kernels) roles stay unknown and user space
 * falls back to a port heuristic; without the iterator, pre-existing
 * connections may report cookie 0 until something asks for their cookie.
 */

#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_TIME_WAIT 6
#define TCP_CLOSE 7
#define TCP_LISTEN 10
#define TCP_NEW_SYN_RECV 12

/* Listening ports seen by the start-up iterator (local port, host order). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u16);
	__type(value, __u8);
} listen_ports SEC(".maps");

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(sock_state, struct sock *sk, int oldstate, int newstate)
{
	FLOOR();
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	if (newstate == TCP_SYN_SENT || newstate == TCP_SYN_RECV) {
		__u64 cookie = bpf_get_socket_cookie(sk);
		__u8 role = newstate == TCP_SYN_SENT ? WEFT_ROLE_CLIENT : WEFT_ROLE_SERVER;
		bpf_map_update_elem(&sock_role, &cookie, &role, BPF_ANY);
	} else if (newstate == TCP_CLOSE) {
		__u64 cookie = sk->__sk_common.skc_cookie.counter;
		if (cookie)
			bpf_map_delete_elem(&sock_role, &cookie);
	}
	return 0;
}

SEC("iter/tcp")
int seed_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	if (!skc)
		return 0;
	int state = skc->skc_state;
	__u16 port = skc->skc_num;
	if (state == TCP_LISTEN) {
		__u8 one = 1;
		bpf_map_update_elem(&listen_ports, &port, &one, BPF_ANY);
		return 0;
	}
	if (state == TCP_TIME_WAIT || state == TCP_NEW_SYN_RECV)
		return 0;
	__u64 cookie = bpf_get_socket_cookie(skc);
	__u8 role = bpf_map_lookup_elem(&listen_ports, &port) ? WEFT_ROLE_SERVER : WEFT_ROLE_CLIENT;
	bpf_map_update_elem(&sock_role, &cookie, &role, BPF_NOEXIST);
	return 0;
}
