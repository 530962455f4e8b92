"""What git itself carries: pointer files, .gitignore, the index (via pygit2)."""
