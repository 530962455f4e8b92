"""The sidecar object store in ``.git/ml/``: packs, indexes, refs, locks."""
