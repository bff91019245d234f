"""`make bench PEERS=1`: BentoML, MLServer and LitServe serving the same model.joblib with their batching on.

Each peer gets a side environment `.venv-peers/<name>` from its pinned file in bench/peers/ (installed from
PyPI on first use, gitignored); its small launcher is the only code of ours it runs. Peers are loaded
directly, without a gateway, by the same wrk script and rows as the stack.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import wrk
from bench.bodies import TOKEN, row
from stack.procs import Process, free_port, http_ok, wait_for

ROOT = Path(__file__).resolve().parents[1]
PEERS_DIR = Path(__file__).with_name("peers")
VENVS = ROOT / ".venv-peers"


@dataclass(frozen=True)
class Peer:
    name: str
    path: str
    """The prediction route."""
    health: str
    command: Callable[[Path, Path, int, Path], list[str]]
    """(venv bin folder, model file, port, work folder) → the server's command line."""
    first_probability: Callable[[Any], float]
    """The answer's last-class probability of the first row."""
    v2: bool = False


def _mlserver(bin_dir: Path, model: Path, port: int, work: Path) -> list[str]:
    script = PEERS_DIR / "mlserver_settings.py"
    ports = [str(p) for p in (port, free_port(), free_port())]  # HTTP, gRPC, metrics
    subprocess.run([str(bin_dir / "python"), str(script), str(model), *ports, str(work)], check=True)
    return [str(bin_dir / "mlserver"), "start", str(work)]


PEERS = [
    Peer(
        "LitServe",
        "/predict",
        "/health",
        lambda b, m, p, _: [str(b / "python"), str(PEERS_DIR / "litserve_server.py"), str(m), str(p)],
        lambda answer: answer["probabilities"][0][-1],
    ),
    Peer(
        "MLServer",
        "/v2/models/churn/infer",
        "/v2/models/churn/ready",
        _mlserver,
        lambda answer: answer["outputs"][0]["data"][answer["outputs"][0]["shape"][-1] - 1],
        v2=True,
    ),
    Peer(
        "BentoML",
        "/predict",
        "/readyz",
        lambda b, _m, p, _w: [
            str(b / "bentoml"),
            "serve",
            "bentoml_service:Churn",
            "--working-dir",
            str(PEERS_DIR),
            "--host",
            "127.0.0.1",
            "--port",
            str(p),
        ],
        lambda answer: answer[0][-1],
    ),
]


def environment(peer: Peer) -> Path:
    """The peer's side venv, installed or brought up to date with its pinned requirements."""
    requirements = PEERS_DIR / f"{peer.name.lower()}.txt"
    venv = VENVS / peer.name.lower()
    stamp, want = venv / ".requirements.sha256", hashlib.sha256(requirements.read_bytes()).hexdigest()
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if not stamp.exists() or stamp.read_text() != want:
        print(f"bench: installing {peer.name} into {venv.relative_to(ROOT)} (once)", file=sys.stderr)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(requirements)]
        subprocess.run(pip, check=True)
        stamp.write_text(want)
    return venv / "bin"


def body(peer: Peer, inputs: list[dict[str, Any]], count: int) -> str:
    """The same rows the stack gets (one varied number feature), in the peer's protocol."""
    rows = [row(inputs, vary=True) for _ in range(count)]
    if not peer.v2:
        return json.dumps({"instances": rows})
    types = {"number": "FP64", "integer": "INT64", "boolean": "BOOL", "string": "BYTES"}
    columns = [
        {
            "name": f["name"],
            "shape": [count],
            "datatype": types[f["type"]],
            "data": [r[f["name"]] for r in rows],
        }
        for f in inputs
    ]
    return json.dumps(
        {"parameters": {"content_type": "pd"}, "inputs": columns, "outputs": [{"name": "predict_proba"}]}
    )


def measure(
    model: Path,
    inputs: list[dict[str, Any]],
    cells: list[tuple[str, int]],
    duration: float,
    out: Path,
    env: dict[str, str],
) -> list[tuple[str, str, int, wrk.Figures]]:
    """(peer, load, connections, figures) per peer and cell; a peer that fails is reported and skipped."""
    results = []
    for peer in PEERS:
        try:
            results += _one(peer, model, inputs, cells, duration, out, env)
        except (subprocess.CalledProcessError, RuntimeError, TimeoutError) as exc:
            print(f"bench: {peer.name} not measured: {exc}", file=sys.stderr)
    return results


def _one(
    peer: Peer,
    model: Path,
    inputs: list[dict[str, Any]],
    cells: list[tuple[str, int]],
    duration: float,
    out: Path,
    env: dict[str, str],
) -> list[tuple[str, str, int, wrk.Figures]]:
    bin_dir = environment(peer)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix=f"bench-{peer.name.lower()}-") as work:
        command = peer.command(bin_dir, model, port, Path(work))  # files a peer writes stay in `work`
        log = out / "logs" / f"{peer.name.lower()}.log"
        server = Process(
            "peer", peer.name, command, log, port=port, env={**env, "PEER_MODEL": str(model)}, cwd=Path(work)
        )
        server.start()
        try:
            wait_for(lambda: http_ok(f"http://127.0.0.1:{port}{peer.health}"), peer.name, 180, server)
            files = {}
            for load, count in (("miss1", 1), ("batch100", 100)):
                files[load] = out / "bodies" / f"{peer.name.lower()}-{load}.json"
                files[load].parent.mkdir(parents=True, exist_ok=True)
                files[load].write_text(body(peer, inputs, count))
            url = f"http://127.0.0.1:{port}{peer.path}"
            check_answer(peer, url, files["miss1"], model, inputs)
            wrk.run(url, "-", 16, 1.0, files["miss1"], base=800_000_000)  # warm-up
            found = []
            for i, (load, connections) in enumerate(cells):
                figures = wrk.run(url, "-", connections, duration, files[load], base=(i + 1) * 10_000_000)
                print(
                    f"bench: {peer.name}, {load} at {connections}: {figures.rate:,.0f} req/s", file=sys.stderr
                )
                found.append((peer.name, load, connections, figures))
            return found
        finally:
            server.stop()
            with contextlib.suppress(ProcessLookupError):  # its workers, in the session it leads
                os.killpg(server.pid, signal.SIGKILL)


def check_answer(peer: Peer, url: str, body_file: Path, model: Path, inputs: list[dict[str, Any]]) -> None:
    """The peer answers what the pipeline says in process, or it is not measured."""
    import joblib
    import pandas as pd

    text = body_file.read_text().replace(f'"{TOKEN}"', "1234.5")
    request = urllib.request.Request(url, text.encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        served = peer.first_probability(json.load(response))
    values = row(inputs, vary=True)
    frame = pd.DataFrame([{k: 1234.5 if v == TOKEN else v for k, v in values.items()}])
    expected = float(joblib.load(model).predict_proba(frame)[0][-1])
    if abs(served - expected) > 1e-6:
        raise RuntimeError(f"{peer.name} answered {served}, the pipeline in process {expected}")
