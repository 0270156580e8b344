"""The ledger: our own database, the source of truth for what was discovered, built, signed and accepted."""
