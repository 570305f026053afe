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
WORK="$(mktemp -d /tmp/fedhost-flower-deploy.XXXXXX)"
export FLWR_HOME="$WORK/flwr-home"        # keep Flower's state and config out of ~/.flwr
export FEDHOST_PLUGIN_DIR="${FEDHOST_PLUGIN_DIR:?set FEDHOST_PLUGIN_DIR to the directory with libSimilarityAware.so}"
PIDS=()
# Each daemon runs in its own process group (setsid): stopping the group also stops the
# SuperExec/ServerApp/ClientApp processes it spawned.
cleanup() {
  for pid in "${PIDS[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
  sleep 2
  for pid in "${PIDS[@]}"; do kill -9 -- "-$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# SuperLink: one HTTP API (Runtime, Control, Fleet) on 127.0.0.1:8000 in flwr 1.42.
LINK_PORT="${LINK_PORT:-8000}"
setsid flower-superlink --insecure --disable-runtime-dependency-installation \
  --port "$LINK_PORT" --database "$WORK/state.db" > "$WORK/superlink.log" 2>&1 &
PIDS+=($!)
for i in $(seq 0 $((N - 1))); do
  setsid flower-supernode --insecure --superlink "127.0.0.1:$LINK_PORT" --port $((9094 + i)) \
    --node-config "partition-id=$i num-partitions=$N" > "$WORK/supernode-$i.log" 2>&1 &
  PIDS+=($!)
done

mkdir -p "$FLWR_HOME"
cat > "$FLWR_HOME/config.toml" <<TOML
[superlink]
default = "local-deployment"

[superlink.local-deployment]
address = "127.0.0.1:$LINK_PORT"
insecure = true
TOML

# Wait (up to 60 s) for the Control API to accept connections.
for _ in $(seq 60); do (exec 3<>/dev/tcp/127.0.0.1/$LINK_PORT) 2>/dev/null && break; sleep 1; done
timeout 300 flwr run "$HERE" local-deployment --stream \
  --run-config "num-server-rounds=$ROUNDS num-partitions=$N result-path='$WORK/result.json'"
echo "logs and result: $WORK"
test -s "$WORK/result.json" && cat "$WORK/result.json"
