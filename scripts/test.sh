#!/usr/bin/env bash
# Install DB Sage with its test dependencies and run the whole suite (the README's second command).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e ".[test]"
python3 -m pytest -q "$@"
