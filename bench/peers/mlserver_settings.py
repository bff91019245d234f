"""MLServer's configuration for model.joblib: its scikit-learn runtime with adaptive batching, 2 workers.

`python mlserver_settings.py MODEL HTTP_PORT GRPC_PORT METRICS_PORT FOLDER` writes settings.json and
model-settings.json into FOLDER; then `mlserver start FOLDER` serves V2 at /v2/models/churn/infer.
"""

import json
import sys
from pathlib import Path

model, folder = sys.argv[1], Path(sys.argv[5])
http, grpc, metrics = (int(port) for port in sys.argv[2:5])
folder.mkdir(parents=True, exist_ok=True)
settings = {
    "host": "127.0.0.1",
    "http_port": http,
    "grpc_port": grpc,
    "metrics_port": metrics,
    "parallel_workers": 2,
}
(folder / "settings.json").write_text(json.dumps(settings))
model_settings = {
    "name": "churn",
    "implementation": "mlserver_sklearn.SKLearnModel",
    "parameters": {"uri": model},
    "max_batch_size": 32,
    "max_batch_time": 0.01,
}
(folder / "model-settings.json").write_text(json.dumps(model_settings))
