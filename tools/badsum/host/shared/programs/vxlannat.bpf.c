// SPDX-License-Identifier: GPL-2.0
/*
 * badsum vxlan-nat emulator: puts back, on a kernel that has
 * commit ea64d8d6c675 ("netfilter: nat: never update the UDP checksum when
 * it's 0", Linux 5.7, 5.6.13, 5.4.41, 4.19.123, 4.14.181), what udp_manip_pkt()
 * did before it:
 *
 *	do_csum = hdr->check || skb->ip_summed == CHECKSUM_PARTIAL;
 *	__udp_manip_pkt(skb, iphdroff, hdr, tuple, maniptype, do_csum);
 *
 * i.e. for a UDP header whose checksum is 0 ("none") in an skb that is
 * CHECKSUM_PARTIAL (for the *inner* TCP of a VXLAN packet), it "updated" the
 * 0 as if it were a pseudo-header seed:
 *
 *	inet_proto_csum_replace4(&hdr->check, skb, oldip, newip, true)
 *	  -> PARTIAL branch: *sum = ~csum_fold(csum_add(csum_sub(csum_unfold(*sum), from), to))
 *	inet_proto_csum_replace2(&hdr->check, skb, oldport, newport, false)
 *	  -> PARTIAL branch, no pseudo-header: nothing
 *	if (!hdr->check) hdr->check = CSUM_MANGLED_0;
 *
 * A port-only SNAT (MASQUERADE --random-fully, same address) therefore
 * wrote 0xffff; an address change wrote the folded address difference.
 * Neither matches the packet: the receiver drops it (UdpInCsumErrors).
 *
 * Where: tc egress (clsact, direct action) of the sending host's wire NIC,
 * which runs after POSTROUTING, so NAT has happened and the fixed kernel has
 * left the 0 alone. The skb's conntrack entry (skb->_nfct) says whether NAT
 * rewrote this packet: the tuple of the packet's direction is the packet as
 * it was before NAT, the header is the packet after it. Every condition the
 * real bug had is checked, none is assumed:
 *   - UDP to the configured port (8472), IPv4, the configured outer source and
 *     destination, the configured VNI, outer checksum 0;
 *   - skb->ip_summed == CHECKSUM_PARTIAL (so `ethtool -K <vxlan> tx-checksum-ip-generic off`,
 *     which makes the stack finish the inner checksum before vxlan, turns it off
 *     exactly as it turned the real bug off);
 *   - a conntrack entry with IPS_SRC_NAT/IPS_DST_NAT whose tuple differs from the header.
 *
 * Scoped to the cell's own overlay, so that it can run on a host with an
 * overlay of its own (a fleet's canary: flannel.1, VNI 1, on the same port
 * 8472, with kube-proxy's MASQUERADE rewriting its outer packets too): a
 * packet is touched only if its outer addresses are the configured ones
 * (the cell's host A -> host B) and its VXLAN header (the I flag set) carries
 * the configured VNI - the cell's device's, which no other device of the
 * host can have on that port (the kernel refuses a second one). Every other
 * packet to the port is counted (ST_OTHER) and left alone.
 *
 * Bounded: inert until armed, inert past expire_ns (absolute, bpf_ktime_get_ns),
 * only the configured UDP port is ever touched (never TCP, never SSH). It
 * always answers TC_ACT_UNSPEC.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define TC_ACT_UNSPEC (-1)
#define ETH_P_IP 0x0800
#define CHECKSUM_PARTIAL 3 /* include/linux/skbuff.h: NONE 0, UNNECESSARY 1, COMPLETE 2, PARTIAL 3 */
#define NFCT_PTRMASK (~7UL)
#define IP_CT_IS_REPLY 3
#define EVENTS 256

#ifdef BADSUM_KERN_CTX
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;
static __always_inline struct sk_buff *kernel_skb(struct __sk_buff *ctx)
{
	return bpf_cast_to_kern_ctx(ctx);
}
#else
/* Before 6.2 (the VM tier's 6.1 kernels): the context register holds the
 * sk_buff's address; BPF_CORE_READ reads through bpf_probe_read_kernel. */
static __always_inline struct sk_buff *kernel_skb(struct __sk_buff *ctx)
{
	return (struct sk_buff *)ctx;
}
#endif

struct bs_vx_cfg {
	__u64 expire_ns; /* absolute deadline; 0: not armed */
	__u16 port;      /* outer UDP destination port, host order */
	__u8 pad[2];
	__u32 vni;       /* the cell's VNI, host order */
	__u32 saddr;     /* the cell's outer source (host A) after NAT, network order */
	__u32 daddr;     /* the cell's outer destination (host B), network order */
};
/* packed by the controller as struct.Struct("<QH2xI4s4s") */
_Static_assert(sizeof(struct bs_vx_cfg) == 24, "struct bs_vx_cfg: update condition.py VX_CFG");

enum {
	ST_TUNNEL,    /* UDP to the port */
	ST_ZERO,      /* ... with checksum 0 */
	ST_PARTIAL,   /* ... in a CHECKSUM_PARTIAL skb */
	ST_NATTED,    /* ... that NAT rewrote */
	ST_REWRITTEN, /* checksums written as the unfixed kernel wrote them */
	ST_EXPIRED,   /* seen past the deadline, left alone */
	ST_NOT_PARTIAL, /* zero checksum but not PARTIAL: the workaround's path */
	ST_OTHER,     /* UDP to the port, not the cell's (addresses or VNI): left alone */
	ST_MAX
};

