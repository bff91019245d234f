"""The model store on disk: the only writer (publish, set_current) and the only reader (verify, load).

Layout (docs/CONTRACT.md): <root>/<model>/<version>/{model.joblib, manifest.json, model.onnx?,
profile.json?, explain.json?, model.sig?} and <root>/<model>/CURRENT. Unpickling runs code, so `load`
unpickles nothing before the checks have passed: names, files, sizes, the signature of the manifest (when
the store has a Verifier), the sha256 of every file (the ONNX export's when it is opened) and the library
versions. `load` and `read_artifact` hash the very bytes they go on to use, so a file swapped after a check
is never opened.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import platform
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy
import pandas
import sklearn
from pydantic import ValidationError
from sklearn.exceptions import InconsistentVersionWarning

from mlstack.errors import ArtifactRejected, Conflict, ModelNotFound
from mlstack.profile.schema import Profile
from mlstack.store.manifest import MODEL_NAME, VERSION_NAME, Artifact, Manifest, RuntimeVersions
from mlstack.store.signing import MAX_SIGNATURE_BYTES, SIGNATURE_FILE, SignatureProblem, Signer, Verifier

ARTIFACT_FILE = "model.joblib"
ONNX_FILE = "model.onnx"
PROFILE_FILE = "profile.json"
EXPLAIN_FILE = "explain.json"
MANIFEST_FILE = "manifest.json"
CURRENT_FILE = "CURRENT"
ALLOWED_FILES = frozenset(
    {ARTIFACT_FILE, MANIFEST_FILE, ONNX_FILE, PROFILE_FILE, EXPLAIN_FILE, SIGNATURE_FILE}
)
MAX_MANIFEST_BYTES = 1 << 20


def runtime_versions() -> RuntimeVersions:
    """The versions of this process's libraries, as a manifest records them."""
    return RuntimeVersions(
        python=platform.python_version(),
        sklearn=sklearn.__version__,
        numpy=numpy.__version__,
        joblib=joblib.__version__,
        pandas=pandas.__version__,
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


class ModelStore:
    """A model store rooted at one directory.

    With a `signer`, every version published is signed in the same atomic step that makes it visible;
    with a `verifier`, a version without a good signature is refused before anything of it is unpickled.
    """

    def __init__(
        self,
        root: Path,
        max_artifact_bytes: int = 512 << 20,
        signer: Signer | None = None,
        verifier: Verifier | None = None,
    ) -> None:
        self.root = Path(root)
        self.max_artifact_bytes = max_artifact_bytes
        self.signer = signer
        self.verifier = verifier

    # -- reading ---------------------------------------------------------------------------------

    def models(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and MODEL_NAME.match(p.name))

    def versions(self, model: str) -> list[str]:
        model_dir = self._model_dir(model)
        names = [p.name for p in model_dir.iterdir() if p.is_dir() and VERSION_NAME.match(p.name)]
        return sorted(names, key=int)

    def current(self, model: str) -> str | None:
        """The version CURRENT names, or None when the model has no current version yet."""
        try:
            version = (self._model_dir(model) / CURRENT_FILE).read_text().strip()
        except FileNotFoundError:
            return None
        return version if VERSION_NAME.match(version) else None

    def manifest(self, model: str, version: str) -> Manifest:
        """The version's manifest, parsed strictly (no signature or artifact check: for showing it)."""
        path = self._version_dir(model, version) / MANIFEST_FILE
        return self._parse_manifest(path, self._read_manifest(path), model, version)

    def verify(self, model: str, version: str, onnx: bool = True) -> Manifest:
        """Every check that must pass before the artifact is unpickled; raises ArtifactRejected.

        `onnx=False` leaves the ONNX export to `read_artifact`: a replica serves the joblib pipeline when
        only its ONNX file is broken. Every other file (the profile too) fails the version.
        """
        manifest, _ = self._checked_manifest(model, version, self.verifier)
        version_dir = self._version_dir(model, version)
        extras = [a for a in manifest.extra_artifacts if onnx or a.format != "onnx"]
        for artifact in (manifest.artifact, *extras):
            self._verify_artifact(version_dir, artifact)
        self._verify_versions(version_dir / manifest.artifact.file, manifest.runtime)
        return manifest

    def load(self, model: str, version: str) -> tuple[Manifest, Any]:
        """Check, then unpickle the very bytes checked. Library version warnings are errors here. Every
        further file but the ONNX export (which may fail alone, see verify) is checked as well."""
        manifest, _ = self._checked_manifest(model, version, self.verifier)
        version_dir = self._version_dir(model, version)
        for artifact in manifest.extra_artifacts:
            if artifact.format != "onnx":
                self._verify_artifact(version_dir, artifact)
        path = self._version_dir(model, version) / manifest.artifact.file
        data = self.read_artifact(model, version, manifest.artifact)
        self._verify_versions(path, manifest.runtime)
        with warnings.catch_warnings():
            warnings.simplefilter("error", InconsistentVersionWarning)
            try:
                pipeline = joblib.load(io.BytesIO(data))
            except InconsistentVersionWarning as exc:
                raise ArtifactRejected(self._shown(path), "sklearn version", str(exc)) from None
        return manifest, pipeline

    def read_artifact(self, model: str, version: str, artifact: Artifact) -> bytes:
        """A further artifact's bytes, once its name, size and the sha256 of exactly these bytes check out."""
        path = self._version_dir(model, version) / artifact.file
        self._check_name_and_size(path, artifact)
        data = path.read_bytes()
        self._check_sha256(path, hashlib.sha256(data).hexdigest(), artifact, len(data))
        return data

    def profile(self, model: str, version: str) -> Profile | None:
        """The version's training-data profile, checked against its sha256; None when it has none."""
        manifest = self.manifest(model, version)
        artifact = manifest.profile_artifact
        if artifact is None:
            return None
        data = self.read_artifact(model, version, artifact)
        try:
            return Profile.model_validate_json(data)
        except ValidationError as exc:
            shown = self._shown(self._version_dir(model, version) / artifact.file)
            raise ArtifactRejected(shown, "schema", _first_error(exc)) from None

    # -- writing ---------------------------------------------------------------------------------

    def publish(
        self,
        model: str,
        pipeline: Any,
        describe: Callable[[str, Artifact], Manifest],
        extra_files: Mapping[str, bytes] | None = None,
    ) -> Manifest:
        """Write a new immutable version: a temp dir, fsync, then an atomic rename. CURRENT is untouched.

        `describe(version, artifact)` builds the manifest once the version number and checksum are known.
        """
        if not MODEL_NAME.match(model):
            raise ValueError(f"model name {model!r} must match {MODEL_NAME.pattern}")
        model_dir = self.root / model
        model_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=model_dir))
        try:
            joblib.dump(pipeline, staging / ARTIFACT_FILE)
            for name, data in (extra_files or {}).items():
                (staging / name).write_bytes(data)
            return self._commit(model_dir, staging, describe)
        finally:
            if staging.exists():
                _remove_tree(staging)

    def sign(self, model: str, version: str, replace: bool = False) -> bool:
        """Sign a version published without a signature; False when it already has one by this key.

        The version is checked first (files, sizes, sha256: a tampered version is never signed). model.sig
        is written and fsynced beside the version, then linked into it in one step: a replica sees the
        version unsigned or signed, never a partial signature. `replace` signs again over another key's
        signature (a key rotation); os.replace swaps the file whole.
        """
        if self.signer is None:
            raise ValueError("no signing key")
        manifest, manifest_bytes = self._checked_manifest(model, version, None)
        version_dir = self._version_dir(model, version)
        self._check_covered(version_dir, manifest)
        for artifact in (manifest.artifact, *manifest.extra_artifacts):
            self._verify_artifact(version_dir, artifact)
        target = version_dir / SIGNATURE_FILE
        if target.exists() and not replace:
            if self._signed_by(Verifier(self.signer.public), target, manifest_bytes):
                return False
            raise Conflict(f"{self._shown(target)}: signed by another key; sign with replace to re-sign it")
        fd, tmp = tempfile.mkstemp(prefix=".sign-", dir=version_dir.parent)  # same file system, not in it
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(self.signer.sign(manifest_bytes))
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o444)
            if replace:
                os.replace(tmp, target)
            else:
                os.link(tmp, target)  # fails, rather than overwrite, if another signer got there first
        finally:
            Path(tmp).unlink(missing_ok=True)
        _fsync_dir(version_dir)
        return True

    def set_current(self, model: str, version: str) -> None:
        """Point CURRENT at a version, atomically (temp file + os.replace)."""
        self._version_dir(model, version)
        target = self._model_dir(model) / CURRENT_FILE
        fd, tmp = tempfile.mkstemp(prefix=".CURRENT-", dir=target.parent)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{version}\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)

    # -- internals -------------------------------------------------------------------------------

    def _commit(
        self, model_dir: Path, staging: Path, describe: Callable[[str, Artifact], Manifest]
    ) -> Manifest:
        artifact_path = staging / ARTIFACT_FILE
        artifact = Artifact(
            file=ARTIFACT_FILE, sha256=file_sha256(artifact_path), size_bytes=artifact_path.stat().st_size
        )
        for _ in range(100):  # another publisher may take a number first; rename refuses a non-empty target
            version = str(max((int(v) for v in self.versions(model_dir.name)), default=0) + 1)
            manifest = describe(version, artifact)
            manifest_bytes = (manifest.model_dump_json(indent=2) + "\n").encode()
            for path in staging.iterdir():
                path.chmod(0o644)  # a retry rewrites the manifest and its signature
            (staging / MANIFEST_FILE).write_bytes(manifest_bytes)
            if self.signer is not None:  # signed in staging: the version appears with its signature
                (staging / SIGNATURE_FILE).write_bytes(self.signer.sign(manifest_bytes))
            for path in staging.iterdir():
                path.chmod(0o444)
                _fsync_file(path)
            try:
                staging.rename(model_dir / version)
            except OSError:
                continue
            _fsync_dir(model_dir)
            return manifest
        raise RuntimeError(f"could not allocate a version number under {model_dir.name}")

    def _checked_manifest(
        self, model: str, version: str, verifier: Verifier | None
    ) -> tuple[Manifest, bytes]:
        """Allow-list, the signature over the manifest's bytes (with a verifier), then those bytes parsed."""
        version_dir = self._version_dir(model, version)
        for entry in version_dir.iterdir():
            if entry.name not in ALLOWED_FILES:
                raise ArtifactRejected(self._shown(entry), "allow-list", "file not allowed in a version")
        path = version_dir / MANIFEST_FILE
        data = self._read_manifest(path)
        if verifier is not None:
            self._verify_signature(verifier, version_dir, data)
        manifest = self._parse_manifest(path, data, model, version)
        if verifier is not None:
            self._check_covered(version_dir, manifest)
        return manifest, data

    def _check_covered(self, version_dir: Path, manifest: Manifest) -> None:
        """Every file of a signed version is listed in its manifest, so the signature covers it."""
        listed = {MANIFEST_FILE, SIGNATURE_FILE, manifest.artifact.file}
        listed.update(a.file for a in manifest.extra_artifacts)
        for entry in version_dir.iterdir():
            if entry.name not in listed:
                raise ArtifactRejected(
                    self._shown(entry),
                    "signature",
                    "not listed in the manifest, so no signature covers it",
                )

    def _read_manifest(self, path: Path) -> bytes:
        self._check_regular_file(path)
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ArtifactRejected(self._shown(path), "size", "manifest larger than 1 MiB")
        return path.read_bytes()

    def _parse_manifest(self, path: Path, data: bytes, model: str, version: str) -> Manifest:
        try:
            manifest = Manifest.model_validate_json(data)
        except ValidationError as exc:
            raise ArtifactRejected(self._shown(path), "schema", _first_error(exc)) from None
        if (manifest.model, manifest.version) != (model, version):
            raise ArtifactRejected(self._shown(path), "identity", "names another model or version")
        return manifest

    def _verify_signature(self, verifier: Verifier, version_dir: Path, manifest: bytes) -> None:
        path = version_dir / SIGNATURE_FILE
        if not path.exists() and not path.is_symlink():
            raise ArtifactRejected(
                self._shown(path),
                "signature",
                f"missing; replicas accept only versions signed by key {verifier.key_id} "
                f"(sign it with: mlstack sign {version_dir.parent.name} {version_dir.name})",
            )
        self._check_regular_file(path)
        if path.stat().st_size > MAX_SIGNATURE_BYTES:
            raise ArtifactRejected(self._shown(path), "signature", "larger than a signature file")
        try:
            verifier.check(manifest, path.read_bytes())
        except SignatureProblem as exc:
            raise ArtifactRejected(self._shown(version_dir / exc.file), "signature", exc.detail) from None

    def _signed_by(self, verifier: Verifier, path: Path, manifest: bytes) -> bool:
        try:
            verifier.check(manifest, path.read_bytes()[:MAX_SIGNATURE_BYTES])
        except SignatureProblem:
            return False
        return True

    def _model_dir(self, model: str) -> Path:
        if not MODEL_NAME.match(model):
            raise ModelNotFound(model)
        path = self.root / model
        if path.is_symlink() or not path.is_dir():
            raise ModelNotFound(model)
        return path

    def _version_dir(self, model: str, version: str) -> Path:
        if not VERSION_NAME.match(version):
            raise ModelNotFound(model, version)
        path = self._model_dir(model) / version
        if path.is_symlink() or not path.is_dir():
            raise ModelNotFound(model, version)
        return path

    def _check_regular_file(self, path: Path) -> None:
        if path.is_symlink():
            raise ArtifactRejected(self._shown(path), "symlink", "symbolic links are refused")
        if not path.is_file():
            raise ArtifactRejected(self._shown(path), "missing", "file not found")

    def _verify_artifact(self, version_dir: Path, artifact: Artifact) -> None:
        path = version_dir / artifact.file
        self._check_name_and_size(path, artifact)
        self._check_sha256(path, file_sha256(path), artifact, path.stat().st_size)

    def _check_name_and_size(self, path: Path, artifact: Artifact) -> None:
        if artifact.file not in ALLOWED_FILES or artifact.file in (MANIFEST_FILE, SIGNATURE_FILE):
            raise ArtifactRejected(self._shown(path), "allow-list", "artifact name not allowed")
        self._check_regular_file(path)
        size = path.stat().st_size
        if size != artifact.size_bytes or size > self.max_artifact_bytes:
            raise ArtifactRejected(
                self._shown(path), "size", f"{size} bytes, manifest says {artifact.size_bytes}"
            )

    def _check_sha256(self, path: Path, actual: str, artifact: Artifact, size: int) -> None:
        if size != artifact.size_bytes:
            raise ArtifactRejected(
                self._shown(path), "size", f"{size} bytes, manifest says {artifact.size_bytes}"
            )
        if not hmac.compare_digest(actual, artifact.sha256):
            raise ArtifactRejected(
                self._shown(path), "sha256", f"expected {artifact.sha256[:12]}…, got {actual[:12]}…"
            )

    def _verify_versions(self, path: Path, recorded: RuntimeVersions) -> None:
        if _minor(recorded.sklearn) != _minor(sklearn.__version__):
            raise ArtifactRejected(
                self._shown(path),
                "sklearn version",
                f"written by scikit-learn {recorded.sklearn}, this replica has {sklearn.__version__}",
            )
        if recorded.numpy.split(".")[0] != numpy.__version__.split(".")[0]:
            raise ArtifactRejected(
                self._shown(path),
                "numpy version",
                f"written by numpy {recorded.numpy}, this replica has {numpy.__version__}",
            )

    def _shown(self, path: Path) -> str:
        """A path relative to the store root: messages never carry absolute paths."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return path.name


def build_manifest(**fields: Any) -> Manifest:
    """A manifest stamped with this process's library versions and the current time."""
    fields.setdefault("created_at", datetime.now(UTC))
    fields.setdefault("runtime", runtime_versions())
    return Manifest(**fields)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    if sys.platform != "win32":
        _fsync_file(path)


def _remove_tree(path: Path) -> None:
    for child in path.iterdir():
        child.chmod(0o644)
        child.unlink()
    path.rmdir()
