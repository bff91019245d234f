"""The README stays true: its example request is valid against the real stack, its commands exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from stack.native import NativeStack

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


@pytest.mark.stack
def test_the_readme_curl_example_is_a_valid_prediction(stack: NativeStack) -> None:
    body = json.loads(re.search(r"churn:predict -d '(.*?)'", README, re.S).group(1))  # type: ignore[union-attr]  # no match fails the test, as it should
    answer = httpx.post(
        f"{stack.gateway_url}/v1/models/churn:predict", json=body, headers={"X-API-Key": stack.key("predict")}
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0] in (0, 1)


def test_the_readme_starts_with_the_two_commands() -> None:
    first_block = README.split("```")[1]
    makefile = (ROOT / "Makefile").read_text()

    assert [line.split()[:2] for line in first_block.strip().splitlines()[1:]] == [
        ["make", "start"],
        ["make", "test"],
    ]
    assert re.search(r"^start:", makefile, re.M)
    assert re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
