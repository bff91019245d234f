"""Promote, roll back, canary and delete: the store's pointer files and every refusal, for CLI and HTTP alike.

Besides CURRENT, a model folder may hold HISTORY (the versions that were current before, oldest first)
and CANARY ({"version": ..., "percent": ...}). Each is replaced atomically; versions never change.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlstack.errors import Conflict, MalformedRequest
from mlstack.store.manifest import Manifest
from mlstack.store.model_store import ModelStore

HISTORY_FILE = "HISTORY"
CANARY_FILE = "CANARY"
LOWER_IS_BETTER = {"rmse", "mae"}


@dataclass(frozen=True)
class Canary:
    version: str
    percent: float


def primary_metric(manifest: Manifest) -> tuple[str, float] | None:
    """The figure two versions are compared on: the one the search optimised, measured on held-out data."""
    scoring = str(manifest.metrics.get("cv_scoring", ""))
    name = {
        "average_precision": "pr_auc",
        "neg_root_mean_squared_error": "rmse",
        "ndcg_at_10": "ndcg_at_10",
    }.get(scoring, "roc_auc")
    value = manifest.metrics.get(name)
    return (name, float(value)) if isinstance(value, int | float) else None


class Lifecycle:
    """Operations on one store. Every method verifies what it points at before it moves a pointer."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store

    def promote(self, model: str, version: str, force: bool = False) -> str | None:
        """Make `version` current; returns the previous current. Refuses a failing or a worse version."""
        candidate = self.store.verify(model, version)
        previous = self.store.current(model)
        if previous == version:
            return previous
        if previous is not None and not force:
            self._refuse_if_worse(candidate, self.store.manifest(model, previous))
        if previous is not None:
            self._write(model, HISTORY_FILE, "".join(f"{v}\n" for v in [*self.history(model), previous]))
        self.store.set_current(model, version)
        return previous

    def rollback(self, model: str) -> tuple[str | None, str]:
        """Back to the version that was current before; returns (from, to)."""
        history = self.history(model)
        if not history:
            raise Conflict(f"model '{model}' has no earlier current version to roll back to")
        target = history[-1]
        self.store.verify(model, target)
        previous = self.store.current(model)
        self.store.set_current(model, target)
        self._write(model, HISTORY_FILE, "".join(f"{v}\n" for v in history[:-1]))
        return previous, target

    def history(self, model: str) -> list[str]:
        path = self.store.root / model / HISTORY_FILE
        versions = self.store.versions(model)
        lines = path.read_text().split() if path.is_file() else []
        return [v for v in lines if v in versions]

    def canary(self, model: str) -> Canary | None:
        path = self.store.root / model / CANARY_FILE
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        return Canary(str(data["version"]), float(data["percent"]))

    def set_canary(self, model: str, version: str, percent: float) -> None:
        if not 0 < percent <= 100:
            raise MalformedRequest("percent: must be more than 0 and at most 100")
        self.store.verify(model, version)
        if version == self.store.current(model):
            raise Conflict(f"version '{version}' is already current; a canary must be another version")
        self._write(model, CANARY_FILE, json.dumps({"version": version, "percent": percent}) + "\n")

    def clear_canary(self, model: str) -> None:
        self.store.versions(model)  # 404 for an unknown model
        (self.store.root / model / CANARY_FILE).unlink(missing_ok=True)

    def delete(self, model: str, version: str) -> None:
        self.store.manifest(model, version)  # 404 when it does not exist
        canary = self.canary(model)
        if version == self.store.current(model) or (canary and canary.version == version):
            raise Conflict(f"version '{version}' is current or canary; move them first")
        path = self.store.root / model / version
        for child in path.iterdir():
            child.chmod(0o644)
        shutil.rmtree(path)
        self._write(model, HISTORY_FILE, "".join(f"{v}\n" for v in self.history(model)))

    def _refuse_if_worse(self, candidate: Manifest, current: Manifest) -> None:
        new, old = primary_metric(candidate), primary_metric(current)
        if new is None or old is None or new[0] != old[0]:
            return
        name, better = new[0], (new[1] < old[1]) if new[0] in LOWER_IS_BETTER else (new[1] > old[1])
        if not better and new[1] != old[1]:
            raise Conflict(
                f"version '{candidate.version}' has {name} {new[1]:.4f}, worse than current version "
                f"'{current.version}' ({old[1]:.4f}); use force to promote it anyway"
            )

    def _write(self, model: str, name: str, text: str) -> None:
        folder = self.store.root / model
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", dir=folder)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, Path(folder) / name)
