"""A replica keeps the heap that its requests free, instead of faulting it back in for the next request."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc and Linux")

KEEP = "from mlstack.server.tuning import keep_freed_memory\nassert keep_freed_memory()\n"

CHURN = """
import resource

def churn():  # what batches in flight do to the heap: megabytes of medium blocks, allocated, then freed
    for _ in range(100):
        blocks = [bytearray(50_000) for _ in range(40)]
        del blocks

churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

STARTED_REPLICA = """
import uvicorn
from fastapi.testclient import TestClient
from mlstack.server import launch
from mlstack.settings import Settings

served = []
uvicorn.Server.run = lambda server, sockets=None: served.append(server.config.app)  # no socket: the app
launch.serve(Settings(store_dir={store!r}, redis_url=None))  # the entry point `mlstack serve` runs
TestClient(served[0]).__enter__()  # startup, and up
"""

MMAPPED_BLOCKS = """
import ctypes

FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in FIELDS]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2
before = mallinfo2().hblks
block = bytearray(20 << 20)  # mapped on its own by default; from the heap below a 32 MiB threshold
print(mallinfo2().hblks - before)
"""


def run(code: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, check=True
    )
    return int(done.stdout.split()[-1])


def test_keeping_freed_memory_stops_the_page_faults_of_a_churning_heap() -> None:
    by_default = run(CHURN)
    kept = run(KEEP + CHURN)

    assert by_default > 20_000  # each round's 2 MB given back to the kernel, then faulted in again
    assert kept < 100


def test_a_replica_sets_the_thresholds_when_it_starts(trained_store: Path) -> None:
    started = STARTED_REPLICA.format(store=str(trained_store))

    assert run(MMAPPED_BLOCKS) == 1  # the probe: glibc's default maps a 20 MiB block on its own
    assert run(started + MMAPPED_BLOCKS) == 0
