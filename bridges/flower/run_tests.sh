#!/usr/bin/env bash
# Test the Flower bridge in a venv of its own (created if missing, reused otherwise).
#
#   bridges/flower/run_tests.sh [VENV_DIR] [pytest args...]
#
# VENV_DIR defaults to <repo>/.venv-flower (git-ignored).  The plugins must be built first
# (swift build -c release); FEDHOST_PLUGIN_DIR defaults to <repo>/.build/release.
# Exit code: pytest's; "no tests collected" (5) counts as a failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="$(realpath -m "${1:-$REPO/.venv-flower}")"
shift || true
PYTHON="${PYTHON:-python3}"
export FEDHOST_PLUGIN_DIR="${FEDHOST_PLUGIN_DIR:-$REPO/.build/release}"

start=$SECONDS
if [ ! -x "$VENV/bin/python" ]; then
  echo "run_tests.sh: creating venv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
echo "run_tests.sh: installing fedhost-flower[test] (flwr[simulation]==1.42.*, numpy, pytest)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$HERE[test]"
echo "run_tests.sh: install took $((SECONDS - start)) s; plugins from $FEDHOST_PLUGIN_DIR"

cd "$HERE"
set +e
"$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
status=$?
set -e
echo "run_tests.sh: total $((SECONDS - start)) s"
if [ "$status" -eq 5 ]; then
  echo "run_tests.sh: pytest collected no tests: failing" >&2
  exit 1
fi
exit "$status"
