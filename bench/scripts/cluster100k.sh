#!/usr/bin/env bash
# 100,000 idle connections on one machine, on a cluster: six Tandem nodes
# and one redis-server on loopback, six load generators (a process holds at
# most 20,000 descriptors here), half WebSocket and half SSE spread evenly
# over the nodes, every connection subscribed to one channel and, in a room
# of 100 players, to that room; then broadcasts (one publication each
# through one node's backend API) that must reach every connection. Three
# runs, the nodes and Redis restarted for each: plain (no channel history,
# no join/leave frames), presence (join/leave frames in the rooms), presence
# and history (channel histories kept in Redis). Prints each run's report
# (tandem-bench cluster-reach); asserts nothing.
#
#   bench/scripts/cluster100k.sh                      # builds the release binaries first
#   bench/scripts/cluster100k.sh --no-build           # uses those already built
#   bench/scripts/cluster100k.sh --connections 2000 --nodes 2 --generators 2   # a small try
#   also --broadcasts N (5), --runs plain,presence,presence+history (all three)
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD=1
CONNECTIONS=100000
NODES=6
GENERATORS=6
BROADCASTS=5
ROOM_SIZE=100
RUNS="plain presence presence+history"
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) BUILD=0 ;;
    --connections) CONNECTIONS=$2; shift ;;
    --nodes) NODES=$2; shift ;;
    --generators) GENERATORS=$2; shift ;;
    --broadcasts) BROADCASTS=$2; shift ;;
    --runs) RUNS=$(echo "$2" | tr , ' '); shift ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
PER_GEN=$(((CONNECTIONS + GENERATORS - 1) / GENERATORS))
if [ "$PER_GEN" -gt 17000 ]; then
  echo "$PER_GEN connections per generator: more than 17,000 (add --generators)" >&2
  exit 2
fi
[ "$BUILD" = 1 ] && cargo build --release -p tandem-server -p tandem-bench
BIN=target/release
for b in tandem tandem-bench; do
  [ -x "$BIN/$b" ] || { echo "missing $BIN/$b (run without --no-build)" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "redis-server is missing (apt-get install redis-server)" >&2; exit 1; }
# Every node and generator needs one descriptor per connection it holds.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

KEY=bench-key-0123456789abcdef
CLUSTER_KEY=bench-cluster-key-0123456789abcdef
CHANNEL=live:all

# Sets PORT to a port nobody listens on and not handed out before, below
# the ephemeral range (where the generators' own connections could hold
# it); bounded tries.
EPHEMERAL_LOW=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
TAKEN=" "
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((10000 + RANDOM % (EPHEMERAL_LOW - 10000)))
    case "$TAKEN" in *" $p "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      TAKEN="$TAKEN$p "
      PORT=$p
      return 0
    fi
  done
  echo "no free port found" >&2
  exit 1
}

WORK=$(mktemp -d)
PIDS=()
stop_all() {
  if [ "${#PIDS[@]}" -gt 0 ]; then
    kill "${PIDS[@]}" 2>/dev/null || true
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  fi
  PIDS=()
}
cleanup() {
  stop_all
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run LABEL [ENV...]: Redis, the nodes (with ENV), the generators and the
# orchestrator, then everything stopped.
run() {
  local label=$1
  shift
  local dir="$WORK/$label"
  mkdir -p "$dir"
  free_port
  local redis_port=$PORT
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    --maxclients 1000 >"$dir/redis.log" 2>&1 &
  local redis_pid=$!
  PIDS+=("$redis_pid")
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
    sleep 0.1
  done
  local urls=() node_pids=() port
  for i in $(seq 1 "$NODES"); do
    free_port
    port=$PORT
    env TANDEM_SERVER__BIND="127.0.0.1:$port" TANDEM_AUTH__API_KEYS="[\"$KEY\"]" \
      TANDEM_LOGGING__LEVEL=warn TANDEM_BROKER__KIND=redis \
      TANDEM_BROKER__URL="redis://127.0.0.1:$redis_port" TANDEM_BROKER__CLUSTER_KEY="$CLUSTER_KEY" \
      "$@" "$BIN/tandem" >"$dir/tandem-$i.log" 2>&1 &
    node_pids+=($!)
    PIDS+=($!)
    urls+=("http://127.0.0.1:$port")
  done
  for u in "${urls[@]}"; do
    local up=0
    for _ in $(seq 1 200); do
      if curl -sf "$u/health/ready" >/dev/null; then up=1; break; fi
      sleep 0.1
    done
    [ "$up" = 1 ] || { echo "$label: node $u not ready; its log:" >&2; tail -n 20 "$dir"/tandem-*.log >&2; exit 1; }
  done
  local nodes
  nodes=$(IFS=,; echo "${urls[*]}")
  local offset=0 n
  for g in $(seq 0 $((GENERATORS - 1))); do
    n=$((CONNECTIONS - offset < PER_GEN ? CONNECTIONS - offset : PER_GEN))
    [ "$n" -gt 0 ] || break
    "$BIN/tandem-bench" --url "${urls[0]}" --pid "${node_pids[0]}" cluster-load --nodes "$nodes" \
      --connections "$n" --offset "$offset" --channel "$CHANNEL" --room-size "$ROOM_SIZE" \
      --dir "$dir" --name "gen$g" >"$dir/gen$g.log" 2>&1 &
    PIDS+=($!)
    offset=$((offset + n))
  done
  local gens=$(((CONNECTIONS + PER_GEN - 1) / PER_GEN))
  echo "--- $label: $NODES nodes, $CONNECTIONS connections from $gens generators${*:+, }$*"
  "$BIN/tandem-bench" --url "${urls[0]}" --pid "${node_pids[0]}" cluster-reach \
    --node-pids "$(IFS=,; echo "${node_pids[*]}")" --redis-pid "$redis_pid" --api-key "$KEY" \
    --channel "$CHANNEL" --dir "$dir" --generators "$gens" --broadcasts "$BROADCASTS" --label "$label" ||
    { echo "$label: cluster-reach failed; the generators said:" >&2; tail -n 5 "$dir"/gen*.log >&2; }
  stop_all
}

for r in $RUNS; do
  case "$r" in
    plain) run plain TANDEM_BROKER__HISTORY_SIZE=0 ;;
    presence) run presence TANDEM_BROKER__HISTORY_SIZE=0 TANDEM_CHANNELS__PRESENCE_EVENTS='["room"]' ;;
    presence+history) run presence+history TANDEM_CHANNELS__PRESENCE_EVENTS='["room"]' ;;
    *) echo "unknown run: $r" >&2; exit 2 ;;
  esac
done
