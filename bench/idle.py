"""Idle keep-alive clients: `python -m bench.idle URL COUNT` opens COUNT connections to the gateway, sends
one request on each (so nginx holds them as keep-alive clients, not as half-open ones it drops after
client_header_timeout), prints `held N`, and waits for a line on stdin. Then it sends a second request on
every connection and prints `alive N`: the connections the gateway kept open and still answers on.

Its own process, so that its descriptors count against its own open-files limit, not the benchmark's.
"""

from __future__ import annotations

import asyncio
import resource
import sys
from urllib.parse import urlsplit

from bench.wrk import open_files_up_to_the_hard_limit

OPENING_AT_ONCE = 500
"""Connections opened concurrently: within the gateway's listen backlog, so none waits for a SYN retry."""
RESERVED_FILES = 64


def allowed(count: int) -> int:
    """As many of `count` as this process may open: its soft limit raised to the hard one."""
    open_files_up_to_the_hard_limit()
    return max(0, min(count, resource.getrlimit(resource.RLIMIT_NOFILE)[1] - RESERVED_FILES))


async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bool:
    """One request on an open connection: True when a whole 200 came back."""
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        await reader.readexactly(length)
        return head.startswith(b"HTTP/1.1 200")
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        return False


async def main(url: str, count: int) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    gate = asyncio.Semaphore(OPENING_AT_ONCE)

    async def open_one() -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        async with gate:
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError:
                return None
            return (reader, writer) if await ask(reader, writer, request) else None

    opened = await asyncio.gather(*(open_one() for _ in range(allowed(count))))
    held = [pair for pair in opened if pair is not None]
    print(f"held {len(held)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    answers = await asyncio.gather(*(ask(reader, writer, request) for reader, writer in held))
    print(f"alive {sum(answers)}", flush=True)
    for _, writer in held:
        writer.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
