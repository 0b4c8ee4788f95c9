"""This machine: what it has (probe) and what fits on it (fit), as facts for the edges to word."""
