"""Snapshots from files and back: scan, stat cache, build, materialize, diff, read."""
