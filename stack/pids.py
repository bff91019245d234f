"""Pids read back from the run-state file, checked before anything is signalled.

A recorded pid may be long dead and since given to another process, or be a zombie that an init which
does not reap (some containers) keeps in the table: only a live process that started when the file says
it did is ours.
"""

from __future__ import annotations

import os
from pathlib import Path

SAME_START_S = 2.0
"""Tolerance between a recorded start (whole seconds) and the kernel's."""


def started_at(pid: int) -> float | None:
    """When a live (not zombie) process started, in Unix time; None if there is no such process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # after "pid (comm)"
    except OSError:
        return None
    if fields[0] == "Z":
        return None
    return _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start, in ticks after boot


def is_ours(pid: int | None, recorded_start: float | None) -> bool:
    """A live process with this pid that started at the recorded time (any start when none is recorded)."""
    began = started_at(pid) if pid is not None else None
    if began is None:
        return False
    return recorded_start is None or abs(began - recorded_start) <= SAME_START_S


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise RuntimeError("no btime in /proc/stat")
