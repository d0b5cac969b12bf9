"""Prometheus alert rules as code: ``python -m deploy.prometheus.build`` writes ``alerts.yml``."""
