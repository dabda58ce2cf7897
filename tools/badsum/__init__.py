"""badsum: reproduce, prove and remediate the Linux veth checksum bug."""
