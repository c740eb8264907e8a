"""Hazard models run by Twin scenarios (flood, ...)."""
