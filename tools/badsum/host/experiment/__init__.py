"""The experiment's tools: what a reproduction runs on its hosts, and takes away again.

Topologies, the kernel condition, the injector, the traffic and its
recorder, the counters and captures that are the evidence.
"""
