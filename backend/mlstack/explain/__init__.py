"""Per-prediction explanations: one contribution per original input feature that, with a base value, adds
up to the model's output (engine.py), and the history items behind a recommendation (recommend.py)."""
