#!/usr/bin/env bash
# A FedHost protocol on Flower's deployment engine on this machine: one SuperLink and one
# SuperNode per device on 127.0.0.1 (insecure), `flwr run` of the FedHost app against them,
# everything stopped at the end (bounded: `timeout` on the run, the daemons killed on exit).
#
#   FEDHOST_PLUGIN_DIR=$PWD/.build/release bridges/flower/examples/fedhost/run_deployment.sh \
#       [DEVICES=2] [PROTOCOL=fl] [AGGREGATOR=libFedAvg.so] [SETTINGS=rounds=2] [SEED=3]
#
# FEDERATION and DATA_DIR (environment) choose the federation: by default the paper's
# (Examples/paper-federation.json on ../shared/data). KILL_DEVICE=i KILL_AFTER=s kills device
# i's SuperNode s seconds after the run starts: the ServerApp reports it once its round-timeout
# (ROUND_TIMEOUT, default 60 s) passes and goes on with the other devices.
# Needs flwr and fedhost-flower installed in the active Python environment (their bin/ on PATH).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../../.." && pwd)"
DEVICES="${1:-2}"
PROTOCOL="${2:-fl}"
AGGREGATOR="${3:-libFedAvg.so}"
SETTINGS="${4:-rounds=2}"
SEED="${5:-3}"
FEDERATION="${FEDERATION:-$REPO/Examples/paper-federation.json}"
DATA_DIR="${DATA_DIR:-$(realpath -m "$REPO/../shared/data")}"
export FEDHOST_PLUGIN_DIR="${FEDHOST_PLUGIN_DIR:?set FEDHOST_PLUGIN_DIR to the directory with libFedHostEngine.so}"
source "$HERE/../deployment.sh"

start_superlink
NODE_PIDS=()
for i in $(seq 0 $((DEVICES - 1))); do
  start_supernode "$i" "partition-id=$i"
  NODE_PIDS+=("${PIDS[-1]}")
done

if [ -n "${KILL_DEVICE:-}" ]; then
  (sleep "${KILL_AFTER:-20}"; echo "run_deployment.sh: killing device $KILL_DEVICE's SuperNode"
   kill -9 -- "-${NODE_PIDS[$KILL_DEVICE]}" 2>/dev/null || true) &
fi

wait_for_superlink
start=$SECONDS
timeout 600 flwr run "$HERE" local-deployment --stream --run-config "federation='$FEDERATION' \
data-dir='$DATA_DIR' protocol='$PROTOCOL' aggregator='$AGGREGATOR' settings='$SETTINGS' seed=$SEED \
round-timeout=${ROUND_TIMEOUT:-60} result-dir='$WORK/result'"
echo "run_deployment.sh: flwr run took $((SECONDS - start)) s; logs and result: $WORK"
test -s "$WORK/result/report.json"
cat "$WORK/result/failures.txt"
