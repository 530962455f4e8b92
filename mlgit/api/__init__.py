"""The Python surface of git-ml: the Repo class and module-level functions."""
