from __future__ import annotations

import re
from pathlib import Path

import pytest

from badsum.lab.spec import LabError
from badsum.vm import kernel

KERNEL_DIR = Path(__file__).resolve().parents[2] / "kernel"


def given(**changes: object) -> kernel.Inputs:
    base = {
        "source_version": "6.1.192-2",
        "fragment": b"CONFIG_VETH=y\n",
        "patches": (("veth-unfixed.patch", b"--- a\n+++ b\n"), ("nat-zero-udp-csum-revert.patch", b"--- c\n+++ d\n")),
    }
    return kernel.Inputs(**{**base, **changes})  # type: ignore[arg-type]


def test_key_is_stable_and_names_every_input() -> None:
    assert given().key("unfixed") == given().key("unfixed")
    keys = {
        given().key("unfixed"),
        given().key("fixed"),
        given(source_version="6.1.193-1").key("unfixed"),
        given(fragment=b"CONFIG_VETH=y\nCONFIG_BRIDGE=y\n").key("unfixed"),
        given(patches=(("veth-unfixed.patch", b"--- a\n+++ b\n+x\n"), given().patches[1])).key("unfixed"),
        given(patches=(given().patches[0], ("nat-zero-udp-csum-revert.patch", b"--- c\n+++ d\n+x\n"))).key("unfixed"),
        # the fixed tree is every patch reversed: a changed patch is a new fixed image too
        given(patches=(given().patches[0], ("nat-zero-udp-csum-revert.patch", b"--- c\n+++ d\n+x\n"))).key("fixed"),
    }
    assert len(keys) == 7


def test_inputs_read_every_patch_of_every_variant() -> None:
    got = kernel.inputs(KERNEL_DIR)
    assert [name for name, _ in got.patches] == ["veth-unfixed.patch", "nat-zero-udp-csum-revert.patch"]
    assert set(kernel.PATCHES["unfixed"]) == set(kernel.ALL_PATCHES)
    assert kernel.PATCHES["fixed"] == ()
    assert set(got.patch_digests()) == set(kernel.ALL_PATCHES)


def test_images_are_cached_outside_the_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel.paths, "KERNELS", tmp_path / "kernels")
    d = kernel.image_dir("unfixed", given())
    assert d.parent == tmp_path / "kernels"
    assert d.name.startswith("unfixed-")
    assert kernel.record("unfixed", given()) is None


def test_a_recorded_build_is_found_only_with_its_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel.paths, "KERNELS", tmp_path)
    d = kernel.image_dir("fixed", given())
    d.mkdir(parents=True)
    (d / "build.json").write_text('{"variant": "fixed"}')
    assert kernel.record("fixed", given()) is None
    (d / "bzImage").write_bytes(b"\0")
    assert kernel.record("fixed", given()) == {"variant": "fixed"}


def test_config_parsing_reads_set_and_unset_options() -> None:
    text = 'CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C="-x"\n# a comment\n'
    assert kernel.parse_config(text) == {"CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_C": '"-x"'}


def test_fragment_lines_the_final_config_dropped_are_reported() -> None:
    fragment = "CONFIG_A=y\nCONFIG_B=n\nCONFIG_C=y\n"
    final = "CONFIG_A=y\nCONFIG_C=m\n"
    assert kernel.config_mismatches(fragment, final) == ["CONFIG_C=y (got m)"]


def test_the_fragment_asks_for_what_the_lab_needs() -> None:
    wanted = kernel.parse_config((KERNEL_DIR / "lab.config").read_text())
    for option in (
        "VETH",
        "BRIDGE",
        "VXLAN",
        "NETFILTER_XT_MARK",
        "NETFILTER_XT_NAT",
        "NETFILTER_XT_TARGET_MASQUERADE",
        "NETFILTER_XT_MATCH_COMMENT",
        "NF_CT_NETLINK",
        "NET_NS",
        "VIRTIO_NET",
        "VIRTIO_BLK",
        "FW_CFG_SYSFS",
        "NF_CONNTRACK",
        "NF_NAT",
        "IP_NF_IPTABLES",
        "NFT_COMPAT",
        "NET_SCH_NETEM",
        "NET_SCH_PRIO",
        "NET_SCH_INGRESS",
        "NET_CLS_U32",
        "NET_ACT_MIRRED",
        "NET_CLS_BPF",
        "NET_ACT_BPF",
        "BPF_SYSCALL",
        "BPF_JIT",
        "DEBUG_INFO_BTF",
        "OVERLAY_FS",
        "CGROUPS",
        "MEMCG",
    ):
        assert wanted.get(f"CONFIG_{option}") == "y", option
    for option in ("DRM", "SOUND", "WLAN", "USB_SUPPORT"):
        assert wanted.get(f"CONFIG_{option}") == "n", option


