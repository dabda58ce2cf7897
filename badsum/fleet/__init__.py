"""The fleet: audit, remediation and rollback of the veth checksum workaround (controller side)."""

# The fleet playbooks, by name: playbooks/<phase>.yml.
PHASES = ("audit", "remediate", "rollback")
# How badsum.kit.run reaches a fleet host (badsum_fleet_transport, per host):
# an Ansible module, or a shell command for hosts whose Python Ansible cannot use.
TRANSPORTS = ("module", "raw")
