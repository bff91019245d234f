"""`mlstack profile`: a data set explored without training, a summary printed and an offline HTML report."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlstack.cli import main
from mlstack.profile.schema import Profile
from mlstack.training.datasets import demo_dataset

from .test_profile import assert_matches_pandas


def customers_csv(folder: Path) -> Path:
    """Numbers, categories, a boolean, missing values in each kind, and a yes/no target."""
    frame = demo_dataset("churn", rows=1200, seed=4).frame
    rng = np.random.default_rng(4)
    frame["monthly_charges"] = frame["monthly_charges"].mask(rng.random(len(frame)) < 0.05)
    frame["contract"] = frame["contract"].mask(rng.random(len(frame)) < 0.03)
    frame["churned"] = frame["churned"].map({0: "no", 1: "yes"})
    path = folder / "customers.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("profile")
    csv = customers_csv(folder)
    html, json = folder / "report.html", folder / "profile.json"
    assert (
        main(["profile", "--csv", str(csv), "--target", "churned", "--out", str(html), "--json", str(json)])
        == 0
    )
    return csv, html, json


def test_the_profile_of_a_csv_has_pandas_figures(report: tuple[Path, Path, Path]) -> None:
    csv, _, json = report
    frame = pd.read_csv(csv, keep_default_na=False, na_values=[""])
    profile = Profile.model_validate_json(json.read_bytes())

    assert (profile.task, profile.focus_class, profile.source) == ("classification", "yes", "customers.csv")
    for feature in profile.features:
        assert_matches_pandas(feature, frame[feature.name])


def test_the_summary_names_every_feature_and_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = customers_csv(tmp_path)

    assert main(["profile", "--csv", str(csv), "--target", "churned", "--out", str(tmp_path / "r.html")]) == 0

    out = capsys.readouterr().out
    assert out.startswith("customers.csv: 1,200 rows, 9 features, target churned (classification: no ")
    assert re.search(r"^contract +string +3\.\d% +3 ", out, re.MULTILINE)
    assert re.search(r"^tenure_months +integer +0\.0% +\d+ +0 \.\. \d+ \.\. 72 ", out, re.MULTILINE)
    assert "strongest correlations (Pearson): tenure_months ~ total_charges" in out
    assert out.rstrip().endswith(f"report: {tmp_path / 'r.html'}")


def test_the_report_is_one_file_that_asks_for_nothing(report: tuple[Path, Path, Path]) -> None:
    html = report[1].read_text()

    assert "<svg" in html
    assert not re.search(r"https?://|<script|<link|<img|@import|url\(", html)


def test_the_report_for_a_demo_set_goes_to_a_default_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    assert (
        main(["profile", "--demo", "maintenance", "--target", "remaining_useful_life_days", "--rows", "300"])
        == 0
    )

    assert "Mean remaining_useful_life_days" in (tmp_path / "maintenance-profile.html").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "nope"], "target column 'nope' not found"),
        ([], "--target is required with --csv"),
        (["--target", "churned", "--task", "regression"], "target 'churned' is not numeric"),
    ],
)
def test_refusals_name_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    csv = customers_csv(tmp_path)

    assert main(["profile", "--csv", str(csv), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--csv", str(tmp_path / "none.csv"), "--target", "y"]) == 2
    assert "CSV file not found" in capsys.readouterr().err
