#!/usr/bin/env bash
# A three-node cluster on one real redis-server, on loopback: what a
# publication costs with a channel history and without one, what the
# histories cost Redis (INFO memory, against the formula in
# docs/scaling.md), a resume on the session's own node against a takeover
# (and an SSE uplink post to either), and the recovery of 1,000 SDK clients
# whose node is SIGKILLed behind a round-robin balancer. With
# --redis-cluster, the same nodes on a three-master Redis Cluster instead
# (publish costs, resume, recovery). Prints the benchmark's lines; asserts
# nothing.
#
#   bench/scripts/cluster.sh                  # builds the release binaries first
#   bench/scripts/cluster.sh --no-build       # uses those already built
#   bench/scripts/cluster.sh --redis-cluster  # on a Redis Cluster
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD=1
SHARDED=0
for arg in "$@"; do
  case "$arg" in
    --no-build) BUILD=0 ;;
    --redis-cluster) SHARDED=1 ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done
[ "$BUILD" = 1 ] && cargo build --release -p tandem-server -p tandem-bench
BIN=target/release
command -v redis-server >/dev/null || { echo "redis-server is missing (apt-get install redis-server)" >&2; exit 1; }
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

KEY=bench-key-0123456789abcdef
CLUSTER_KEY=bench-cluster-key-0123456789abcdef
REDIS_PORT=6391
REDIS_PORTS=("$REDIS_PORT")
[ "$SHARDED" = 1 ] && REDIS_PORTS=(6391 6392 6393)
PORTS=(18181 18182 18183)
for p in "${REDIS_PORTS[@]}" "${PORTS[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "port $p is taken" >&2; exit 1; fi
done
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  kill "${PIDS[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

BROKER=(TANDEM_BROKER__URL="redis://127.0.0.1:$REDIS_PORT")
if [ "$SHARDED" = 1 ]; then
  SEEDS=()
  for p in "${REDIS_PORTS[@]}"; do
    mkdir -p "$WORK/redis-$p"
    redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK/redis-$p" \
      --cluster-enabled yes --cluster-config-file nodes.conf >"$WORK/redis-$p.log" 2>&1 &
    PIDS+=($!)
    SEEDS+=("127.0.0.1:$p")
  done
  for p in "${REDIS_PORTS[@]}"; do
    for _ in $(seq 1 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  redis-cli --cluster create "${SEEDS[@]}" --cluster-replicas 0 --cluster-yes >"$WORK/create.log"
  for p in "${REDIS_PORTS[@]}"; do
    for _ in $(seq 1 100); do redis-cli -p "$p" cluster info | grep -q cluster_state:ok && break; sleep 0.1; done
  done
  LIST=$(printf '"%s",' "${SEEDS[@]}")
  BROKER=(TANDEM_BROKER__REDIS_CLUSTER="[${LIST%,}]")
else
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
  PIDS+=($!)
fi

start_nodes() {
  NODE_PIDS=()
  for port in "${PORTS[@]}"; do
    env TANDEM_SERVER__BIND="127.0.0.1:$port" TANDEM_AUTH__API_KEYS="[\"$KEY\"]" \
      TANDEM_BROKER__KIND=redis "${BROKER[@]}" \
      TANDEM_BROKER__CLUSTER_KEY="$CLUSTER_KEY" TANDEM_BROKER__HEARTBEAT_SECONDS=1 \
      TANDEM_BROKER__HISTORY_NAMESPACES='{ plain = { size = 0, ttl_seconds = 60 } }' \
      TANDEM_SESSION__MAX_CONNECTIONS_PER_PLAYER=8 TANDEM_LOGGING__LEVEL=warn \
      "$BIN/tandem" >"$WORK/tandem-$port.log" 2>&1 &
    NODE_PIDS+=($!)
    PIDS+=($!)
  done
  for port in "${PORTS[@]}"; do
    for _ in $(seq 1 100); do
      curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break
      sleep 0.1
    done
  done
}

start_nodes
URL=http://127.0.0.1:${PORTS[0]}
OTHERS=http://127.0.0.1:${PORTS[1]},http://127.0.0.1:${PORTS[2]}
echo "--- publish with and without history, cross-node"
"$BIN/tandem-bench" --url "$URL" --pid "${NODE_PIDS[0]}" cluster --nodes "$OTHERS" --api-key "$KEY" \
  --samples 1000 --subscribers-per-node 50 --messages 2000 --plain-namespace plain
if [ "$SHARDED" = 0 ]; then
  # One Redis's INFO memory: on a cluster the keys are spread over three.
  echo "--- Redis memory of channel histories"
  "$BIN/tandem-bench" --url "$URL" --pid "${NODE_PIDS[0]}" history-memory --redis "127.0.0.1:$REDIS_PORT" \
    --api-key "$KEY" --channels 100 --each 1000 --payload-bytes 100
  "$BIN/tandem-bench" --url "$URL" --pid "${NODE_PIDS[0]}" history-memory --redis "127.0.0.1:$REDIS_PORT" \
    --api-key "$KEY" --key-prefix tandem --channels 20 --each 1000 --payload-bytes 1000
fi
echo "--- resume on the session's node or another; SSE uplink to either"
"$BIN/tandem-bench" --url "$URL" --pid "${NODE_PIDS[0]}" resume --other "http://127.0.0.1:${PORTS[1]}" \
  --api-key "$KEY" --samples 300
echo "--- recovery of 1,000 clients after SIGKILL of their node"
"$BIN/tandem-bench" --url "$URL" --pid "${NODE_PIDS[0]}" recovery --nodes "$OTHERS" --api-key "$KEY" \
  --clients 1000 --rate 50 --after-seconds 5
