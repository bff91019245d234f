"""The UI's settings are all documented in the project's .env.example."""

from __future__ import annotations

import re
from pathlib import Path

from settings import FrontendSettings

ROOT = Path(__file__).resolve().parents[2]


def test_every_ui_setting_is_documented_in_env_example() -> None:
    documented = set(re.findall(r"^#?\s*(FRONTEND_[A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))

    assert documented == {f"FRONTEND_{name.upper()}" for name in FrontendSettings.model_fields}
    assert all(field.description for field in FrontendSettings.model_fields.values())
