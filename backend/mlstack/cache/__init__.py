"""The shared prediction cache in Redis and each replica's near copy of it."""
