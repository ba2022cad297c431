"""Endpoint catalogues of every vendor as data (name, path, parameters) for the gateway RPC."""
