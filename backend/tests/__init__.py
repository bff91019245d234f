"""Tests of the mlstack package: real trained stores, real uvicorn and redis-server processes."""
