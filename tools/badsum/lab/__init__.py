"""The labs the kit runs on: the embedded provider (namespaces on this machine), its parts, and the provider
interface (badsum.lab.interface) that the QEMU provider (badsum.vm) implements too."""
