// SPDX-License-Identifier: GPL-2.0
/*
 * badsum corruptor: a tc (clsact, direct-action) program that damages the
 * payload of the experiment's TCP segments the way a faulty switch does, and
 * leaves the checksum alone so that the receiver has a chance to notice.
 *
 * Its maps are not pinned: each attachment (one per switch port) has its own,
 * found by the control script through the program's id.
 *
 * The window follows the traffic, not the controller: it opens delay_ns after
 * the first matching segment, so a slow SSH round trip never shifts it out of
 * the experiment. A fixed window (target 0) lasts duration_ns. An evidence
 * window closes once `target` segments were damaged (end_ns says when), or
 * after duration_ns at most: the rule of tools/badsum/host/window.py, which the
 * unit tests drive. Past expire_ns (absolute, set when armed) the program is
 * inert whatever happened: an interrupted controller never leaves a
 * corrupting switch behind. Only TCP segments carrying payload to/from the
 * configured port range are ever touched, so management traffic (SSH) is
 * safe.
 *
 * It always answers TC_ACT_UNSPEC: "not mine, go on". On a device whose
 * clsact it shares (host B's NIC, with the Mesos topology's redirect
 * filters) it runs first, at the lowest preference, and every packet,
 * damaged or not, goes on to the next filter.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define PATTERN_RANDOM 0
#define PATTERN_STUCK 1

#define DIR_TO_PORT 1   /* segments whose destination port is in range */
#define DIR_FROM_PORT 2 /* segments whose source port is in range */

#define EVENTS 1024

struct bs_cfg {
	__u64 start_ns;    /* 0 until the first matching segment, then the window's start */
	__u64 delay_ns;    /* from the first matching segment to the window */
	__u64 duration_ns; /* a fixed window's length; an evidence window's longest */
	__u64 expire_ns;   /* absolute deadline: inert after it */
	__u64 end_ns;      /* 0, or when an evidence window closed (its target was reached) */
	__u32 rate_ppm; /* probability per segment, parts per million */
	__u32 target;   /* 0: a fixed window; else damaged segments that close it */
	__u16 port_lo;
	__u16 port_hi;
	__u8 direction;
	__u8 pattern;
	__u8 stuck_bit;    /* 0..7 */
	__u8 stuck_value;  /* 0 or 1 */
	__u8 stuck_offset; /* 0..31: byte offset mod 32 of the TCP sequence space */
	__u8 csum_reset;   /* at ingress: forget any checksum verification */
	__u8 pad[6];
};
/* The control script packs this struct with struct.Struct("<QQQQQIIHHBBBBBB6x")
 * (corruptor.CFG); a unit test checks that its size is the one asserted here. */
_Static_assert(sizeof(struct bs_cfg) == 64, "struct bs_cfg: update corruptor.CFG");

enum { ST_MATCHED, ST_CORRUPTED, ST_BYTES, ST_OUTSIDE, ST_MAX };

struct bs_event {
	__u64 ns;
	__u32 seq;
	__u16 payload_off;
	__u16 payload_len;
	__u16 sport;
	__u16 dport;
	__u8 bit;
	__u8 old;
	__u8 new;
	__u8 pad;
};
_Static_assert(sizeof(struct bs_event) == 24, "struct bs_event: update corruptor.EVENT");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bs_cfg);
} bs_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ST_MAX);
	__type(key, __u32);
	__type(value, __u64);
} bs_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EVENTS);
	__type(key, __u32);
	__type(value, struct bs_event);
} bs_events SEC(".maps");

static __always_inline void count(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&bs_stats, &idx);

	if (v)
		__sync_fetch_and_add(v, n);
}

static __always_inline int in_range(const struct bs_cfg *c, __u16 port)
{
	return port >= c->port_lo && port <= c->port_hi;
}

static __always_inline int flip(struct __sk_buff *skb, __u32 off, __u8 mask, int set, __u8 *old, __u8 *new)
{
	__u8 b;

	if (bpf_skb_load_bytes(skb, off, &b, 1))
		return 0;
	*old = b;
	if (set < 0)
		b ^= mask;
	else if (set)
		b |= mask;
	else
		b &= ~mask;
	if (b == *old)
		return 0;
	*new = b;
	/* flags 0: the checksum is deliberately NOT updated */
	return bpf_skb_store_bytes(skb, off, &b, 1, 0) == 0;
}

