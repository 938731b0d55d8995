/* SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0) */
/*
 * tc.bpf.c: the packet path. Per-flow packet and byte counters, TCP flags
 * and VLAN ids, kept in the kernel: no per-packet record reaches user space.
 *
 * Hooks: TC ingress and egress of every selected interface in every network
 * namespace (tcx links; clsact filters where the kernel has no tcx), and,
 * opt-in (`--xdp`), XDP on receive instead of TC ingress. Each packet is
 * parsed up to its L4 ports with bounds-checked loads (bpf_skb_load_bytes /
 * bpf_xdp_load_bytes: non-linear packets too) and added to its flow's entry
 * in the LRU hash `pkt_flows` (one lookup, atomic adds). Every program
 * returns "continue" (TCX_NEXT / XDP_PASS): weft never drops or alters a
 * packet.
 *
 * Loopback: user space attaches only the egress program (every packet on lo
 * passes egress and then ingress of the same device; counting both would
 * count it twice).
 *
 * TLS hellos on the wire: the first payload each way of a TCP flow, when it
 * starts a TLS handshake record, is copied to the ring (wire hello record,
 * at most two segments and WEFT_HELLO_MAX bytes per direction); the flow
 * entry's `hello` state makes that one byte compare per packet afterwards.
 *
 * Socket cookie: at egress from the packet's own full socket (when its
 * ports are the packet's); at ingress from a TCP socket lookup, tried on a
 * few packets of a flow only, never from a SYN (that finds the listener).
 */

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define IPPROTO_UDP 17
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_DEST 60
#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10
/* TCP states as the kernel numbers them. */
#define WEFT_TCP_TIME_WAIT 6
#define WEFT_TCP_LISTEN 10
#define WEFT_TCP_NEW_SYN_RECV 12
/* Ingress socket lookups tried per flow at most. */
#define PKT_LOOKUPS_MAX 4

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* Flows being counted. Size set by user space (--flow-table-size); when
 * full, the least recently updated flow is evicted (user space counts the
 * flows it never saw end). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct weft_pkt_key);
	__type(value, struct weft_pkt_flow);
} pkt_flows SEC(".maps");

/* Where a parsed packet goes in its flow. */
struct pkt_info {
	__u32 l3_bytes;
	__u32 seen;        /* tcp flags shifted to this direction's byte | hook bit */
	__u8 tcp_flags;
	__u8 dir;          /* 0: packet from a to b, 1: from b to a */
	__u8 ipv6;
	__u8 has_ports;
	__u16 vlan_inner;
	__be16 sport;      /* network order, for the socket lookup */
	__be16 dport;
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 payload_off;  /* TCP: where the payload starts in the packet */
	__u32 payload_len;  /* TCP: payload bytes (IP length, not the frame's) */
	__u32 seq;          /* TCP: sequence number, host order */
};

/* Per-CPU scratch space: the BPF stack (512 bytes) cannot hold a key, the
 * parse state and a new entry at once. Programs of one CPU never nest for
 * the same packet path hook. */
struct pkt_scratch {
	struct weft_pkt_key key;
	struct pkt_info info;
	struct weft_pkt_flow fresh;
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pkt_scratch);
} pkt_scratch SEC(".maps");

static __always_inline struct pkt_scratch *scratch(void)
{
	__u32 zero = 0;
	struct pkt_scratch *s = bpf_map_lookup_elem(&pkt_scratch, &zero);
	if (s) {
		__builtin_memset(&s->key, 0, sizeof(s->key));
		__builtin_memset(&s->info, 0, sizeof(s->info));
	}
	return s;
}

static __always_inline long pkt_load(void *ctx, bool xdp, __u32 off, void *buf, __u32 len)
{
	if (xdp)
		return bpf_xdp_load_bytes(ctx, off, buf, len);
	return bpf_skb_load_bytes(ctx, off, buf, len);
}

static __always_inline void map_v4(__u8 *dst, __be32 a)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &a, 4);
}

/* -1, 0, 1 as (a, pa) sorts before, equal to, after (b, pb). */
static __always_inline int ep_cmp(const __u8 *a, __u16 pa, const __u8 *b, __u16 pb)
{
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	}
	if (pa != pb)
		return pa < pb ? -1 : 1;
	return 0;
}

