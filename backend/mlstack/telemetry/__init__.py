"""Logs, Prometheus metrics and the per-replica statistics shared through Redis."""
