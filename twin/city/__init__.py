"""The City: typed, metric, analysis-ready arrays derived from the one map (no Qt)."""
