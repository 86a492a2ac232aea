"""What several steps share: run records and reading the per-day tables."""
