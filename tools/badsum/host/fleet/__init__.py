"""The fleet's tools, and what stays on production hosts after a rollout.

Audit, probe, remediation and rollback; the guard, the CNI plugin and the
record rollback trusts. They run on the hosts that still have the bug:
Python 3.6 (RHEL/CentOS 7) and kernels from 3.10 (`make lint` checks the
Python with vermin, and the integration suite runs them on 3.6).
"""
