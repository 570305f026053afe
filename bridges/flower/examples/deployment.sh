# Shared by the examples' run_deployment.sh scripts (sourced, not run): Flower's deployment
# engine on 127.0.0.1 — a SuperLink and SuperNodes in process groups of their own, a
# $FLWR_HOME config naming the SuperLink, and everything stopped when the script exits.
# Sets WORK (a fresh /tmp directory holding logs and state) and LINK_PORT (a free port).

WORK="$(mktemp -d /tmp/fedhost-flower-deploy.XXXXXX)"
export FLWR_HOME="$WORK/flwr-home"        # keep Flower's state and config out of ~/.flwr
PIDS=()
# Each daemon runs in its own process group (setsid): stopping the group also stops the
# SuperExec/ServerApp/ClientApp processes it spawned.
cleanup() {
  for pid in "${PIDS[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
  sleep 2
  for pid in "${PIDS[@]}"; do kill -9 -- "-$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# A free port on 127.0.0.1 (other runs may hold Flower's defaults 8000/9094…).
free_port() { python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
LINK_PORT="${LINK_PORT:-$(free_port)}"

# SuperLink: one HTTP API (Runtime, Control, Fleet) in flwr 1.42; then the config naming it.
start_superlink() {
  setsid flower-superlink --insecure --disable-runtime-dependency-installation \
    --port "$LINK_PORT" --database "$WORK/state.db" > "$WORK/superlink.log" 2>&1 &
  PIDS+=($!)
  mkdir -p "$FLWR_HOME"
  cat > "$FLWR_HOME/config.toml" <<TOML
[superlink]
default = "local-deployment"

[superlink.local-deployment]
address = "127.0.0.1:$LINK_PORT"
insecure = true
TOML
}

# start_supernode INDEX NODE_CONFIG: a SuperNode (log supernode-INDEX.log); its pid in PIDS.
start_supernode() {
  setsid flower-supernode --insecure --superlink "127.0.0.1:$LINK_PORT" --port "$(free_port)" \
    --node-config "$2" > "$WORK/supernode-$1.log" 2>&1 &
  PIDS+=($!)
}

# Waits (up to 60 s) for the Control API to accept connections.
wait_for_superlink() {
  for _ in $(seq 60); do (exec 3<>/dev/tcp/127.0.0.1/$LINK_PORT) 2>/dev/null && return 0; sleep 1; done
  echo "the SuperLink did not listen on 127.0.0.1:$LINK_PORT within 60 s (see $WORK/superlink.log)" >&2
  return 1
}
