"""Remotes: where a remote's sidecar store is, how to reach it, and what to send."""
