"""The run-state file `.run/stack.json` (docs/CONTRACT.md): how clients and tests find a stack."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FILE_NAME = "stack.json"


def write(run_dir: Path, state: dict[str, Any]) -> Path:
    """Written atomically and readable by its owner only: it may hold generated keys."""
    path = run_dir / FILE_NAME
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(state, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def read(run_dir: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads((run_dir / FILE_NAME).read_text())
        return state
    except FileNotFoundError:
        return None


def remove(run_dir: Path) -> None:
    (run_dir / FILE_NAME).unlink(missing_ok=True)


def timestamp(unix_time: float) -> str:
    """A time as the file writes it: UTC, whole seconds, ISO 8601."""
    return datetime.fromtimestamp(unix_time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def unix_time(stamp: str | None) -> float | None:
    return datetime.fromisoformat(stamp).timestamp() if stamp else None
