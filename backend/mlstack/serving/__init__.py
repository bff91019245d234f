"""The core of a replica: resolve a version, validate, cache, batch, predict; the loaded versions."""
