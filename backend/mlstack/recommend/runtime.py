"""A loaded recommendation model version behind the Runtime interface, beside the tabular runtimes."""

from __future__ import annotations

from typing import Any

from mlstack.recommend.model import Recommender
from mlstack.serving.runtime import Prediction
from mlstack.serving.validation import Rows
from mlstack.store.manifest import Manifest

DEFAULT_K = 10


class RecommenderRuntime:
    """The artifact's scorer; `predict` answers rows of (user_id, k) without user data: popular items.
    Personal recommendations go through recommendations.Recommendations, which reads the user's history."""

    engine = "joblib"
    inline = False

    def __init__(self, manifest: Manifest, artifact: dict[str, Any]) -> None:
        self.manifest = manifest
        self.model = Recommender(artifact)
        self.items = frozenset(self.model.index)
        self.genres = frozenset(self.model.genre_names)

    def predict(self, rows: Rows) -> Prediction:
        k_index = [f.name for f in rows.features].index("k")
        ranked = [self.model.popular(int(row[k_index] or DEFAULT_K)) for row in rows.values]
        return Prediction(labels=[r.items for r in ranked])


def is_recommender(runtime: object) -> bool:
    return isinstance(runtime, RecommenderRuntime)