/* Parse one packet from its link-layer header: the flow key and what to
 * add. Returns 0, or -1 (not IP: not counted), -2 (headers unreadable). */
static __always_inline int pkt_parse(void *ctx, bool xdp, __u32 pkt_len, __u16 accel_vlan,
				     struct weft_pkt_key *k, struct pkt_info *pi)
{
	struct {
		__u8 dst[6];
		__u8 src[6];
		__be16 proto;
	} eth;
	if (pkt_load(ctx, xdp, 0, &eth, sizeof(eth)))
		return -2;
	__u32 off = ETH_HLEN;
	__u16 proto = bpf_ntohs(eth.proto);
	__u16 vlan = accel_vlan, inner = 0;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		struct {
			__be16 tci;
			__be16 proto;
		} tag;
		if (pkt_load(ctx, xdp, off, &tag, sizeof(tag)))
			return -2;
		__u16 id = bpf_ntohs(tag.tci) & 0x0fff;
		if (!vlan)
			vlan = id;
		else if (!inner)
			inner = id;
		proto = bpf_ntohs(tag.proto);
		off += 4;
	}
	k->vlan = vlan;
	pi->vlan_inner = inner;

	__u32 l3 = off, l4 = 0, l3_end = pkt_len;
	__u8 l4proto = 0;
	bool first_fragment = true;
	if (proto == ETH_P_IP) {
		struct iphdr ip;
		if (pkt_load(ctx, xdp, off, &ip, sizeof(ip)))
			return -2;
		if (ip.ihl < 5)
			return -2;
		map_v4(pi->saddr, ip.saddr);
		map_v4(pi->daddr, ip.daddr);
		l4proto = ip.protocol;
		l4 = off + ip.ihl * 4;
		/* 0 with BIG TCP (GSO packets over 64 KiB): the packet's length. */
		__u32 tot = bpf_ntohs(ip.tot_len);
		if (tot && l3 + tot < pkt_len)
			l3_end = l3 + tot;
		if (ip.frag_off & bpf_htons(0x1fff))
			first_fragment = false;
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr ip6;
		if (pkt_load(ctx, xdp, off, &ip6, sizeof(ip6)))
			return -2;
		__builtin_memcpy(pi->saddr, &ip6.saddr, 16);
		__builtin_memcpy(pi->daddr, &ip6.daddr, 16);
		pi->ipv6 = 1;
		l4proto = ip6.nexthdr;
		l4 = off + sizeof(ip6);
		__u32 plen = bpf_ntohs(ip6.payload_len);
		if (plen && l4 + plen < pkt_len)
			l3_end = l4 + plen;
		/* A few extension headers before the transport header. */
#pragma unroll
		for (int i = 0; i < 4; i++) {
			if (l4proto != NEXTHDR_HOP && l4proto != NEXTHDR_ROUTING &&
			    l4proto != NEXTHDR_DEST && l4proto != NEXTHDR_FRAGMENT)
				break;
			struct {
				__u8 next;
				__u8 len;
				__be16 frag_off;
			} ext;
			if (pkt_load(ctx, xdp, l4, &ext, sizeof(ext)))
				return -2;
			if (l4proto == NEXTHDR_FRAGMENT) {
				if (ext.frag_off & bpf_htons(0xfff8))
					first_fragment = false;
				l4 += 8;
			} else {
				l4 += (ext.len + 1) * 8;
			}
			l4proto = ext.next;
		}
	} else {
		return -1;
	}
	k->proto = l4proto;
	pi->l3_bytes = pkt_len > l3 ? pkt_len - l3 : 0;

	__u16 sport = 0, dport = 0;
	if (first_fragment && l4proto == IPPROTO_TCP) {
		struct {
			__be16 sport;
			__be16 dport;
			__u32 seq;
			__u32 ack;
			__u8 off;
			__u8 flags;
		} th;
		if (pkt_load(ctx, xdp, l4, &th, sizeof(th)))
			return -2;
		pi->sport = th.sport;
		pi->dport = th.dport;
		sport = bpf_ntohs(th.sport);
		dport = bpf_ntohs(th.dport);
		pi->tcp_flags = th.flags;
		pi->has_ports = 1;
		pi->seq = bpf_ntohl(th.seq);
		pi->payload_off = l4 + (th.off >> 4) * 4;
		pi->payload_len = l3_end > pi->payload_off ? l3_end - pi->payload_off : 0;
	} else if (first_fragment && l4proto == IPPROTO_UDP) {
		struct {
			__be16 sport;
			__be16 dport;
		} uh;
		if (pkt_load(ctx, xdp, l4, &uh, sizeof(uh)))
			return -2;
		sport = bpf_ntohs(uh.sport);
		dport = bpf_ntohs(uh.dport);
		pi->has_ports = 1;
	}

	if (ep_cmp(pi->saddr, sport, pi->daddr, dport) <= 0) {
		__builtin_memcpy(k->addr_a, pi->saddr, 16);
		__builtin_memcpy(k->addr_b, pi->daddr, 16);
		k->port_a = sport;
		k->port_b = dport;
		pi->dir = 0;
	} else {
		__builtin_memcpy(k->addr_a, pi->daddr, 16);
		__builtin_memcpy(k->addr_b, pi->saddr, 16);
		k->port_a = dport;
		k->port_b = sport;
		pi->dir = 1;
	}
	return 0;
}

