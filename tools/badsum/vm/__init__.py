"""VM labs: lab kernels built with and without the veth fix, a Debian root filesystem, QEMU guests.

The controller side only: nothing here runs inside a guest (the guests run
the same host kit over SSH as any other host).
"""
