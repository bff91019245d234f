"""Pass or fail: when the run ends, a broken threshold (fail ratio, p95, p99) sets a non-zero exit code."""

from __future__ import annotations

import logging

from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from settings import LoadtestSettings

log = logging.getLogger("loadtests.thresholds")
THRESHOLD_EXIT_CODE = 3  # as locust-plugins' checks; Locust itself exits 1 when any request failed


def broken(environment: Environment, settings: LoadtestSettings) -> list[str]:
    """Each broken threshold, as a sentence; empty when the run passes."""
    total = environment.stats.total
    found = []
    if total.num_requests == 0:
        return ["no request was made"]
    if environment.runner is not None and environment.runner.exceptions:
        found.append(f"{len(environment.runner.exceptions)} kinds of exception in the user code")
    if total.fail_ratio > settings.max_fail_ratio:
        found.append(f"failure ratio {total.fail_ratio:.4f} > {settings.max_fail_ratio}")
    for share, limit in ((0.95, settings.p95_ms), (0.99, settings.p99_ms)):
        value = total.get_response_time_percentile(share)
        if value > limit:
            found.append(f"p{share * 100:.0f} {value:.0f} ms > {limit:g} ms")
    return found


def install(settings: LoadtestSettings) -> None:
    """Judge the run when it ends. The fail-ratio threshold replaces Locust's "any failure exits 1"."""

    @events.quitting.add_listener
    def _check(environment: Environment, **_: object) -> None:
        if isinstance(environment.runner, WorkerRunner):
            return  # a worker holds part of the figures; the master judges
        problems = broken(environment, settings)
        for problem in problems:
            log.error("threshold broken: %s", problem)
        if not problems:
            log.info("thresholds met (fail ratio, p95, p99)")
        environment.process_exit_code = THRESHOLD_EXIT_CODE if problems else 0
