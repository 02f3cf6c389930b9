"""Supply-chain sharing: partners and trust groups, TLP 2.0, warnings, check requests,
disclosure, information classes, STIX/MISP/TAXII exchange (see docs/architecture.md)."""
