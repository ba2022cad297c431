"""The `perpsignal` command line."""
