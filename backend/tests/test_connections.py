"""Every Redis connection of a replica is made in one module, each with keepalive and a connect timeout."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from mlstack import connections
from mlstack.settings import Settings

PACKAGE = Path(connections.__file__).parent
MAKES_A_CONNECTION = re.compile(r"\bfrom_url\(|\bRedisPipe\(|\bRedis\(|\bStrictRedis\(")


def test_no_module_but_connections_makes_a_redis_connection() -> None:
    makers = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if MAKES_A_CONNECTION.search(path.read_text())
    }

    # the training command's one-off read of collected interactions is no replica connection
    assert makers == {"connections.py", "training/collected.py"}


@pytest.mark.parametrize("make", [connections.cache_watch, connections.stats, connections.user_data])
def test_every_client_has_keepalive_and_a_connect_timeout(
    make: Callable[[Settings], aioredis.Redis | None],
) -> None:
    settings = Settings(redis_url="redis://127.0.0.1:1/0", users_redis_url="redis://127.0.0.1:2/0")
    client = make(settings)
    assert client is not None
    options = client.connection_pool.connection_kwargs

    assert options["socket_keepalive"] is True
    assert options["socket_keepalive_options"][socket.TCP_KEEPIDLE] == connections.KEEPALIVE["TCP_KEEPIDLE"]
    assert 0 < options["socket_connect_timeout"] <= 2


def test_no_redis_url_means_no_connection() -> None:
    settings = Settings(redis_url=None, users_redis_url=None)

    assert connections.cache_lookups(settings) is None
    assert connections.cache_watch(settings) is None
    assert connections.stats(settings) is None
    assert connections.user_data(settings) is None
