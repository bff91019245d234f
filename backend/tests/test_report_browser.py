"""The profile report in headless Chromium: it draws every chart and sends no request but its own file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Route

from chromium import SCREENSHOTS, chromium
from mlstack.cli import main
from mlstack.profile.schema import Profile

from .test_cli_profile import customers_csv

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def test_the_report_renders_its_charts_offline(browser: Browser, tmp_path: Path) -> None:
    html, json = tmp_path / "report.html", tmp_path / "profile.json"
    csv = customers_csv(tmp_path)
    assert (
        main(["profile", "--csv", str(csv), "--target", "churned", "--out", str(html), "--json", str(json)])
        == 0
    )
    profile = Profile.model_validate_json(json.read_bytes())
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    requested: list[str] = []

    def refuse_the_network(route: Route) -> None:
        requested.append(route.request.url)
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", refuse_the_network)
    page = context.new_page()
    page.goto(html.as_uri())
    charts = page.locator("svg[role='img']")
    boxes = [charts.nth(i).bounding_box() for i in range(charts.count())]
    marks = page.locator("svg[role='img'] rect").count()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "profile-report.png", full_page=True)
    context.close()

    assert requested == [html.as_uri()]
    # target, ranking, two per feature (values, target relation), Pearson and Spearman heatmaps
    assert len(boxes) == 2 + 2 * len(profile.features) + 2
    assert all(box is not None and box["width"] > 100 and box["height"] > 20 for box in boxes)
    assert marks > 200
