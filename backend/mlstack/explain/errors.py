"""Why a model cannot be explained, said at training time (manifest facts) and at load."""

from __future__ import annotations


class Unexplainable(Exception):
    """This pipeline cannot be explained exactly or safely; the message says why, for the manifest."""


class AdditivityBroken(Exception):
    """An explanation did not add up to the model's output: a bug or an unsupported model, never served."""
