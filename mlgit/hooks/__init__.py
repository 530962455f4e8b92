"""Git hooks: install the scripts of the top-level ``hooks/`` folder, chain existing ones."""
