"""A systemd unit that runs `python -m stack up` from this checkout, for those who let systemd own it.

Generated, never kept as a copy: its paths are this checkout's and this interpreter's.
"""

from __future__ import annotations

import os
import pwd
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def unit(user_unit: bool = False) -> str:
    """The unit file's text; `user_unit` for `systemctl --user` (no User=, started with the session)."""
    owner = "" if user_unit else f"User={pwd.getpwuid(os.geteuid()).pw_name}\n"
    return f"""\
# Made by `python -m stack systemd-unit{" --user" if user_unit else ""}`; make it again rather than edit it.
[Unit]
Description=mlstack, natively: nginx gateway, uvicorn replicas, Redis, Streamlit UI
Documentation=file://{ROOT / "README.md"}
After=network.target

[Service]
Type=exec
{owner}WorkingDirectory={ROOT}
ExecStart={sys.executable} -m stack up
Environment=PYTHONUNBUFFERED=1
# The start command supervises its processes (restart with backoff, failed after repeated exits);
# systemd restarts the start command itself if it dies, and it first stops what its predecessor left.
Restart=on-failure
RestartSec=2
# SIGTERM to the start command only: it stops its processes in order. Whatever is left then gets SIGKILL.
KillMode=mixed
TimeoutStopSec=60

[Install]
WantedBy={"default.target" if user_unit else "multi-user.target"}
"""