/* Add the packet to its flow; returns the flow's entry (NULL: not stored). */
static __always_inline struct weft_pkt_flow *pkt_account(struct pkt_scratch *s, __u32 hook)
{
	struct weft_pkt_key *k = &s->key;
	struct pkt_info *pi = &s->info;
	__u64 now = bpf_ktime_get_ns();
	struct weft_pkt_flow *f = bpf_map_lookup_elem(&pkt_flows, k);
	if (!f) {
		struct weft_pkt_flow *n = &s->fresh;
		__builtin_memset(n, 0, sizeof(*n));
		n->first_ns = now;
		n->last_ns = now;
		__u8 syn = pi->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK);
		/* The opener: the sender of a SYN, the receiver of a SYN-ACK,
		 * else (a flow older than weft, or not TCP) the first sender. */
		__u8 orig_is_b = pi->dir; /* sender is b when dir == 1 */
		if (k->proto == IPPROTO_TCP && syn == (TCP_FLAG_SYN | TCP_FLAG_ACK))
			orig_is_b = !pi->dir;
		n->flags = (orig_is_b ? WEFT_PKT_ORIG_B : 0) |
			  (k->proto == IPPROTO_TCP && (pi->tcp_flags & TCP_FLAG_SYN)
				   ? WEFT_PKT_ORIG_SYN
				   : 0) |
			  (pi->ipv6 ? WEFT_PKT_IPV6 : 0);
		n->vlan_inner = pi->vlan_inner;
		if (k->proto != IPPROTO_TCP) {
			n->hello[0] = WEFT_PKT_HELLO_DONE;
			n->hello[1] = WEFT_PKT_HELLO_DONE;
		}
		if (bpf_map_update_elem(&pkt_flows, k, n, BPF_NOEXIST) == 0)
			stat_add(WEFT_STAT_PKT_FLOWS, 1);
		f = bpf_map_lookup_elem(&pkt_flows, k);
		if (!f) {
			stat_add(WEFT_STAT_PKT_FLOW_FULL, 1);
			return NULL;
		}
	}
	__u32 d = pi->dir & 1;
	__sync_fetch_and_add(&f->packets[d], 1);
	__sync_fetch_and_add(&f->bytes[d], pi->l3_bytes);
	f->last_ns = now;
	__u32 seen = ((__u32)pi->tcp_flags << (d * 8)) | hook;
	if ((f->seen & seen) != seen)
		__sync_fetch_and_or(&f->seen, seen);
	return f;
}

/* A wire hello record with room for the most bytes one carries. */
struct wire_hello_full {
	struct weft_wire_hello_rec h;
	__u8 data[WEFT_HELLO_MAX];
};

/* The packet's payload, when it is the next piece of a TLS hello this
 * direction of the flow still wants: copied to the ring. Called only while
 * f->hello[dir] is not DONE (the caller's one compare). */
