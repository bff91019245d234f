"""StepLoad: LOADTEST_STEP_USERS more users every LOADTEST_STEP_S, LOADTEST_STEPS times, then stop.

Add it to a run as a second locustfile:
`make loadtest ARGS="-f loadtests/locustfile.py,loadtests/shapes.py"`.
"""

from __future__ import annotations

from locust import LoadTestShape

from settings import LoadtestSettings


class StepLoad(LoadTestShape):
    """Each step holds its user count for step_s seconds, so every level gets its own stable figures."""

    def __init__(self) -> None:
        super().__init__()
        self.settings = LoadtestSettings()

    def tick(self) -> tuple[int, float] | None:
        s = self.settings
        step = int(self.get_run_time() // s.step_s)
        if step >= s.steps:
            return None
        return (step + 1) * s.step_users, float(s.step_users)
