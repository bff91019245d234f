"""The explainer a loaded version gets: its TabularExplainer, or an Unavailable that says why not.

Never raises: a version that cannot be explained (published before explanations existed, a refused
model, a broken explain.json) still predicts; only `:explain` answers 409 with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mlstack.errors import ArtifactRejected, NotExplainable
from mlstack.explain.artifact import decode
from mlstack.explain.engine import TabularExplainer
from mlstack.explain.errors import Unexplainable
from mlstack.explain.result import Explained
from mlstack.serving.validation import Rows
from mlstack.store.manifest import Artifact, Manifest

log = logging.getLogger("mlstack.explain")
BEFORE_EXPLANATIONS = "published before explanations existed; a new training run makes it explainable"


class Unavailable:
    """Stands in for the explainer of a version that has none."""

    method_name = None
    permutations = None

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def warm(self) -> None:
        return None

    def explain(self, rows: Rows) -> Explained:
        raise NotExplainable(f"this model version cannot be explained: {self.reason}")


Explainer = TabularExplainer | Unavailable


def explainer_for(
    manifest: Manifest, pipeline: Any, read: Callable[[Artifact], bytes], permutations: int
) -> Explainer:
    """`read` returns an artifact's bytes once their sha256 checks out (ModelStore.read_artifact)."""
    try:
        return _build(manifest, pipeline, read, permutations)
    except (Unexplainable, ArtifactRejected) as exc:
        if manifest.explanation is not None and manifest.explanation.method is not None:
            log.error("model %s version %s: no explanations: %s", manifest.model, manifest.version, exc)
        return Unavailable(str(exc))


def _build(
    manifest: Manifest, pipeline: Any, read: Callable[[Artifact], bytes], permutations: int
) -> Explainer:
    if manifest.task == "recommendation":
        raise Unexplainable("a recommender explains its recommendations by the items behind them")
    facts = manifest.explanation
    if facts is None:
        raise Unexplainable(BEFORE_EXPLANATIONS)
    if facts.method is None:
        raise Unexplainable(facts.reason or "refused at training")
    artifact = manifest.explain_artifact
    if artifact is None:
        raise Unexplainable("its explanation data (explain.json) is not listed in the manifest")
    data = decode(read(artifact), list(manifest.inputs))
    explainer = TabularExplainer(pipeline, list(manifest.inputs), manifest.is_classifier, data, permutations)
    if explainer.method_name != facts.method:
        raise Unexplainable(f"the manifest says {facts.method}, the pipeline needs {explainer.method_name}")
    return explainer
