"""Reproducible performance runs; each prints the figures the README quotes."""
