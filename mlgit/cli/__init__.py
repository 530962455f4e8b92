"""The git-ml command line."""