SEC("tc")
int badsum_corrupt(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 zero = 0, l4off, payload_off, payload_len, seq;
	struct bs_cfg *c;
	struct tcphdr *tcp;
	__u16 sport, dport;
	__u64 now;

	c = bpf_map_lookup_elem(&bs_cfg, &zero);
	if (!c || !c->expire_ns)
		return TC_ACT_UNSPEC;
	if ((void *)(eth + 1) > data_end)
		return TC_ACT_UNSPEC;

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		__u32 ihl;

		if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_TCP)
			return TC_ACT_UNSPEC;
		if (ip->frag_off & bpf_htons(0x3fff)) /* fragments: leave alone */
			return TC_ACT_UNSPEC;
		ihl = ip->ihl * 4;
		if (ihl < sizeof(*ip))
			return TC_ACT_UNSPEC;
		l4off = sizeof(*eth) + ihl;
		payload_len = bpf_ntohs(ip->tot_len) - ihl;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end || ip6->nexthdr != IPPROTO_TCP)
			return TC_ACT_UNSPEC;
		l4off = sizeof(*eth) + sizeof(*ip6);
		payload_len = bpf_ntohs(ip6->payload_len);
	} else {
		return TC_ACT_UNSPEC;
	}

	tcp = data + l4off;
	if ((void *)(tcp + 1) > data_end)
		return TC_ACT_UNSPEC;
	sport = bpf_ntohs(tcp->source);
	dport = bpf_ntohs(tcp->dest);
	if (!(((c->direction & DIR_TO_PORT) && in_range(c, dport)) ||
	      ((c->direction & DIR_FROM_PORT) && in_range(c, sport))))
		return TC_ACT_UNSPEC;
	if (payload_len <= (__u32)tcp->doff * 4)
		return TC_ACT_UNSPEC; /* no payload: SYN, pure ACK, FIN */
	payload_off = l4off + tcp->doff * 4;
	payload_len -= tcp->doff * 4;
	seq = bpf_ntohl(tcp->seq);

	now = bpf_ktime_get_ns();
	if (now >= c->expire_ns) {
		count(ST_OUTSIDE, 1);
		return TC_ACT_UNSPEC;
	}
	if (!c->start_ns) /* the first segment opens the clock; one CPU wins */
		__sync_val_compare_and_swap(&c->start_ns, 0, now + c->delay_ns);
	if (now < c->start_ns || now >= c->start_ns + c->duration_ns || (c->end_ns && now >= c->end_ns)) {
		count(ST_OUTSIDE, 1);
		return TC_ACT_UNSPEC;
	}
	__u64 *damaged = bpf_map_lookup_elem(&bs_stats, &(__u32){ST_CORRUPTED});

	if (!damaged)
		return TC_ACT_UNSPEC;
	if (c->target && *damaged >= c->target) { /* closed on evidence (another CPU's segment) */
		count(ST_OUTSIDE, 1);
		return TC_ACT_UNSPEC;
	}
	count(ST_MATCHED, 1);
	if (c->rate_ppm < 1000000 && bpf_get_prandom_u32() % 1000000 >= c->rate_ppm)
		return TC_ACT_UNSPEC;

	struct bs_event ev = {
		.ns = now, .seq = seq, .payload_len = payload_len, .sport = sport, .dport = dport,
	};
	__u32 changed = 0;

	__u32 r = bpf_get_prandom_u32();
	__u32 pos, bit;
	int set = -1; /* -1: flip */

	if (c->pattern == PATTERN_STUCK) {
		/* The incident's signature: the same bit, at the same offset mod
		 * 32 bytes of the stream, forced to one value. One such byte per
		 * corrupted segment (a loop over all of them explodes the verifier). */
		__u32 first = (c->stuck_offset - seq) & 31;

		if (first >= payload_len)
			return TC_ACT_UNSPEC;
		pos = first + (r % ((payload_len - first + 31) / 32)) * 32;
		bit = c->stuck_bit & 7;
		set = c->stuck_value ? 1 : 0;
	} else {
		pos = r % payload_len;
		bit = (r >> 24) & 7;
	}
	if (pos >= payload_len || pos > 0xffff)
		return TC_ACT_UNSPEC;
	if (flip(skb, payload_off + pos, 1 << bit, set, &ev.old, &ev.new)) {
		ev.payload_off = pos;
		ev.bit = bit;
		changed = 1;
	}
	if (!changed)
		return TC_ACT_UNSPEC;
	if (c->csum_reset)
		bpf_csum_level(skb, BPF_CSUM_LEVEL_RESET);

	__u32 n = __sync_fetch_and_add(damaged, 1);

	/* The evidence is in: the window closes now. */
	if (c->target && n + 1 >= c->target)
		__sync_val_compare_and_swap(&c->end_ns, 0, now);
	count(ST_BYTES, changed);
	n %= EVENTS;
	bpf_map_update_elem(&bs_events, &n, &ev, BPF_ANY);
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "GPL";
