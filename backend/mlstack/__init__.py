"""mlstack: a versioned scikit-learn model store and the replica that serves it."""

__version__ = "0.1.0"
