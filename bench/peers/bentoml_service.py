"""BentoML serving model.joblib with adaptive batching: `bentoml serve bentoml_service:Churn` (side venv);
the model's path comes in PEER_MODEL."""

import os

import bentoml
import joblib
import pandas as pd


@bentoml.service(workers=2)
class Churn:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["PEER_MODEL"])

    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=1000)
    def predict(self, instances: list[dict]) -> list[list[float]]:
        return self.model.predict_proba(pd.DataFrame(instances)).tolist()