static __always_inline void wire_hello(void *ctx, bool xdp, struct pkt_scratch *s,
				   struct weft_pkt_flow *f)
{
	struct pkt_info *pi = &s->info;
	__u32 d = pi->dir & 1;
	__u32 n = pi->payload_len;
	if (!n)
		return; /* SYN, pure ACK: wait for payload */
	__u8 state = f->hello[d];
	__u32 got = f->hello_len[d];
	__u8 seg = 0;
	__u32 record = 0; /* size of the first TLS record, header included */
	if (state == WEFT_PKT_HELLO_MORE) {
		/* Only the segment that continues the first one. */
		if (pi->seq != f->hello_seq[d])
			return;
		seg = 1;
	} else {
		struct {
			__u8 type;
			__u8 major;
			__u8 minor;
			__be16 len;
		} __attribute__((packed)) rh;
		if (n < sizeof(rh) || pkt_load(ctx, xdp, pi->payload_off, &rh, sizeof(rh)) ||
		    rh.type != 0x16 || rh.major != 3 || rh.minor > 4) {
			/* Not a TLS handshake start (or a flow older than weft). */
			f->hello[d] = WEFT_PKT_HELLO_DONE;
			return;
		}
		got = 0;
		record = 5 + bpf_ntohs(rh.len);
	}
	if (got >= WEFT_HELLO_MAX) {
		f->hello[d] = WEFT_PKT_HELLO_DONE;
		return;
	}
	__u32 room = WEFT_HELLO_MAX - got;
	__u32 len = n > room ? room : n;
	if (len > WEFT_HELLO_MAX)
		len = WEFT_HELLO_MAX;
	if (len == 0)
		return;
	/* A continuation is wanted only when this first segment does not
	 * hold the whole first record. */
	__u8 next = WEFT_PKT_HELLO_DONE;
	if (seg == 0 && record > n && got + len < WEFT_HELLO_MAX) {
		next = WEFT_PKT_HELLO_MORE;
		f->hello_seq[d] = pi->seq + n;
	}
	f->hello_len[d] = got + len;
	f->hello[d] = next;

	struct wire_hello_full *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		/* A hole would make the rest unparsable: stop this direction. */
		f->hello[d] = WEFT_PKT_HELLO_DONE;
		stat_add(WEFT_STAT_PKT_HELLO_LOST, 1);
		return;
	}
	if (pkt_load(ctx, xdp, pi->payload_off, r->data, len)) {
		bpf_ringbuf_discard(r, 0);
		f->hello[d] = WEFT_PKT_HELLO_DONE;
		stat_add(WEFT_STAT_PKT_SHORT, 1);
		return;
	}
	r->h.type = WEFT_REC_WIRE_HELLO;
	r->h.len = len;
	__builtin_memcpy(&r->h.key, &s->key, sizeof(r->h.key));
	r->h.ts_ns = bpf_ktime_get_ns();
	r->h.seq = pi->seq;
	r->h.dir = d;
	r->h.seg = seg;
	r->h.flags = len < n ? WEFT_WIRE_HELLO_CUT : 0;
	r->h._pad0 = 0;
	bpf_ringbuf_submit(r, ring_wakeup());
	stat_add(WEFT_STAT_PKT_HELLO, 1);
}

/* The netns inode of the device a packet is on. `dev` comes from a trusted
 * kernel pointer (bpf_cast_to_kern_ctx): plain CO-RE loads the verifier
 * guards, no helper call per hop. */
static __always_inline __u64 dev_netns(struct net_device *dev)
{
	if (!dev)
		return 0;
	struct net *net = dev->nd_net.net;
	if (!net)
		return 0;
	return net->ns.inum;
}

