"""Synthetic demo data sets with a fixed seed: churn, card fraud and predictive maintenance.

Each has named, mixed-type features, missing values, class imbalance and a signal a model can find.
They are generated, never downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class DemoSet:
    """A generated table, its default target column and what it stands for."""

    name: str
    frame: pd.DataFrame
    target: str
    description: str
    targets: tuple[str, ...] = ()
    """Every column that is an answer, the default target included: none of them may be an input."""


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


def _with_missing(rng: np.random.Generator, values: pd.Series, share: float) -> pd.Series:
    """Blank out a share of the values, as real exports have."""
    mask = rng.random(len(values)) < share
    return values.mask(mask)


def _churn(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    tenure = rng.integers(0, 73, rows)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], rows, p=[0.55, 0.25, 0.20])
    internet = rng.choice(["DSL", "Fiber optic", "None"], rows, p=[0.35, 0.45, 0.20])
    payment = rng.choice(
        ["Electronic check", "Mailed check", "Bank transfer", "Credit card"], rows, p=[0.35, 0.2, 0.22, 0.23]
    )
    monthly = np.round(
        20 + 45 * (internet == "Fiber optic") + 25 * (internet == "DSL") + rng.gamma(2, 8, rows), 2
    )
    support_calls = rng.poisson(1.2 + 1.5 * (internet == "Fiber optic"), rows)
    senior = rng.random(rows) < 0.16
    products = rng.integers(1, 6, rows)
    logit = (
        -1.15
        - 0.045 * tenure
        + 1.4 * (contract == "Month-to-month")
        - 0.9 * (contract == "Two year")
        + 0.022 * (monthly - 65)
        + 0.35 * support_calls
        + 0.6 * (payment == "Electronic check")
        + 0.4 * senior
        - 0.15 * products
        + rng.normal(0, 0.6, rows)
    )
    frame = pd.DataFrame(
        {
            "tenure_months": tenure,
            "contract": contract,
            "internet_service": internet,
            "payment_method": payment,
            "monthly_charges": monthly,
            "total_charges": np.round(monthly * np.maximum(tenure, 1) * rng.uniform(0.9, 1.05, rows), 2),
            "support_calls": support_calls,
            "senior_citizen": senior,
            "num_products": products,
            "churned": (rng.random(rows) < _sigmoid(logit)).astype(int),
        }
    )
    frame["total_charges"] = _with_missing(rng, frame["total_charges"], 0.03)
    frame["payment_method"] = _with_missing(rng, frame["payment_method"], 0.02)
    return frame


def _fraud(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    category = rng.choice(
        ["grocery", "fuel", "online_retail", "travel", "electronics", "restaurants", "gambling"],
        rows,
        p=[0.28, 0.15, 0.2, 0.07, 0.1, 0.17, 0.03],
    )
    amount = np.round(rng.lognormal(3.4, 1.0, rows), 2)
    hour = rng.integers(0, 24, rows)
    card_present = rng.random(rows) < 0.6
    mismatch = rng.random(rows) < 0.05
    distance = np.round(rng.exponential(12, rows), 1)
    velocity = rng.poisson(0.8, rows)
    age_days = rng.integers(1, 3650, rows)
    night = (hour < 5) | (hour >= 23)
    logit = (
        -5.8
        + 1.1 * np.log1p(amount / 50)
        + 2.4 * mismatch
        + 1.4 * night
        + 0.8 * velocity
        + 1.6 * np.isin(category, ["electronics", "gambling", "online_retail"])
        - 2.0 * card_present
        + 0.02 * np.minimum(distance, 150)
        - 0.0008 * age_days
        + rng.normal(0, 0.3, rows)
    )
    frame = pd.DataFrame(
        {
            "amount": amount,
            "merchant_category": category,
            "hour": hour,
            "card_present": card_present,
            "country_mismatch": mismatch,
            "distance_from_home_km": distance,
            "velocity_1h": velocity,
            "account_age_days": age_days,
            "is_fraud": (rng.random(rows) < _sigmoid(logit)).astype(int),
        }
    )
    frame["distance_from_home_km"] = _with_missing(rng, frame["distance_from_home_km"], 0.04)
    return frame


def _maintenance(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    machine = rng.choice(["L", "M", "H"], rows, p=[0.5, 0.3, 0.2])
    wear = rng.integers(0, 250, rows)
    since_service = rng.integers(0, 365, rows)
    temperature = np.round(rng.normal(70, 6, rows) + 0.02 * wear, 1)
    vibration = np.round(rng.gamma(2.0, 0.6, rows) + 0.004 * wear + 0.003 * since_service, 3)
    rpm = np.round(rng.normal(1500, 150, rows))
    torque = np.round(np.clip(rng.normal(40, 9, rows), 3, None), 1)
    pressure = np.round(rng.normal(5.0, 0.6, rows), 2)
    stress = (
        0.012 * wear
        + 0.006 * since_service
        + 0.09 * (temperature - 70)
        + 1.3 * (vibration - 1.2)
        + 0.035 * (torque - 40)
        + 0.5 * (machine == "L")
        - 0.3 * (machine == "H")
    )
    rul = np.clip(np.round(175 * np.exp(-0.45 * stress) + rng.normal(0, 3, rows), 1), 0, None)
    frame = pd.DataFrame(
        {
            "machine_type": machine,
            "temperature_c": temperature,
            "vibration_rms": vibration,
            "pressure_bar": pressure,
            "rpm": rpm,
            "torque_nm": torque,
            "tool_wear_minutes": wear,
            "days_since_service": since_service,
            "remaining_useful_life_days": rul,
            "failure_within_7d": (rul <= 7).astype(int),
        }
    )
    frame["vibration_rms"] = _with_missing(rng, frame["vibration_rms"], 0.03)
    frame["temperature_c"] = _with_missing(rng, frame["temperature_c"], 0.02)
    return frame


@dataclass(frozen=True)
class _Spec:
    generate: Callable[[np.random.Generator, int], pd.DataFrame]
    targets: tuple[str, ...]
    """The default target first."""
    rows: int
    description: str


SPECS = {
    "churn": _Spec(_churn, ("churned",), 5000, "Telecom customers; will the customer cancel?"),
    "fraud": _Spec(_fraud, ("is_fraud",), 20000, "Card transactions; is it fraud? (about 1-2% are)"),
    "maintenance": _Spec(
        _maintenance,
        ("failure_within_7d", "remaining_useful_life_days"),
        6000,
        "Machine sensor readings; failure within 7 days (remaining_useful_life_days: regression target)",
    ),
}
DEMO_SETS = tuple(SPECS)


def demo_dataset(name: str, rows: int | None = None, seed: int = 0) -> DemoSet:
    """A demo set by name; the same name, rows and seed always give the same table."""
    if name not in SPECS:
        raise KeyError(f"unknown demo set {name!r}; choose one of {', '.join(DEMO_SETS)}")
    spec = SPECS[name]
    frame = spec.generate(np.random.default_rng(seed), rows or spec.rows)
    description = f"Synthetic demo data: {spec.description}"
    return DemoSet(name, frame, spec.targets[0], description, spec.targets)
