"""How many connections the gateway can hold here: nginx's worker connections within the open-files limit,
its listen backlog within the kernel's somaxconn, and what falls short of the asked figures, said.

Every connection nginx holds is a file descriptor of its worker: a client's, kept alive while idle, and
during a request one more to a replica. `worker_rlimit_nofile` raises the worker's limit, but only up to
the hard limit a process may set without privileges (the container's `ulimits`, or `ulimit -Hn`). The
listen backlog (connections the kernel has accepted and nginx not yet) is capped by net.core.somaxconn.
Standard library only: this runs in the gateway image too, where only python3 and Jinja2 are installed.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WORKER_CONNECTIONS = 16384
"""Connections per worker when none are asked for: ten thousand idle keep-alive clients and their load."""
WANTED_BACKLOG = 4096
"""The listen backlog asked for: the kernel's own default somaxconn since Linux 5.4 (nginx's is 511)."""
RESERVED_FILES = 64
"""Descriptors a worker needs besides connections: logs, listening sockets, temporary files."""
SOMAXCONN = Path("/proc/sys/net/core/somaxconn")


@dataclass(frozen=True)
class Capacity:
    worker_connections: int
    rlimit_nofile: int
    """worker_rlimit_nofile: the worker's open-files limit, never above the hard limit."""
    backlog: int
    warnings: list[str]
    """What the machine did not allow, in words for the operator; empty when everything was granted."""


def capacity(wanted_connections: int, somaxconn_file: Path = SOMAXCONN) -> Capacity:
    """The worker connections and backlog the machine allows, at most the ones asked for."""
    warnings = []
    hard = hard_open_files()
    rlimit = min(wanted_connections + RESERVED_FILES, hard)
    connections = max(rlimit - RESERVED_FILES, 1)
    if connections < wanted_connections:
        warnings.append(
            f"the open-files hard limit is {hard:,}, so each gateway worker holds at most {connections:,} "
            f"connections (clients and replicas together), not the {wanted_connections:,} asked "
            "(GATEWAY_WORKER_CONNECTIONS). Raise the limit to hold more: `ulimit -Hn` as root, "
            "LimitNOFILE= in a systemd unit, or `ulimits: nofile:` for the gateway in Compose."
        )
    somaxconn = read_somaxconn(somaxconn_file)
    backlog = min(WANTED_BACKLOG, somaxconn) if somaxconn else WANTED_BACKLOG
    if somaxconn and somaxconn < WANTED_BACKLOG:
        warnings.append(
            f"net.core.somaxconn is {somaxconn:,}, so the gateway's listen backlog is {backlog:,}, not "
            f"{WANTED_BACKLOG:,}: a burst of new connections beyond it waits for the client's SYN retry "
            "(a second or more). Raise it as root: sysctl -w net.core.somaxconn=4096."
        )
    return Capacity(connections, rlimit, backlog, warnings)


def hard_open_files() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return hard if hard != resource.RLIM_INFINITY else 1 << 20


def read_somaxconn(path: Path) -> int | None:
    """The kernel's cap on listen backlogs, None where it cannot be read (not Linux)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
