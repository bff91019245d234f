"""User data for recommendations, in the durable Redis."""
