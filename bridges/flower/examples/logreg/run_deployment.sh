#!/usr/bin/env bash
# Run the app with Flower's deployment engine on this machine: one SuperLink and N SuperNodes
# on 127.0.0.1 (insecure), `flwr run` against them, everything stopped at the end.
#
#   FEDHOST_PLUGIN_DIR=$PWD/.build/release bridges/flower/examples/logreg/run_deployment.sh [N] [ROUNDS]
#
# Needs flwr and fedhost-flower installed in the active Python environment (their bin/ on PATH).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
N="${1:-3}"
ROUNDS="${2:-5}"
export FEDHOST_PLUGIN_DIR="${FEDHOST_PLUGIN_DIR:?set FEDHOST_PLUGIN_DIR to the directory with libSimilarityAware.so}"
source "$HERE/../deployment.sh"

start_superlink
for i in $(seq 0 $((N - 1))); do start_supernode "$i" "partition-id=$i num-partitions=$N"; done
wait_for_superlink
timeout 300 flwr run "$HERE" local-deployment --stream \
  --run-config "num-server-rounds=$ROUNDS num-partitions=$N result-path='$WORK/result.json'"
echo "logs and result: $WORK"
test -s "$WORK/result.json" && cat "$WORK/result.json"
