"""API keys and UI credentials: parsed from configuration, or generated when none are configured."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Scope = Literal["predict", "users", "admin"]
SCOPES: tuple[Scope, ...] = ("predict", "users", "admin")
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SECRET = re.compile(
    r"^[A-Za-z0-9._+/=-]{16,128}$"
)  # no "~": nginx would read a map key starting with it as a regex
RESERVED_NAMES = {"default", "hostnames", "include", "volatile"}  # words with a meaning inside an nginx map
DEMO_SCOPES: tuple[tuple[str, Scope], ...] = (
    ("demo", "predict"),
    ("demo-users", "users"),
    ("demo-admin", "admin"),
)


@dataclass(frozen=True)
class ApiKey:
    name: str
    scope: Scope
    secret: str

    def public(self) -> dict[str, str]:
        return {"name": self.name, "scope": self.scope, "key": self.secret}


@dataclass(frozen=True)
class UiLogin:
    user: str
    password: str


def parse_keys(text: str) -> list[ApiKey]:
    """`name:scope:key` entries separated by commas or new lines; `#` starts a comment."""
    keys = []
    for raw in re.split(r"[,\n]", text):
        entry = raw.split("#", 1)[0].strip()
        if entry:
            keys.append(_parse_entry(entry))
    names = [k.name for k in keys]
    if len(set(names)) != len(names):
        raise ValueError("API key names must be unique")
    return keys


def _parse_entry(entry: str) -> ApiKey:
    parts = entry.split(":", 2)
    if len(parts) != 3:
        raise ValueError(f"API key entry must be name:scope:key, got {parts[0]!r}:…")
    name, scope, secret = parts
    if not NAME.match(name) or name in RESERVED_NAMES:
        raise ValueError(
            f"API key name {name!r} must match {NAME.pattern} and not be one of {RESERVED_NAMES}"
        )
    checked_scope = _scope(name, scope)
    if not SECRET.match(secret):
        raise ValueError(f"API key {name!r}: key must be 16-128 characters of [A-Za-z0-9._+/=-]")
    return ApiKey(name, checked_scope, secret)


def _scope(name: str, given: str) -> Scope:
    for scope in SCOPES:
        if given == scope:
            return scope
    raise ValueError(f"API key {name!r}: scope must be {', '.join(SCOPES[:-1])} or {SCOPES[-1]}")


def load_keys(inline: str | None, file: Path | None) -> list[ApiKey]:
    text = inline or ""
    if file is not None:
        text += "\n" + file.read_text()
    return parse_keys(text)


def demo_keys() -> list[ApiKey]:
    return [ApiKey(name, scope, secrets.token_urlsafe(32)) for name, scope in DEMO_SCOPES]


def demo_login() -> UiLogin:
    return UiLogin("admin", secrets.token_urlsafe(12))


def htpasswd_line(login: UiLogin) -> str:
    """A salted SHA-1 entry ({SSHA}), which nginx's auth_basic reads; the password itself is not stored."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(login.password.encode() + salt).digest()
    return f"{login.user}:{{SSHA}}{base64.b64encode(digest + salt).decode()}\n"
