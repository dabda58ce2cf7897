// SPDX-License-Identifier: GPL-2.0
/*
 * badsum veth-bug emulator: puts back, on a fixed kernel, the two lines that
 * commit ce8c839b74e3 removed from veth_xmit():
 *
 *	if (skb->ip_summed == CHECKSUM_NONE &&
 *	    rcv->features & NETIF_F_RXCSUM)
 *		skb->ip_summed = CHECKSUM_UNNECESSARY;
 *
 * Attached at tc ingress of the container side of a container's veth, i.e.
 * on `rcv` itself. It reads the device's live feature bits, so
 * `ethtool -K <veth> rx off` (the workaround) turns it off exactly as it
 * turned the real bug off. bpf_csum_level(INC) changes CHECKSUM_NONE into
 * CHECKSUM_UNNECESSARY and leaves every other state alone, like the bug.
 * It answers TC_ACT_UNSPEC, so filters after it still see every packet.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

#define TC_ACT_UNSPEC (-1)
#define BPF_CSUM_LEVEL_QUERY 0
#define BPF_CSUM_LEVEL_INC 1

#ifdef BADSUM_KERN_CTX
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

static __always_inline struct sk_buff *kernel_skb(struct __sk_buff *ctx)
{
	return bpf_cast_to_kern_ctx(ctx);
}
#else
/* Before Linux 6.2 there is no kfunc to reach the kernel's sk_buff, but the
 * context register holds its address all the same: BPF_CORE_READ reads
 * through it with bpf_probe_read_kernel (root only, as the whole kit). */
static __always_inline struct sk_buff *kernel_skb(struct __sk_buff *ctx)
{
	return (struct sk_buff *)ctx;
}
#endif

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2); /* 0: packets seen, 1: packets marked verified */
	__type(key, __u32);
	__type(value, __u64);
} bs_vb_stats SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&bs_vb_stats, &idx);

	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("tc")
int badsum_vethbug(struct __sk_buff *ctx)
{
	struct sk_buff *skb = kernel_skb(ctx);
	netdev_features_t features = BPF_CORE_READ(skb, dev, features);

	count(0);
	/* vmlinux.h is generated from this host's own BTF at set-up, so the
	 * bit number is this kernel's (40 on 6.x). */
	if (!(features & (1ULL << NETIF_F_RXCSUM_BIT)))
		return TC_ACT_UNSPEC;
	/* QUERY fails unless the packet is already CHECKSUM_UNNECESSARY */
	if (bpf_csum_level(ctx, BPF_CSUM_LEVEL_QUERY) >= 0)
		return TC_ACT_UNSPEC;
	if (bpf_csum_level(ctx, BPF_CSUM_LEVEL_INC) == 0)
		count(1);
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "GPL";
