"""Ed25519 signatures over a version's manifest (the `cryptography` package), and the keys that make them.

The manifest lists every file of a version with its sha256 and size, and the store checks each file
against it before opening it; so one signature over the manifest's exact bytes covers every file the
manifest lists, today's and those added later, and a replica checks it by hashing nothing but the
manifest. The private key stays with whoever publishes (never in the store, never on a replica); replicas
hold only the public key and verify offline.

`model.sig` is a small JSON document: the signature (base64 of 64 bytes), the signed file's name and the
id of the key that made it. The id is not trusted: it only lets a refusal say "signed by another key"
rather than "changed since it was signed".
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

SIGNATURE_FILE = "model.sig"
SIGNED_FILE = "manifest.json"
MAX_SIGNATURE_BYTES = 4096
CONTEXT = b"mlstack model manifest v1\n"
"""Prefixed to the manifest before signing, so a signature from this key means nothing anywhere else."""


class SignatureFile(BaseModel):
    """The content of model.sig."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["mlstack-ed25519/1"] = "mlstack-ed25519/1"
    signed_file: Literal["manifest.json"] = "manifest.json"
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    signature: str = Field(max_length=128)
    """base64 of the 64-byte Ed25519 signature of CONTEXT + the manifest's bytes."""


class BadKey(ValueError):
    """A key file or key text that cannot be used; the message says which and why."""


class SignatureProblem(Exception):
    """Why a signature was refused, and which file to blame (the signature or the manifest)."""

    def __init__(self, file: str, detail: str) -> None:
        super().__init__(detail)
        self.file, self.detail = file, detail


def key_id(public: Ed25519PublicKey) -> str:
    """A short fingerprint of a public key, for messages and `mlstack keygen`'s output."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_text(public: Ed25519PublicKey) -> str:
    """The public key as one line (base64 of its 32 raw bytes): what BACKEND_SIGNING_PUBLIC_KEY holds."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A public key from one line of base64 (as `mlstack keygen` prints it) or a PEM block (openssl's)."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError as exc:
            raise BadKey(f"not a PEM public key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise BadKey("the PEM public key is not an Ed25519 key")
        return key
    try:  # binascii.Error is a ValueError
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except ValueError as exc:
        raise BadKey(f"not an Ed25519 public key (base64 of 32 bytes, or PEM): {exc}") from None


class Signer:
    """Signs manifests with a private key read from a file outside the store."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()
        self.key_id = key_id(self.public)

    @classmethod
    def from_file(cls, path: Path) -> Signer:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BadKey(f"cannot read the signing key {path}: {exc.strerror}") from None
        return cls.from_pem(data, str(path))

    @classmethod
    def from_pem(cls, data: bytes, source: str) -> Signer:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise BadKey(f"{source} is not an unencrypted PEM private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise BadKey(f"{source} is not an Ed25519 private key")
        return cls(key)

    def sign(self, manifest: bytes) -> bytes:
        """The bytes of model.sig for these exact manifest bytes."""
        signature = self._private.sign(CONTEXT + manifest)
        document = SignatureFile(key_id=self.key_id, signature=base64.b64encode(signature).decode())
        return (document.model_dump_json(indent=2) + "\n").encode()


class Verifier:
    """Checks model.sig against a manifest with the one public key replicas are configured with."""

    def __init__(self, public: Ed25519PublicKey) -> None:
        self.public = public
        self.key_id = key_id(public)

    def check(self, manifest: bytes, signature_file: bytes) -> None:
        """Raises SignatureProblem naming model.sig or manifest.json when the signature does not hold."""
        try:
            document = SignatureFile.model_validate_json(signature_file)
            signature = base64.b64decode(document.signature, validate=True)
        except ValueError:  # pydantic's ValidationError and binascii.Error are ValueErrors
            raise SignatureProblem(SIGNATURE_FILE, "not a signature file this replica can read") from None
        try:
            self.public.verify(signature, CONTEXT + manifest)
            return
        except InvalidSignature:
            pass
        if document.key_id != self.key_id:
            raise SignatureProblem(
                SIGNATURE_FILE, f"made by key {document.key_id}, replicas trust key {self.key_id}"
            )
        raise SignatureProblem(
            SIGNED_FILE, f"does not match its signature by key {self.key_id}: changed since it was signed"
        )


def verifier_for(public_key: str | None) -> Verifier | None:
    """The replica's verifier for the configured public key; None when none is configured."""
    return None if public_key is None else Verifier(parse_public_key(public_key))


def generate_key_pair(private_path: Path) -> Signer:
    """A new Ed25519 key: the private key as PEM (mode 0600, created, never overwritten) and `.pub` beside."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    private_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # O_EXCL: never replace a key
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    signer = Signer(private)
    public_path(private_path).write_text(public_key_text(signer.public) + "\n")
    return signer


def public_path(private_path: Path) -> Path:
    return private_path.with_name(private_path.name.removesuffix(".key") + ".pub")
