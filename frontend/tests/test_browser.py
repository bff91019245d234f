"""End to end in headless Chromium through the gateway: log in, predict from the form and see why, upload a
CSV, see what each recommendation comes from."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from chromium import SCREENSHOTS, chromium
from mlstack.training.datasets import demo_dataset
from stack.native import NativeStack

pytestmark = [pytest.mark.browser, pytest.mark.stack]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


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


def test_predict_shows_why_as_a_chart_of_contributions(page: Page, ui_stack: NativeStack) -> None:
    row = {**typical_churn_row(ui_stack), "tenure_months": 2, "contract": "Month-to-month"}
    page.goto("/ui/")
    page.get_by_role("spinbutton", name="tenure_months").fill("2")
    page.get_by_role("button", name="Predict").click()

    expect(page.get_by_role("heading", name="Why")).to_be_visible(timeout=20_000)
    why = explain_churn(ui_stack, row)
    largest = max(why["contributions"], key=lambda c: abs(c["contribution"]))
    expect(
        page.get_by_text(f"Largest contribution: {largest['feature']} ({largest['contribution']:+.3f})")
    ).to_be_visible()
    expect(page.get_by_text("Method: linear; it adds up to the joblib pipeline's output")).to_be_visible()
    charts = page.locator("[data-testid='stVegaLiteChart']")
    expect(charts).to_have_count(2, timeout=20_000)  # the probabilities, then the contributions
    expect(charts.nth(1).locator("canvas, svg").first).to_be_visible(timeout=20_000)
    assert page.locator("[data-testid='stException']").count() == 0
    charts.nth(1).scroll_into_view_if_needed()
    snapshot(page, "predict-why")


def test_recommend_shows_the_films_each_recommendation_comes_from(page: Page, ui_stack: NativeStack) -> None:
    items = catalogue(ui_stack)
    liked = [i for i in items if i["genre"] == "Horror"][:5]
    user_id = f"ui-why-{uuid.uuid4().hex[:8]}"
    created = gateway(ui_stack, "POST", "/v1/users", "users", {"user_id": user_id, "events": likes(liked)})
    assert created.status_code == 201

    page.goto("/ui/recommend")
    field = page.get_by_label("User id")
    field.fill(user_id)
    field.press("Enter")

    expect(page.get_by_text("Because you liked")).to_be_visible(timeout=20_000)
    reasons = page.locator("[data-testid='stMarkdownContainer'] li")
    expect(reasons).to_have_count(10, timeout=20_000)  # one line per recommendation
    titles = {i["title"] for i in liked}
    for line in reasons.all_inner_texts():
        named = line.split(": ", 1)[1]
        assert any(title in named for title in titles), line  # every "because" is one of the liked films
    reasons.last.scroll_into_view_if_needed()
    snapshot(page, "recommend-because")


def typical_churn_row(stack: NativeStack) -> dict[str, Any]:
    manifest = gateway(stack, "GET", "/v1/models/churn", "predict").json()
    return {f["name"]: f["typical"] for f in manifest["inputs"]}


def explain_churn(stack: NativeStack, row: dict[str, Any]) -> Any:
    answer = gateway(stack, "POST", "/v1/models/churn:explain", "predict", {"instances": [row]})
    return answer.json()["explanations"][0]


def catalogue(stack: NativeStack) -> Any:
    return gateway(stack, "GET", "/v1/models/recommend", "predict").json()["recommender"]["items"]


def likes(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"event_id": i["item_id"], "item_id": i["item_id"], "type": "like"} for i in items]


def gateway(stack: NativeStack, method: str, path: str, scope: str, body: Any = None) -> httpx.Response:
    headers = {"X-API-Key": stack.key(scope)}
    return httpx.request(method, f"{stack.gateway_url}{path}", headers=headers, json=body, timeout=20)


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


def test_monitor_shows_the_drift_table_and_a_features_live_histogram(page: Page, drift_counted: int) -> None:
    page.goto("/ui/monitor")

    expect(page.get_by_role("heading", name="Drift: what is served")).to_be_visible(timeout=20_000)
    expect(page.get_by_text("live shares per training bin")).to_be_visible(timeout=20_000)
    table = page.locator("[data-testid='stDataFrame']").last
    expect(table).to_be_visible()
    expect(page.get_by_text("Rows served")).to_be_visible()
    histogram = page.locator("[data-testid='stVegaLiteChart']").last
    expect(histogram.locator("canvas, svg").first).to_be_visible(timeout=20_000)
    assert drift_counted >= 250
    assert page.locator("[data-testid='stException']").count() == 0
    table.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)  # let the chart draw before the screenshot
    snapshot(page, "monitor-drift")
