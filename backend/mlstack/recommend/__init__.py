"""Recommendation models: the scorer, its runtime and the recommendation flow."""
