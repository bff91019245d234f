"""LitServe serving model.joblib with its batching: `python litserve_server.py MODEL PORT` (side venv)."""

import sys

import joblib
import litserve as ls
import pandas as pd


class Churn(ls.LitAPI):
    def setup(self, device):
        self.model = joblib.load(sys.argv[1])

    def decode_request(self, request):
        return request["instances"]

    def batch(self, inputs):
        return inputs  # one list of rows per request; predict joins them

    def predict(self, requests):
        sizes = [len(rows) for rows in requests]
        proba = self.model.predict_proba(pd.DataFrame([row for rows in requests for row in rows])).tolist()
        out, start = [], 0
        for size in sizes:
            out.append(proba[start : start + size])
            start += size
        return out

    def unbatch(self, output):
        return output

    def encode_response(self, output):
        return {"probabilities": output}


if __name__ == "__main__":
    api = Churn(max_batch_size=64, batch_timeout=0.005)
    ls.LitServer(api, accelerator="cpu", workers_per_device=2).run(
        host="127.0.0.1", port=int(sys.argv[2]), generate_client_file=False
    )
