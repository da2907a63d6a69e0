"""Beam transforms and DoFns, one concept per module."""
