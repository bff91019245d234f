"""MLServer's configuration for model.joblib: its scikit-learn runtime with adaptive batching, 2 workers.

`python mlserver_settings.py MODEL PORT FOLDER` writes settings.json and model-settings.json into FOLDER;
then `mlserver start FOLDER` serves V2 at /v2/models/churn/infer.
"""

import json
import sys
from pathlib import Path

model, port, folder = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
folder.mkdir(parents=True, exist_ok=True)
settings = {"http_port": port, "grpc_port": port + 1, "metrics_port": port + 2, "parallel_workers": 2}
(folder / "settings.json").write_text(json.dumps(settings))
model_settings = {
    "name": "churn",
    "implementation": "mlserver_sklearn.SKLearnModel",
    "parameters": {"uri": model},
    "max_batch_size": 32,
    "max_batch_time": 0.01,
}
(folder / "model-settings.json").write_text(json.dumps(model_settings))
