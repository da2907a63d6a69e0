"""Composition only: pipelines built from a config, and the `cmtp` command line."""
