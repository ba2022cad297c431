"""Metrics and the ops HTTP server."""
