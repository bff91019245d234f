"""Peers for `make bench PEERS=1`: small launchers that run inside their own side environments."""
