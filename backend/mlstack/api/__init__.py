"""HTTP edges of the replica: one module per protocol."""
