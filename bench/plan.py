"""What one run measures: cells (a stack configuration, a request shape, a number of connections)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.stacks import Config

LOADS = {
    "ceiling": "GET /v2 (no model work)",
    "miss1": "1 row, cache miss",
    "hit1": "1 row, cache hit",
    "batch100": "100 rows, cache misses",
    "rec": "top-10 recommendation for 3 random liked items, cache misses",
}
ROWS = {"ceiling": 0, "miss1": 1, "hit1": 1, "batch100": 100, "rec": 1}
MAIN = Config(replicas=2, batching=True, onnx=True)
REFERENCE_CONNECTIONS = 16  # the targets are at 16 connections
ROUNDS = 2
"""Every section is measured in rounds, every other one in reverse (stacks and cells alike), its stacks
running side by side: each target's ratio compares cells of one section, and a machine that drifts over
minutes (10-30%, up to 2× within the hour) then weighs on each of them alike."""


@dataclass(frozen=True)
class Cell:
    section: str
    config: Config
    load: str
    connections: int
    peer: str = ""
    """Set for a peer's cell (config is then unused)."""


def full(connections: tuple[int, ...] = (1, 16, 64), replicas: tuple[int, ...] = (1, 2, 4)) -> list[Cell]:
    c16 = REFERENCE_CONNECTIONS
    cells = [Cell("load", MAIN, load, c) for load in LOADS if load != "rec" for c in connections]
    cells.append(Cell("load", MAIN, "rec", REFERENCE_CONNECTIONS))  # beside the 1-row predictions
    wide = tuple(c for c in connections if c >= c16) or (c16,)
    for batching, onnx in ((False, True), (True, False), (False, False)):
        config = Config(MAIN.replicas, batching, onnx)
        cells += [Cell("batching and runtime", config, "miss1", c) for c in wide]
        if batching and not onnx:
            cells.append(Cell("batching and runtime", config, "batch100", c16))
    # What the cache costs: the peers cache nothing, and every cached row is a lookup and a SET in Redis.
    uncached = Config(MAIN.replicas, MAIN.batching, MAIN.onnx, cache=False)
    cells += [Cell("batching and runtime", uncached, load, c16) for load in ("miss1", "batch100")]
    # The main configuration again, beside the others: the scaling ratios compare stacks measured in turns,
    # not a quarter of an hour apart (runs on a shared machine drift by 10-30%, more than the margin sought).
    for n in replicas:
        config = Config(n, MAIN.batching, MAIN.onnx)
        cells += [Cell("replicas", config, load, c16) for load in ("ceiling", "miss1", "hit1")]
    return cells


PEER_CELLS = [("miss1", 16), ("miss1", 64), ("batch100", 16)]


def smoke() -> list[Cell]:
    """For the test suite: one small stack, two short cells; then 1 and 2 replicas in turns."""
    config = Config(replicas=1, batching=True, onnx=True)
    scaling = [Cell("replicas", Config(n, True, True), "miss1", 16) for n in (1, 2)]
    return [Cell("load", config, "ceiling", 16), Cell("load", config, "miss1", 16), *scaling]


def by_stack(cells: list[Cell]) -> list[tuple[Config, list[Cell]]]:
    """Cells grouped so that each stack starts once per section, in the plan's order."""
    groups: dict[tuple[str, Config], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.section, cell.config), []).append(cell)
    return [(config, group) for (_, config), group in groups.items()]
