"""Operating on the data as a whole: archives (export/import), erasure, retention, backups and
verification. Each module states the invariant it keeps; the `Vault` and the CLI call them."""
