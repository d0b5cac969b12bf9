"""Bytewax dataflows, their Redis connectors, replay and evaluation drivers, and the CLI."""