static __always_inline int tc_count(struct __sk_buff *skb, bool egress)
{
	if (floor_mode)
		return TCX_NEXT;
	struct pkt_scratch *s = scratch();
	if (!s)
		return TCX_NEXT;
	struct weft_pkt_key *k = &s->key;
	struct pkt_info *pi = &s->info;
	__u16 accel = skb->vlan_present ? (skb->vlan_tci & 0x0fff) : 0;
	int rc = pkt_parse(skb, false, skb->len, accel, k, pi);
	if (rc) {
		stat_add(rc == -1 ? WEFT_STAT_PKT_NOT_IP : WEFT_STAT_PKT_SHORT, 1);
		return TCX_NEXT;
	}
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(skb);
	k->netns = dev_netns(kskb->dev);
	k->ifindex = skb->ifindex;
	struct weft_pkt_flow *f =
		pkt_account(s, egress ? WEFT_PKT_SEEN_TC_EGRESS : WEFT_PKT_SEEN_TC_INGRESS);
	if (f && f->hello[pi->dir & 1] != WEFT_PKT_HELLO_DONE)
		wire_hello(skb, false, s, f);
	if (!f || f->cookie || k->proto != IPPROTO_TCP || !pi->has_ports ||
	    (pi->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_RST)))
		return TCX_NEXT;

	if (egress) {
		/* The packet's own socket, when it is the connection's (not
		 * the per-namespace control socket that sends resets and
		 * time-wait ACKs). */
		struct bpf_sock *sk = skb->sk;
		if (!sk)
			return TCX_NEXT;
		sk = bpf_sk_fullsock(sk);
		if (!sk || sk->src_port != bpf_ntohs(pi->sport) || sk->dst_port != pi->dport)
			return TCX_NEXT;
		__u64 c = bpf_get_socket_cookie(skb);
		if (c)
			f->cookie = c;
		return TCX_NEXT;
	}
	if (f->lookups >= PKT_LOOKUPS_MAX)
		return TCX_NEXT;
	f->lookups++;
	struct bpf_sock_tuple t = {};
	__u32 tlen;
	if (pi->ipv6) {
		__builtin_memcpy(t.ipv6.saddr, pi->saddr, 16);
		__builtin_memcpy(t.ipv6.daddr, pi->daddr, 16);
		t.ipv6.sport = pi->sport;
		t.ipv6.dport = pi->dport;
		tlen = sizeof(t.ipv6);
	} else {
		__builtin_memcpy(&t.ipv4.saddr, pi->saddr + 12, 4);
		__builtin_memcpy(&t.ipv4.daddr, pi->daddr + 12, 4);
		t.ipv4.sport = pi->sport;
		t.ipv4.dport = pi->dport;
		tlen = sizeof(t.ipv4);
	}
	struct bpf_sock *sk = bpf_skc_lookup_tcp(skb, &t, tlen, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return TCX_NEXT;
	if (sk->state != WEFT_TCP_LISTEN && sk->state != WEFT_TCP_NEW_SYN_RECV &&
	    sk->state != WEFT_TCP_TIME_WAIT) {
		struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
		if (tp) {
			__u64 c = tp->inet_conn.icsk_inet.sk.__sk_common.skc_cookie.counter;
			if (c)
				f->cookie = c;
		}
	}
	bpf_sk_release(sk);
	return TCX_NEXT;
}

SEC("tc")
int weft_tc_ingress(struct __sk_buff *skb)
{
	return tc_count(skb, false);
}

SEC("tc")
int weft_tc_egress(struct __sk_buff *skb)
{
	return tc_count(skb, true);
}

SEC("xdp")
int weft_xdp(struct xdp_md *ctx)
{
	if (floor_mode)
		return XDP_PASS;
	struct pkt_scratch *s = scratch();
	if (!s)
		return XDP_PASS;
	__u32 len = bpf_xdp_get_buff_len(ctx);
	int rc = pkt_parse(ctx, true, len, 0, &s->key, &s->info);
	if (rc) {
		stat_add(rc == -1 ? WEFT_STAT_PKT_NOT_IP : WEFT_STAT_PKT_SHORT, 1);
		return XDP_PASS;
	}
	struct xdp_buff *x = bpf_cast_to_kern_ctx(ctx);
	s->key.netns = x->rxq ? dev_netns(x->rxq->dev) : 0;
	s->key.ifindex = ctx->ingress_ifindex;
	struct weft_pkt_flow *f = pkt_account(s, WEFT_PKT_SEEN_XDP);
	if (f && f->hello[s->info.dir & 1] != WEFT_PKT_HELLO_DONE)
		wire_hello(ctx, true, s, f);
	return XDP_PASS;
}
