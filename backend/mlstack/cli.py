"""`mlstack`: the model store's command line. `train` searches, evaluates and publishes a new version;
`profile` explores a data set without training."""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from pydantic import ValidationError
from threadpoolctl import threadpool_limits

from mlstack.errors import ServingError
from mlstack.profile.build import build_profile
from mlstack.profile.report import render_html, summary
from mlstack.serving.lifecycle import Lifecycle, primary_metric
from mlstack.settings import Settings
from mlstack.store import signing
from mlstack.store.manifest import MODEL_NAME, Manifest
from mlstack.store.model_store import ModelStore
from mlstack.training.datasets import DEMO_SETS, demo_dataset
from mlstack.training.pipeline import infer_schema
from mlstack.training.publish import (
    TrainingRequest,
    clean_target,
    frame_sha256,
    guess_task,
    profile_bytes,
    train_and_publish,
)
from mlstack.training.recommend_cli import RECOMMEND_DEMO, train_recommender

MIN_ROWS = 50
DEFAULT_KEY_FILE = Path("keys/model-signing.key")
KEY_HELP = "private key file to sign with; - reads it from standard input (default: BACKEND_SIGNING_KEY_FILE)"
MIN_CLASS_ROWS = 5


T = TypeVar("T")


class UsageError(Exception):
    """A refusal the user can fix: printed without a traceback, exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage and the problem; keep main() returning
        return exc.code if isinstance(exc.code, int) else 2
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
    source.add_argument("--demo", choices=(*DEMO_SETS, RECOMMEND_DEMO), help="a built-in synthetic data set")
    source.add_argument("--csv", type=Path, help="a CSV file with a header row")
    train.add_argument("--target", help="the column to predict (default: the demo set's)")
    train.add_argument("--model", help="model name in the store (default: the demo or CSV file name)")
    train.add_argument(
        "--task", choices=["classification", "regression"], help="default: guessed from the target"
    )
    train.add_argument("--rows", type=int, help="rows to generate for a demo set (users for recommend)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--search", choices=["fast", "full"], default="full", help="candidates per model family"
    )
    train.add_argument(
        "--allow-unknown-categories",
        action="store_true",
        help="let unseen categories through to the encoder (default: the API answers 422)",
    )
    train.add_argument(
        "--users-redis", help="recommend: also learn from the interactions in this data Redis (redis://...)"
    )
    train.add_argument(
        "--collected-only",
        action="store_true",
        help="recommend: only the collected interactions, not the demo's",
    )
    train.add_argument("--no-promote", action="store_true", help="publish without moving CURRENT")
    train.add_argument(
        "--no-onnx", action="store_true", help="publish no ONNX export (replicas serve the joblib pipeline)"
    )
    train.add_argument(
        "--if-empty", action="store_true", help="do nothing if the model already has a version"
    )
    train.add_argument(
        "--store-dir", type=Path, help="model store root (default: BACKEND_STORE_DIR or model_store)"
    )
    train.add_argument("--key", type=Path, help=KEY_HELP)
    train.add_argument(
        "--threads",
        type=int,
        default=1,
        help="native threads for estimators (default 1: OpenMP crawls when busy)",
    )
    train.set_defaults(handler=_train)
    _profile_command(commands)
    _lifecycle_commands(commands)
    return parser


def _profile_command(commands: Any) -> None:
    profile = commands.add_parser(
        "profile", help="profile a data set: a summary here and a standalone HTML report (no training)"
    )
    source = profile.add_mutually_exclusive_group(required=True)
    source.add_argument("--csv", type=Path, help="a CSV file with a header row")
    source.add_argument("--demo", choices=DEMO_SETS, help="a built-in synthetic data set")
    profile.add_argument("--target", help="the column a model would predict (default: the demo set's)")
    profile.add_argument(
        "--task", choices=["classification", "regression"], help="default: guessed from the target"
    )
    profile.add_argument("--rows", type=int, help="rows to generate for a demo set")
    profile.add_argument("--seed", type=int, default=0)
    profile.add_argument("--out", type=Path, help="the HTML report (default: <data name>-profile.html)")
    profile.add_argument("--json", type=Path, help="also write the profile as JSON (profile.json's shape)")
    profile.set_defaults(handler=_profile)


def _lifecycle_commands(commands: Any) -> None:
    listing = commands.add_parser("list", help="models, versions, metrics, current and canary")
    listing.set_defaults(handler=_list)
    promote = commands.add_parser("promote", help="make a verified version current")
    promote.add_argument("model")
    promote.add_argument("version")
    promote.add_argument("--force", action="store_true", help="even if its held-out metric is worse")
    promote.set_defaults(handler=_promote)
    rollback = commands.add_parser("rollback", help="back to the version that was current before")
    rollback.add_argument("model")
    rollback.set_defaults(handler=_rollback)
    canary = commands.add_parser(
        "canary", help="send a share of predictions to a version: canary M V PCT | canary M off"
    )
    canary.add_argument("model")
    canary.add_argument("version", help="a version, or off")
    canary.add_argument("percent", type=float, nargs="?")
    canary.set_defaults(handler=_canary)
    verify = commands.add_parser(
        "verify", help="re-check every version's files, sha256, signature (with a public key) and libraries"
    )
    verify.set_defaults(handler=_verify)
    sign = commands.add_parser("sign", help="sign versions published without a signature")
    sign.add_argument("model", nargs="?", help="only this model (default: every model)")
    sign.add_argument("version", nargs="?", help="only this version (default: every version)")
    sign.add_argument("--key", type=Path, help=KEY_HELP)
    sign.add_argument(
        "--replace", action="store_true", help="also re-sign versions signed by another key (key rotation)"
    )
    sign.set_defaults(handler=_sign)
    keygen = commands.add_parser("keygen", help="make an Ed25519 key pair to sign versions with")
    keygen.add_argument(
        "--key", type=Path, help=f"private key file to create (default: {DEFAULT_KEY_FILE}); .pub beside it"
    )
    keygen.set_defaults(handler=_keygen)
    serve = commands.add_parser("serve", help="run one serving replica until SIGTERM (settings: BACKEND_*)")
    serve.add_argument("--host", help="listen address (default: BACKEND_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: BACKEND_PORT or 8000)")
    serve.set_defaults(handler=_serve)
    for sub in (listing, promote, rollback, canary, verify, sign, keygen):
        sub.add_argument(
            "--store-dir", type=Path, help="model store root (default: BACKEND_STORE_DIR or model_store)"
        )


def _serve(args: argparse.Namespace) -> int:
    from mlstack.server.launch import serve  # the serving stack only for this command

    given = {name: value for name in ("host", "port") if (value := getattr(args, name)) is not None}
    serve(Settings(**given))
    return 0


def _train(args: argparse.Namespace) -> int:
    store = _store(args, key_file=args.key)
    if args.demo == RECOMMEND_DEMO:
        return train_recommender(args, store)
    request = _training_request(args)
    if args.if_empty and request.model in store.models() and store.current(request.model):
        print(f"{request.model}: already has version {store.current(request.model)}; nothing to do")
        return 0
    print(f"training {request.model} ({request.task}) on {request.source}: {len(request.frame)} rows")
    # Measured: gradient boosting took 97 s with default OpenMP threads beside busy replicas, 1.2 s with one.
    with threadpool_limits(limits=args.threads):
        manifest = train_and_publish(request, store)
    _report(manifest, store, promoted=request.promote)
    return 0


def _profile(args: argparse.Namespace) -> int:
    frame, target, source, sha, _ = _demo_source(args) if args.demo else _csv_source(args)
    task = args.task or guess_task(frame[target].dropna())
    _check_target(frame, target, task)
    frame = clean_target(frame, target, task)
    profile = build_profile(frame, target, infer_schema(frame, target), task, source, sha)
    out = args.out or Path(f"{_model_name(Path(source).stem)}-profile.html")
    out.write_text(render_html(profile), encoding="utf-8")
    if args.json:
        args.json.write_bytes(profile_bytes(profile))
    print(summary(profile))
    print(f"report: {out}")
    return 0


def _store(args: argparse.Namespace, key_file: Path | None = None) -> ModelStore:
    """The store, signing what it publishes with the configured private key and checking signatures
    with the configured public key, as the replicas will."""
    settings = _settings()
    root = args.store_dir or settings.store_dir
    key_file = key_file or settings.signing_key_file
    signer = _signer(key_file, root) if key_file else None
    verifier = signing.verifier_for(settings.signing_public_key)
    if signer and verifier and signer.key_id != verifier.key_id:
        raise UsageError(
            f"the signing key {key_file} (key {signer.key_id}) does not match BACKEND_SIGNING_PUBLIC_KEY "
            f"(key {verifier.key_id}): replicas would refuse what it signs"
        )
    return ModelStore(root, settings.max_artifact_bytes, signer=signer, verifier=verifier)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:  # e.g. a BACKEND_SIGNING_PUBLIC_KEY that is not a key
        raise UsageError(f"settings: {exc}") from None


def _signer(key_file: Path, store_root: Path) -> signing.Signer:
    try:
        if str(key_file) == "-":  # e.g. into a container: `docker compose run -T ... --key - < key`
            return signing.Signer.from_pem(sys.stdin.buffer.read(), "standard input")
        if _inside(key_file, store_root):
            raise UsageError(f"the signing key {key_file} is inside the model store; keep it outside")
        return signing.Signer.from_file(key_file)
    except signing.BadKey as exc:
        raise UsageError(str(exc)) from None


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _refusing(action: Callable[[], T]) -> T:
    """Run a lifecycle step; its refusals (unknown version, failed check, worse metric) become exit code 2."""
    try:
        return action()
    except ServingError as exc:
        raise UsageError(str(exc)) from None


def _list(args: argparse.Namespace) -> int:
    store = _store(args)
    lifecycle = Lifecycle(store)
    for model in store.models():
        current, canary = store.current(model), lifecycle.canary(model)
        print(f"{model}")
        for version in store.versions(model):
            marks = ["current"] if version == current else []
            if canary and canary.version == version:
                marks.append(f"canary {canary.percent:g}%")
            print(f"  {version:>4}  {_headline(store, model, version):<32} {', '.join(marks)}")
    return 0


def _headline(store: ModelStore, model: str, version: str) -> str:
    try:
        manifest = store.manifest(model, version)
    except ServingError as exc:
        return f"unreadable: {exc}"
    metric = primary_metric(manifest)
    facts = f"{manifest.training.estimator}"
    return f"{facts} {metric[0]}={metric[1]:.4f}" if metric else facts


def _promote(args: argparse.Namespace) -> int:
    previous = _refusing(lambda: Lifecycle(_store(args)).promote(args.model, args.version, args.force))
    print(f"{args.model}: version {args.version} is current (was {previous}); replicas follow within seconds")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    previous, target = _refusing(lambda: Lifecycle(_store(args)).rollback(args.model))
    print(f"{args.model}: rolled back from version {previous} to {target}")
    return 0


def _canary(args: argparse.Namespace) -> int:
    lifecycle = Lifecycle(_store(args))
    if args.version == "off":
        _refusing(lambda: lifecycle.clear_canary(args.model))
        print(f"{args.model}: canary off; all traffic to the current version")
        return 0
    if args.percent is None:
        raise UsageError("canary needs a percent: mlstack canary MODEL VERSION PERCENT")
    _refusing(lambda: lifecycle.set_canary(args.model, args.version, args.percent))
    print(f"{args.model}: {args.percent:g}% of predictions go to version {args.version}")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    settings = _settings()
    key_file = args.key or settings.signing_key_file or DEFAULT_KEY_FILE
    if key_file.exists():
        raise UsageError(f"{key_file} exists; a key is never overwritten (move it away first)")
    if _inside(key_file, args.store_dir or settings.store_dir):
        raise UsageError(f"{key_file} is inside the model store; keep the private key outside it")
    signer = signing.generate_key_pair(key_file)
    public = signing.public_key_text(signer.public)
    print(f"private key {key_file} (key {signer.key_id}; mode 0600: keep it secret, off replicas)")
    print(f"public key  {signing.public_path(key_file)}")
    print("add to .env (the public key goes to every replica, the private key only where you publish):")
    print(f"  BACKEND_SIGNING_KEY_FILE={key_file}")
    print(f"  BACKEND_SIGNING_PUBLIC_KEY={public}")
    return 0


def _sign(args: argparse.Namespace) -> int:
    store = _store(args, key_file=args.key)
    if store.signer is None:
        raise UsageError(
            "no signing key: set BACKEND_SIGNING_KEY_FILE or pass --key (mlstack keygen makes one)"
        )
    if args.model is not None and args.model not in store.models():
        raise UsageError(f"model {args.model!r} not found")
    failed = 0
    for model in [args.model] if args.model else store.models():
        versions = [args.version] if args.version else store.versions(model)
        for version in versions:
            try:
                signed = store.sign(model, version, replace=args.replace)
                print(f"{'signed' if signed else 'already signed':<15} {model}/{version}")
            except ServingError as exc:
                failed += 1
                print(f"NOT SIGNED      {model}/{version}: {exc}")
    return 1 if failed else 0


def _verify(args: argparse.Namespace) -> int:
    store, failed = _store(args), 0
    for model in store.models():
        for version in store.versions(model):
            try:
                store.verify(model, version)
                print(f"ok      {model}/{version}")
            except ServingError as exc:
                failed += 1
                print(f"FAILED  {model}/{version}: {exc}")
    return 1 if failed else 0


def _training_request(args: argparse.Namespace) -> TrainingRequest:
    frame, target, source, sha, description = _demo_source(args) if args.demo else _csv_source(args)
    model = args.model or _model_name(args.demo or args.csv.stem)
    if not MODEL_NAME.match(model):
        raise UsageError(f"model name {model!r} must match {MODEL_NAME.pattern}")
    task = args.task or guess_task(frame[target].dropna())
    _check_target(frame, target, task)
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
        onnx=not args.no_onnx,
    )


Source = tuple[pd.DataFrame, str, str, str, str]
"""frame, target, source name, data sha256, description"""


def _demo_source(args: argparse.Namespace) -> Source:
    if args.rows is not None and args.rows < MIN_ROWS:
        raise UsageError(f"--rows must be at least {MIN_ROWS}")
    demo = demo_dataset(args.demo, args.rows, args.seed)
    target = args.target or demo.target
    _check_column(demo.frame, target)
    # the set's other answers (failure_within_7d is remaining_useful_life_days <= 7) would leak
    frame = demo.frame.drop(columns=[t for t in demo.targets if t != target])
    return frame, target, demo.name, frame_sha256(demo.frame), demo.description


def _csv_source(args: argparse.Namespace) -> Source:
    if args.target is None:
        raise UsageError("--target is required with --csv")
    frame, sha = _read_csv(args.csv)
    _check_column(frame, args.target)
    return frame, args.target, args.csv.name, sha, f"Trained on {args.csv.name}"


def _check_column(frame: pd.DataFrame, target: str) -> None:
    if target not in frame.columns:
        raise UsageError(f"target column {target!r} not found; columns: {', '.join(map(str, frame.columns))}")
    if len(frame.columns) < 2:
        raise UsageError("the table has no input column besides the target")


def _check_target(frame: pd.DataFrame, target: str, task: str) -> None:
    labels = frame[target].dropna()
    if task == "regression" and not pd.api.types.is_numeric_dtype(labels):
        raise UsageError(f"target {target!r} is not numeric; use --task classification")
    counts = labels.value_counts()
    if task == "classification" and (len(counts) < 2 or counts.min() < MIN_CLASS_ROWS):
        raise UsageError(
            f"target {target!r} needs at least two classes with {MIN_CLASS_ROWS} rows each; "
            f"found {dict(counts.head(5))}"
        )


def _read_csv(path: Path) -> tuple[pd.DataFrame, str]:
    if not path.is_file():
        raise UsageError(f"CSV file not found: {path}")
    data = path.read_bytes()
    try:
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""])  # only empty cells are missing
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path.name} is not a readable CSV file: {exc}") from None
    return frame, hashlib.sha256(data).hexdigest()


def _model_name(stem: str) -> str:
    name = re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-_")
    return name if name and name[0].isalpha() else f"model-{name}"


def _report(manifest: Manifest, store: ModelStore, promoted: bool) -> None:
    shown = {k: v for k, v in manifest.metrics.items() if isinstance(v, float)}
    print(
        f"published {manifest.model} version {manifest.version} ({manifest.training.estimator}, "
        f"{manifest.training.seconds}s)" + (" and made it CURRENT" if promoted else "")
    )
    print("  held-out test: " + ", ".join(f"{k}={v:.4f}" for k, v in shown.items()))
    print(f"  onnx: {_onnx_line(manifest)}")
    print(
        f"  signed by key {store.signer.key_id}" if store.signer else "  unsigned (no signing key configured)"
    )
    print(f"  explanations: {_explanation_line(manifest)}")
    print(f"  {_relative(store.root / manifest.model / manifest.version)}")


def _onnx_line(manifest: Manifest) -> str:
    facts = manifest.onnx
    if facts is None or not facts.published:
        return f"not published: {facts.reason if facts else 'no export'}"
    return f"published, max difference {facts.max_abs_diff:.1e} on {facts.checked_rows} held-out rows"


def _explanation_line(manifest: Manifest) -> str:
    facts = manifest.explanation
    if facts is None or facts.method is None:
        return f"none: {facts.reason if facts else 'not prepared'}"
    return facts.method + (f", {facts.background_rows} background rows" if facts.background_rows else "")


def _relative(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


if __name__ == "__main__":
    sys.exit(main())
