"""The fleet: audit, remediation and rollback of the veth checksum workaround (controller side)."""