def test_the_patch_puts_back_exactly_the_removed_check() -> None:
    text = (KERNEL_DIR / "veth-unfixed.patch").read_text()
    assert "ce8c839b74e3" in text
    added = [line[1:].strip() for line in text.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert [a for a in added if a] == [
        "if (skb->ip_summed == CHECKSUM_NONE &&",
        "rcv->features & NETIF_F_RXCSUM)",
        "skb->ip_summed = CHECKSUM_UNNECESSARY;",
    ]
    assert not [line for line in text.splitlines() if line.startswith("-") and not line.startswith("---")]
    hunk = text[text.index("@@") :]
    assert re.search(r"veth_forward_skb\(rcv, skb, rq, use_napi\)", hunk)
    assert "veth_xmit" in hunk.splitlines()[0]


def test_release_suffix_tells_the_variants_apart() -> None:
    assert kernel.localversion("unfixed") == "-badsum-unfixed"
    assert kernel.localversion("fixed") == "-badsum-fixed"


def test_unknown_variant_is_refused() -> None:
    with pytest.raises(LabError, match="allowed: unfixed, fixed"):
        kernel.build("half-fixed")


def test_patch_state_is_read_and_set_on_a_tree(tmp_path: Path) -> None:
    src = tmp_path / "linux"
    (src / "drivers" / "net").mkdir(parents=True)
    patch = tmp_path / "p.patch"
    (src / "drivers" / "net" / "veth.c").write_text("a\nb\nc\n")
    patch.write_text("--- a/drivers/net/veth.c\n+++ b/drivers/net/veth.c\n@@ -1,3 +1,4 @@\n a\n+x\n b\n c\n")
    assert not kernel.patch_applied(src, patch)
    kernel.set_patch(src, patch, applied=True)
    assert kernel.patch_applied(src, patch)
    kernel.set_patch(src, patch, applied=True)  # no-op, not a second hunk
    assert (src / "drivers" / "net" / "veth.c").read_text() == "a\nx\nb\nc\n"
    kernel.set_patch(src, patch, applied=False)
    assert (src / "drivers" / "net" / "veth.c").read_text() == "a\nb\nc\n"


def test_the_nat_patch_reverts_ea64d8d6c675_exactly() -> None:
    text = (KERNEL_DIR / "nat-zero-udp-csum-revert.patch").read_text()
    assert "ea64d8d6c675c0bb712689b13810301de9d8f77a" in text
    hunk = text[text.index("@@") :]
    assert "udp_manip_pkt" in hunk.splitlines()[0]
    added = [line[1:].strip() for line in hunk.splitlines() if line.startswith("+") and not line.startswith("+++")]
    removed = [line[1:].strip() for line in hunk.splitlines() if line.startswith("-") and not line.startswith("---")]
    assert [a for a in added if a] == [
        "bool do_csum;",
        "do_csum = hdr->check || skb->ip_summed == CHECKSUM_PARTIAL;",
        "__udp_manip_pkt(skb, iphdroff, hdr, tuple, maniptype, do_csum);",
    ]
    assert removed == ["__udp_manip_pkt(skb, iphdroff, hdr, tuple, maniptype, !!hdr->check);"]


def test_a_variant_carries_its_patches_and_no_other(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, kdir = tmp_path / "linux", tmp_path / "kernel"
    kdir.mkdir()
    for i, name in enumerate(("one.patch", "two.patch")):
        (src / f"d{i}").mkdir(parents=True)
        (src / f"d{i}" / "f.c").write_text("a\nb\n")
        (kdir / name).write_text(f"--- a/d{i}/f.c\n+++ b/d{i}/f.c\n@@ -1,2 +1,3 @@\n a\n+x\n b\n")
    monkeypatch.setattr(kernel, "PATCHES", {"unfixed": ("one.patch", "two.patch"), "fixed": ()})
    monkeypatch.setattr(kernel, "ALL_PATCHES", ("one.patch", "two.patch"))
    for variant, want in (("unfixed", "a\nx\nb\n"), ("unfixed", "a\nx\nb\n"), ("fixed", "a\nb\n"), ("fixed", "a\nb\n")):
        kernel.set_patches(src, kdir, variant)
        assert [(src / f"d{i}" / "f.c").read_text() for i in range(2)] == [want, want], variant
    # a tree left half-patched (a killed build) comes out whole either way
    kernel.set_patch(src, kdir / "two.patch", applied=True)
    kernel.set_patches(src, kdir, "fixed")
    assert [(src / f"d{i}" / "f.c").read_text() for i in range(2)] == ["a\nb\n"] * 2
    kernel.set_patch(src, kdir / "one.patch", applied=True)
    kernel.set_patches(src, kdir, "unfixed")
    assert [(src / f"d{i}" / "f.c").read_text() for i in range(2)] == ["a\nx\nb\n"] * 2
