"""The fleet: audit, remediation and rollback of the veth checksum workaround (controller side)."""

# The fleet playbooks, by name: playbooks/<phase>.yml.
PHASES = ("audit", "remediate", "rollback")
