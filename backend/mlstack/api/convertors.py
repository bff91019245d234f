"""Path types for model and version names: `GET .../churn:predict` is then a 405, not a model lookup."""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

from mlstack.store.manifest import MODEL_NAME, VERSION_NAME


class _NameConvertor(Convertor[str]):
    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class ModelNameConvertor(_NameConvertor):
    regex = MODEL_NAME.pattern.strip("^$")


class VersionConvertor(_NameConvertor):
    regex = VERSION_NAME.pattern.strip("^$")


def register() -> None:
    """Starlette keeps path types in one table per process; registering again replaces them alike."""
    register_url_convertor("model", ModelNameConvertor())
    register_url_convertor("version", VersionConvertor())
