"""End to end in headless Chromium through the gateway: log in, predict from the form, upload a CSV."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from mlstack.training.datasets import demo_dataset
from stack.native import NativeStack

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",  # no network here
]
pytestmark = [pytest.mark.browser, pytest.mark.stack]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, ui_stack: NativeStack) -> Iterator[Page]:
    login = ui_stack.options.ui_login
    assert login is not None
    context = browser.new_context(
        http_credentials={"username": login.user, "password": login.password},
        viewport={"width": 1300, "height": 1000},
        base_url=ui_stack.gateway_url,
    )
    page = context.new_page()
    yield page
    context.close()


def snapshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def test_the_ui_asks_for_a_login(browser: Browser, ui_stack: NativeStack) -> None:
    context = browser.new_context()
    response = context.request.get(f"{ui_stack.gateway_url}/ui/")
    status, challenge = response.status, response.headers.get("www-authenticate", "")
    context.close()

    assert status == 401
    assert challenge.startswith("Basic")


def test_predict_from_the_churn_form(page: Page) -> None:
    page.goto("/ui/")
    page.get_by_role("spinbutton", name="tenure_months").fill("2")
    page.get_by_role("button", name="Predict").click()

    expect(page.get_by_text("Prediction:")).to_be_visible(timeout=20_000)
    expect(page.get_by_text("Probability per class")).to_be_visible()
    expect(page.locator("[data-testid='stVegaLiteChart']").first).to_be_visible()
    snapshot(page, "predict")


def test_upload_a_csv_on_the_batch_page(page: Page, tmp_path: Path) -> None:
    csv = tmp_path / "customers.csv"
    demo_dataset("churn", rows=40, seed=9).frame.drop(columns=["churned"]).to_csv(csv, index=False)
    page.goto("/ui/batch")
    page.locator("input[type='file']").set_input_files(str(csv))
    expect(page.get_by_text("40 rows ready.")).to_be_visible(timeout=20_000)
    page.get_by_role("button", name="Predict all rows").click()

    expect(page.get_by_text("40 predictions from churn version 1")).to_be_visible(timeout=20_000)
    expect(page.get_by_role("button", name="Download CSV")).to_be_visible()
    snapshot(page, "batch")


@pytest.mark.parametrize(("path", "heading"), [("/ui/models", "Models"), ("/ui/monitor", "Monitor")])
def test_models_and_monitor_pages_render(page: Page, path: str, heading: str) -> None:
    page.goto(path)

    expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=20_000)
    page.wait_for_timeout(1500)  # let the charts draw before the screenshot
    assert page.locator("[data-testid='stException']").count() == 0
    snapshot(page, heading.lower())


def test_explore_draws_distributions_target_relations_and_correlations(page: Page) -> None:
    page.goto("/ui/explore")

    expect(page.get_by_role("heading", name="Explore")).to_be_visible(timeout=20_000)
    expect(page.get_by_role("heading", name="Correlations between numeric features")).to_be_visible()
    charts = page.locator("[data-testid='stVegaLiteChart']")
    expect(charts).to_have_count(3, timeout=20_000)
    for i in range(3):
        expect(charts.nth(i).locator("canvas, svg").first).to_be_visible(timeout=20_000)
    assert page.locator("[data-testid='stException']").count() == 0
    snapshot(page, "explore")
