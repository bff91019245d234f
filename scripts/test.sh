#!/usr/bin/env bash
# The whole test suite, as CI runs it: bootstrap, lint (make lint), then every test marker.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
make lint
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "test.sh: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$status"
