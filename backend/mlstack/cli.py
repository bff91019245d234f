"""`mlstack`: the model store's command line. `train` searches, evaluates and publishes a new version."""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mlstack.manifest import MODEL_NAME, Manifest
from mlstack.store import ModelStore
from mlstack.training.datasets import DEMO_SETS, demo_dataset
from mlstack.training.publish import TrainingRequest, frame_sha256, guess_task, train_and_publish


class UsageError(Exception):
    """A refusal the user can fix: printed without a traceback, exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except UsageError as exc:
        print(f"mlstack: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlstack", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="command")
    train = commands.add_parser("train", help="train, evaluate and publish a new model version")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--demo", choices=DEMO_SETS, help="a built-in synthetic data set")
    source.add_argument("--csv", type=Path, help="a CSV file with a header row")
    train.add_argument("--target", help="the column to predict (default: the demo set's)")
    train.add_argument("--model", help="model name in the store (default: the demo or CSV file name)")
    train.add_argument(
        "--task", choices=["classification", "regression"], help="default: guessed from the target"
    )
    train.add_argument("--rows", type=int, help="rows to generate for a demo set")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--search", choices=["fast", "full"], default="full", help="candidates per model family"
    )
    train.add_argument(
        "--allow-unknown-categories",
        action="store_true",
        help="let unseen categories through to the encoder (default: the API answers 422)",
    )
    train.add_argument("--no-promote", action="store_true", help="publish without moving CURRENT")
    train.add_argument(
        "--if-empty", action="store_true", help="do nothing if the model already has a version"
    )
    train.add_argument(
        "--store-dir", type=Path, help="model store root (default: BACKEND_STORE_DIR or model_store)"
    )
    train.set_defaults(handler=_train)
    return parser


def _train(args: argparse.Namespace) -> int:
    store = ModelStore(args.store_dir or _default_store_dir())
    request = _training_request(args)
    if args.if_empty and request.model in store.models() and store.current(request.model):
        print(f"{request.model}: already has version {store.current(request.model)}; nothing to do")
        return 0
    print(f"training {request.model} ({request.task}) on {request.source}: {len(request.frame)} rows")
    manifest = train_and_publish(request, store)
    _report(manifest, store, promoted=request.promote)
    return 0


def _training_request(args: argparse.Namespace) -> TrainingRequest:
    if args.demo:
        demo = demo_dataset(args.demo, args.rows, args.seed)
        frame, source, sha, description = demo.frame, demo.name, frame_sha256(demo.frame), demo.description
        target = args.target or demo.target
    else:
        frame, sha = _read_csv(args.csv)
        source, description, target = args.csv.name, f"Trained on {args.csv.name}", args.target
        if target is None:
            raise UsageError("--target is required with --csv")
    if target not in frame.columns:
        raise UsageError(f"target column {target!r} not found; columns: {', '.join(map(str, frame.columns))}")
    if args.demo and args.target and args.target != demo.target:
        frame = frame.drop(columns=[demo.target])  # the default target would leak the answer
    model = args.model or _model_name(args.demo or args.csv.stem)
    if not MODEL_NAME.match(model):
        raise UsageError(f"model name {model!r} must match {MODEL_NAME.pattern}")
    task = args.task or guess_task(frame[target].dropna())
    return TrainingRequest(
        model=model,
        frame=frame,
        target=target,
        source=source,
        task=task,
        data_sha256=sha,
        description=description,
        effort=args.search,
        seed=args.seed,
        reject_unknown=not args.allow_unknown_categories,
        promote=not args.no_promote,
    )


def _read_csv(path: Path) -> tuple[pd.DataFrame, str]:
    if not path.is_file():
        raise UsageError(f"CSV file not found: {path}")
    data = path.read_bytes()
    try:
        frame = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path.name} is not a readable CSV file: {exc}") from None
    return frame, hashlib.sha256(data).hexdigest()


def _model_name(stem: str) -> str:
    name = re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-_")
    return name if name and name[0].isalpha() else f"model-{name}"


def _default_store_dir() -> Path:
    from mlstack.settings import Settings  # reads .env only when no --store-dir is given

    return Settings().store_dir


def _report(manifest: Manifest, store: ModelStore, promoted: bool) -> None:
    shown = {k: v for k, v in manifest.metrics.items() if isinstance(v, float)}
    print(
        f"published {manifest.model} version {manifest.version} ({manifest.training.estimator}, "
        f"{manifest.training.seconds}s)" + (" and made it CURRENT" if promoted else "")
    )
    print("  held-out test: " + ", ".join(f"{k}={v:.4f}" for k, v in shown.items()))
    print(f"  {store.root / manifest.model / manifest.version}")


if __name__ == "__main__":
    sys.exit(main())
