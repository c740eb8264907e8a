"""Simulation framework: scenarios, plans, models, runs, results and comparison (no Qt)."""
