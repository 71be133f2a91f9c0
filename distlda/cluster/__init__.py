"""The cluster: messages, transport, membership, planning, the ledger of committed counts."""
