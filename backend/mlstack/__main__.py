"""`python -m mlstack ...` is the `mlstack` command."""

from __future__ import annotations

import sys

from mlstack.cli import main

sys.exit(main())
