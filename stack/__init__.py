"""Runs the whole stack natively (nginx, redis-server, uvicorn replicas, Streamlit): `make start`, tests."""
