"""Live drift: rows served, counted into the training profile's bins, merged in Redis, scored against it."""