struct bs_vx_event {
	__u64 ns;
	__u32 old_saddr, new_saddr;
	__u16 old_sport, new_sport; /* network order, as on the wire */
	__u16 written;              /* the checksum written, as on the wire */
	__u16 pad[3];
};
_Static_assert(sizeof(struct bs_vx_event) == 32, "struct bs_vx_event: update condition.py VX_EVENT");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bs_vx_cfg);
} bs_vx_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ST_MAX);
	__type(key, __u32);
	__type(value, __u64);
} bs_vx_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EVENTS);
	__type(key, __u32);
	__type(value, struct bs_vx_event);
} bs_vx_events SEC(".maps");

static __always_inline __u64 count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&bs_vx_stats, &idx);

	return v ? __sync_fetch_and_add(v, 1) : 0;
}

/* include/asm-generic/checksum.h and net/checksum.h, on raw (network-order) words */
static __always_inline __u32 csum_add32(__u32 a, __u32 b)
{
	__u32 r = a + b;

	return r + (r < b);
}

static __always_inline __u16 fold16(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* what udp_manip_pkt() did to a CHECKSUM_PARTIAL skb for one manip (SRC or DST):
 * the seed branch of inet_proto_csum_replace4() for the address, nothing for the
 * port, then CSUM_MANGLED_0 for a zero result */
static __always_inline __u16 unfixed_manip(__u16 check, __u32 from, __u32 to)
{
	/* ~csum_fold(x) is the plain folded sum */
	__u16 c = fold16(csum_add32(csum_add32((__u32)check, ~from), to));

	return c ? c : 0xffff;
}

SEC("tc")
int badsum_vxlannat(struct __sk_buff *ctx)
{
	__u32 zero = 0, l3 = sizeof(struct ethhdr), l4;
	struct iphdr ip;
	struct udphdr udp;
	struct bs_vx_cfg *c;
	__u64 now;

	c = bpf_map_lookup_elem(&bs_vx_cfg, &zero);
	if (!c || !c->expire_ns)
		return TC_ACT_UNSPEC;
	if (ctx->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_UNSPEC;
	if (bpf_skb_load_bytes(ctx, l3, &ip, sizeof(ip)) || ip.protocol != IPPROTO_UDP || ip.ihl < 5)
		return TC_ACT_UNSPEC;
	if (ip.frag_off & bpf_htons(0x3fff))
		return TC_ACT_UNSPEC;
	l4 = l3 + ip.ihl * 4;
	if (bpf_skb_load_bytes(ctx, l4, &udp, sizeof(udp)) || udp.dest != bpf_htons(c->port))
		return TC_ACT_UNSPEC;
	/* the VXLAN header (RFC 7348): flags (I = 0x08), 3 reserved, VNI (24 bits, network order), 1 reserved */
	__u8 vx[8];

	if (ip.saddr != c->saddr || ip.daddr != c->daddr || bpf_skb_load_bytes(ctx, l4 + sizeof(udp), vx, sizeof(vx)) ||
	    !(vx[0] & 0x08) || (((__u32)vx[4] << 16) | ((__u32)vx[5] << 8) | vx[6]) != c->vni) {
		count(ST_OTHER);
		return TC_ACT_UNSPEC;
	}
	count(ST_TUNNEL);
	if (udp.check != 0) /* the fix changed nothing for a non-zero checksum */
		return TC_ACT_UNSPEC;
	count(ST_ZERO);

	now = bpf_ktime_get_ns();
	if (now >= c->expire_ns) {
		count(ST_EXPIRED);
		return TC_ACT_UNSPEC;
	}

	struct sk_buff *skb = kernel_skb(ctx);
	__u8 ip_summed = BPF_CORE_READ_BITFIELD_PROBED(skb, ip_summed);

	if (ip_summed != CHECKSUM_PARTIAL) {
		count(ST_NOT_PARTIAL);
		return TC_ACT_UNSPEC;
	}
	count(ST_PARTIAL);

	unsigned long nfct = BPF_CORE_READ(skb, _nfct);
	struct nf_conn *ct = (struct nf_conn *)(nfct & NFCT_PTRMASK);
	__u32 dir = (nfct & 7) >= IP_CT_IS_REPLY ? 1 : 0;

	if (!ct)
		return TC_ACT_UNSPEC;
	if (!(BPF_CORE_READ(ct, status) & IPS_NAT_MASK))
		return TC_ACT_UNSPEC;

	/* the tuple of this packet's direction: the header as it was before NAT */
	struct nf_conntrack_tuple before;

	if (bpf_core_read(&before, sizeof(before), &ct->tuplehash[dir & 1].tuple))
		return TC_ACT_UNSPEC;
	__u32 osrc = before.src.u3.ip, odst = before.dst.u3.ip;
	__u16 osport = before.src.u.all, odport = before.dst.u.all;
	int dst_changed = odst != ip.daddr || odport != udp.dest;
	int src_changed = osrc != ip.saddr || osport != udp.source;

	if (!dst_changed && !src_changed)
		return TC_ACT_UNSPEC;
	count(ST_NATTED);

	/* the DST manip runs first (PREROUTING/OUTPUT), the SRC manip in POSTROUTING */
	__u16 check = 0;

	if (dst_changed)
		check = unfixed_manip(check, odst, ip.daddr);
	if (src_changed)
		check = unfixed_manip(check, osrc, ip.saddr);
	if (bpf_skb_store_bytes(ctx, l4 + offsetof(struct udphdr, check), &check, sizeof(check), 0))
		return TC_ACT_UNSPEC;

	__u32 n = count(ST_REWRITTEN) % EVENTS;
	struct bs_vx_event ev = {
		.ns = now, .old_saddr = osrc, .new_saddr = ip.saddr,
		.old_sport = osport, .new_sport = udp.source, .written = check,
	};

	bpf_map_update_elem(&bs_vx_events, &n, &ev, BPF_ANY);
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "GPL";
