"""`python -m mlstack.train ...` is `mlstack train ...`."""

from __future__ import annotations

import sys

from mlstack.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
