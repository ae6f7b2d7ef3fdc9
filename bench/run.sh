#!/usr/bin/env bash
# Side by side: Tandem, the raw tokio reference (tandem-reference), the
# actix-web floor (tandem-floor, and its upgrade and actix-ws variants), Nchan (nginx,
# bench/nchan/) and Node `ws` (bench/node-ws/), each started as a fresh
# process on a free loopback port for every measurement, one after another
# (never two at once), measured with tandem-bench. Prints every raw result
# line, then the table with ratios and which performance targets the run
# meets. Nothing asserts the numbers. Installs what is missing: nginx and
# its Nchan module (apt-get), Node and npm (apt-get), `ws` (npm ci).
#
#   bench/run.sh            # 10,000 connections, about 10 s per rate row
#   bench/run.sh --quick    # small sizes, a few minutes
#   bench/run.sh --19k      # also idle WebSocket and SSE at 19,000 connections
#   bench/run.sh --no-build # use the release binaries already built
#   bench/run.sh --no-peers # without Nchan and Node (nothing installed)
#   bench/run.sh --readme   # also put the table in README.md's benchmark section
#   bench/run.sh --cluster  # instead: 100,000 idle connections on six nodes and one Redis (bench/scripts/cluster100k.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0 BIG=0 BUILD=1 PEERS=1 README=0 CLUSTER=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --19k) BIG=1 ;;
    --no-build) BUILD=0 ;;
    --no-peers) PEERS=0 ;;
    --readme) README=1 ;;
    --cluster) CLUSTER=1 ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done
if [ "$CLUSTER" = 1 ]; then
  if [ "$BUILD" = 1 ]; then bench/scripts/cluster100k.sh; else bench/scripts/cluster100k.sh --no-build; fi
  exit
fi

# Servers and the load generator need one descriptor per connection.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
CORES=$(nproc)
KEY=bench-key-0123456789abcdef

if [ "$QUICK" = 1 ]; then
  IDLE=1000
  SUBS_FAST=200 RATE_FAST=100 MSGS_FAST=300    # 3 s
  SUBS_WIDE=1000 RATE_WIDE=10 MSGS_WIDE=30     # 3 s
  SUBS_BURST=200 MSGS_BURST=200
  CMD_CLIENTS=20 CMD_EACH=100
else
  IDLE=10000
  SUBS_FAST=1000 RATE_FAST=100 MSGS_FAST=1000  # 10 s
  SUBS_WIDE=10000 RATE_WIDE=10 MSGS_WIDE=100   # 10 s
  SUBS_BURST=1000 MSGS_BURST=1000
  CMD_CLIENTS=50 CMD_EACH=400
fi
BIG_IDLE=19000

if [ "$BUILD" = 1 ]; then
  cargo build --release -p tandem-server -p tandem-bench
fi
BIN=target/release
for b in tandem tandem-bench tandem-reference tandem-floor; do
  [ -x "$BIN/$b" ] || { echo "missing $BIN/$b (run without --no-build)" >&2; exit 1; }
done

# Nchan and Node `ws`: install what is missing; a peer that cannot be
# installed is left out of the run (its columns print –).
NCHAN_MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
apt_install() {
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@"; } >&2
}
KINDS_WS="tandem reference floor upgrade actix-ws"
KINDS_SSE="tandem reference floor"
KINDS_RATE="tandem reference"
if [ "$PEERS" = 1 ]; then
  if ! command -v nginx >/dev/null || [ ! -f "$NCHAN_MODULE" ]; then
    echo "installing nginx and its Nchan module" >&2
    apt_install nginx libnginx-mod-nchan || echo "could not install nginx + Nchan: measured without it" >&2
  fi
  if command -v nginx >/dev/null && [ -f "$NCHAN_MODULE" ]; then
    KINDS_WS="$KINDS_WS nchan" KINDS_SSE="$KINDS_SSE nchan" KINDS_RATE="$KINDS_RATE nchan"
  fi
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "installing Node and npm" >&2
    apt_install nodejs npm || echo "could not install Node: measured without it" >&2
  fi
  if command -v npm >/dev/null && [ ! -f bench/node-ws/node_modules/ws/package.json ]; then
    (cd bench/node-ws && npm ci --no-audit --no-fund >&2) || echo "npm ci failed: measured without Node ws" >&2
  fi
  if command -v node >/dev/null && [ -f bench/node-ws/node_modules/ws/package.json ]; then
    KINDS_WS="$KINDS_WS node" KINDS_SSE="$KINDS_SSE node" KINDS_RATE="$KINDS_RATE node"
  fi
fi

WORK=$(mktemp -d)
PID=""
# Extra environment of the tandem under test (the commands measurement).
TANDEM_ENV=""
cleanup() {
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT

# A port nobody listens on, below the ephemeral range (where the load
# generator's own connections could hold it); bounded tries.
EPHEMERAL_LOW=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((10000 + RANDOM % (EPHEMERAL_LOW - 10000)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}

# start_server KIND: tandem | reference | floor | upgrade | actix-ws | nchan | node.
# Sets PID (for nginx, the master: tandem-bench adds its workers), URL.
# A port taken between the check and the bind gets a second and third try.
start_server() {
  for _ in 1 2 3; do
    try_start "$1" && return 0
  done
  echo "$1 did not start:" >&2
  cat "$WORK/$1.log" >&2
  return 1
}

try_start() {
  local kind=$1 port
  port=$(free_port)
  URL="http://127.0.0.1:$port"
  case "$kind" in
    tandem)
      # shellcheck disable=SC2086 # TANDEM_ENV: one VAR=value a word
      env $TANDEM_ENV TANDEM_SERVER__BIND="127.0.0.1:$port" TANDEM_AUTH__API_KEYS="[\"$KEY\"]" \
        TANDEM_LOGGING__LEVEL=warn "$BIN/tandem" >"$WORK/$kind.log" 2>&1 &
      ;;
    reference) "$BIN/tandem-reference" --port "$port" --workers "$CORES" >"$WORK/$kind.log" 2>&1 & ;;
    floor) "$BIN/tandem-floor" --port "$port" --workers "$CORES" >"$WORK/$kind.log" 2>&1 & ;;
    actix-ws) "$BIN/tandem-floor" --port "$port" --workers "$CORES" --ws actix-ws >"$WORK/$kind.log" 2>&1 & ;;
    upgrade) "$BIN/tandem-floor" --port "$port" --workers "$CORES" --ws upgrade >"$WORK/$kind.log" 2>&1 & ;;
    nchan)
      local dir="$WORK/nchan-$port"
      mkdir -p "$dir"
      sed -e "s|@PORT@|$port|g; s|@WORKERS@|$CORES|g; s|@DIR@|$dir|g" bench/nchan/nginx.conf >"$dir/nginx.conf"
      nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >"$WORK/$kind.log" 2>&1 &
      ;;
    node) node bench/node-ws/server.js --port "$port" >"$WORK/$kind.log" 2>&1 & ;;
  esac
  PID=$!
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      sleep 0.5 # let it finish starting (background threads, first allocations)
      [ "$kind" != nchan ] || nchan_welcome "$port" || { stop_server; return 1; }
      return 0
    fi
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
  done
  stop_server
  return 1
}

# Nchan sends no welcome of its own: publish one, which every subscriber
# then gets first (the channel's oldest stored message), as the other
# servers send theirs.
nchan_welcome() {
  local body='{"type":"welcome"}' status=""
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
    "${#body}" "$body" >&3
  read -r -t 5 status <&3 || true
  exec 3<&-
  case "$status" in "HTTP/1.1 20"*) return 0 ;; *) echo "nchan welcome: ${status:-no answer}" >&2; return 1 ;; esac
}

stop_server() {
  [ -n "$PID" ] || return 0
  # nginx's workers, by pid: a master killed hard would leave them running
  # (a master that stops by itself stops them first).
  local kids
  kids=$(pgrep -P "$PID" 2>/dev/null || true)
  kill "$PID" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$PID" 2>/dev/null; then
    # shellcheck disable=SC2086 # one pid a word
    kill -9 "$PID" $kids 2>/dev/null || true
  fi
  wait "$PID" 2>/dev/null || true
  PID=""
}

# measure KEY SERVER tandem-bench-args…: one fresh server, one measurement;
# the result line goes to stdout and to $WORK/KEY.
measure() {
  local key=$1 kind=$2
  shift 2
  start_server "$kind" || { echo "[$kind] not measured: the server did not start"; return 0; }
  "$BIN/tandem-bench" --url "$URL" --pid "$PID" "$@" 2>"$WORK/$key.err" | tee "$WORK/$key" | sed "s/^/[$kind] /" ||
    echo "[$kind] tandem-bench failed"
  if [ -s "$WORK/$key.err" ]; then
    echo "[$kind] $(sort "$WORK/$key.err" | uniq -c | sort -rn | head -3 | tr -s ' ' | tr '\n' ';')"
  fi
  stop_server
}

# Fields of a result line.
kib() { sed -n 's/.*: \([0-9.]*\) KiB per connection.*/\1/p' "$WORK/$1" 2>/dev/null; }
conns() { sed -n 's/^idle [a-z]*: \([0-9]*\) connections.*/\1/p' "$WORK/$1" 2>/dev/null; }
rate() { sed -n 's/^idle .* s (\([0-9]*\)\/s).*/\1/p' "$WORK/$1" 2>/dev/null; }
us() { sed -n 's/.* = \([0-9.]*\) us per delivery.*/\1/p' "$WORK/$1" 2>/dev/null; }
p99() { sed -n 's/.* p99 \([0-9]*\) ms.*/\1/p' "$WORK/$1" 2>/dev/null; }
per_s() { sed -n 's/.* delivered in [0-9.]* s (\([0-9]*\)\/s).*/\1/p' "$WORK/$1" 2>/dev/null; }
got() { sed -n 's/.*: \([0-9]*\) of \([0-9]*\) delivered.*/\1 of \2/p' "$WORK/$1" 2>/dev/null; }
# ratio A B: A / B with two decimals, or – when either is missing.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "–"; else printf "%.2f×", a / b }'; }
or_dash() { if [ -n "$1" ]; then echo "$1"; else echo "–"; fi; }

echo "machine: $CORES cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "open-file limit: $(ulimit -n); load average $(cut -d' ' -f1-3 /proc/loadavg) at the start; load generator on the same cores"
echo

for kind in $KINDS_WS; do
  measure "idle-ws-$kind" "$kind" idle --connections "$IDLE" --transport ws
done
for kind in $KINDS_SSE; do
  measure "idle-sse-$kind" "$kind" idle --connections "$IDLE" --transport sse
done
if [ "$BIG" = 1 ]; then
  for kind in tandem reference upgrade; do
    measure "big-ws-$kind" "$kind" idle --connections "$BIG_IDLE" --transport ws
  done
  for kind in tandem reference floor; do
    measure "big-sse-$kind" "$kind" idle --connections "$BIG_IDLE" --transport sse
  done
fi
for kind in $KINDS_RATE; do
  # Nchan delivers the body verbatim and stamps nothing: the publisher's
  # clock goes in the body for the latency figures.
  stamp=()
  [ "$kind" != nchan ] || stamp=(--stamp-body)
  measure "fast-ws-$kind" "$kind" pace --transport ws --subscribers "$SUBS_FAST" --rate "$RATE_FAST" \
    --messages "$MSGS_FAST" --api-key "$KEY" "${stamp[@]}"
  measure "fast-sse-$kind" "$kind" pace --transport sse --subscribers "$SUBS_FAST" --rate "$RATE_FAST" \
    --messages "$MSGS_FAST" --api-key "$KEY" "${stamp[@]}"
  measure "wide-ws-$kind" "$kind" pace --transport ws --subscribers "$SUBS_WIDE" --rate "$RATE_WIDE" \
    --messages "$MSGS_WIDE" --api-key "$KEY" "${stamp[@]}"
  measure "wide-sse-$kind" "$kind" pace --transport sse --subscribers "$SUBS_WIDE" --rate "$RATE_WIDE" \
    --messages "$MSGS_WIDE" --api-key "$KEY" "${stamp[@]}"
  measure "burst-ws-$kind" "$kind" pace --transport ws --subscribers "$SUBS_BURST" --rate 0 \
    --messages "$MSGS_BURST" --api-key "$KEY" "${stamp[@]}"
done

# Commands through Tandem to a game backend that answers at once (inside
# tandem-bench), against the same requests sent to that backend directly.
# Limits are raised above the load: this measures the path, not the caps.
BACKEND_PORT=$(free_port)
TANDEM_ENV="TANDEM_BACKEND__COMMAND_URL=http://127.0.0.1:$BACKEND_PORT/command \
TANDEM_BACKEND__COMMANDS_PER_SECOND=1000000 TANDEM_BACKEND__COMMANDS_BURST=1000000 \
TANDEM_TRANSPORT__INBOUND_RATE_PER_SECOND=1000000 TANDEM_TRANSPORT__INBOUND_BURST=1000000"
measure commands-tandem tandem commands --backend-port "$BACKEND_PORT" --clients "$CMD_CLIENTS" --commands "$CMD_EACH"
TANDEM_ENV=""

k() { echo "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }
# cells FIELD KEY-PREFIX KINDS…: one table cell per server, – where a
# server was not measured in that row.
cells() {
  local field=$1 prefix=$2 kind out="" v
  shift 2
  for kind in tandem reference floor upgrade actix-ws nchan node; do
    v=""
    case " $* " in *" $kind "*) v=$($field "$prefix-$kind") ;; esac
    out="$out | $(or_dash "$v")"
  done
  echo "$out"
}
row() { # label unit field key-prefix kinds…
  local label=$1 unit=$2 field=$3 prefix=$4 t r f
  shift 4
  t=$($field "$prefix-tandem") r=$($field "$prefix-reference") f=""
  # The floor of Tandem's design: the upgrade floor where it was measured
  # (WebSocket), the held-response floor otherwise (SSE).
  case " $* " in
    *" upgrade "*) f=$($field "$prefix-upgrade") ;;
    *" floor "*) f=$($field "$prefix-floor") ;;
  esac
  echo "| $label$(cells "$field" "$prefix" "$@" | sed "s/^ | \([^ |]*\)/ | \1$unit/") | $(ratio "$t" "$r") | $(ratio "$t" "$f") |"
}
echo
table() {
  echo "| measure | Tandem | raw reference | actix floor | upgrade floor | actix-ws | Nchan | Node ws | Tandem ÷ reference | Tandem ÷ floor |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  row "idle RSS per WebSocket connection, $(k "$IDLE")" " KiB" kib idle-ws $KINDS_WS
  row "idle RSS per SSE connection, $(k "$IDLE")" " KiB" kib idle-sse $KINDS_SSE
  if [ "$BIG" = 1 ]; then
    row "idle RSS per WebSocket connection, $(k "$BIG_IDLE")" " KiB" kib big-ws tandem reference upgrade
    row "idle RSS per SSE connection, $(k "$BIG_IDLE")" " KiB" kib big-sse tandem reference floor
  fi
  row "CPU µs per delivery, $(k "$SUBS_FAST") WS subs × $RATE_FAST msg/s" "" us fast-ws $KINDS_RATE
  row "CPU µs per delivery, $(k "$SUBS_FAST") SSE subs × $RATE_FAST msg/s" "" us fast-sse $KINDS_RATE
  row "CPU µs per delivery, $(k "$SUBS_WIDE") WS subs × $RATE_WIDE msg/s" "" us wide-ws $KINDS_RATE
  row "CPU µs per delivery, $(k "$SUBS_WIDE") SSE subs × $RATE_WIDE msg/s" "" us wide-sse $KINDS_RATE
  row "p99 latency, $(k "$SUBS_WIDE") WS subs × $RATE_WIDE msg/s" " ms" p99 wide-ws $KINDS_RATE
  row "p99 latency, $(k "$SUBS_WIDE") SSE subs × $RATE_WIDE msg/s" " ms" p99 wide-sse $KINDS_RATE
  row "WebSocket accepts per second ($(k "$IDLE") connects, 256 in flight)" "" rate idle-ws $KINDS_WS
  row "burst deliveries per second, $(k "$SUBS_BURST") WS subs × $(k "$MSGS_BURST") publications back to back" "" \
    per_s burst-ws $KINDS_RATE
}
table | tee "$WORK/table.md"

# got-list FIELD KEY KINDS…: "kind value" for each measured server.
list() {
  local field=$1 key=$2 kind out=""
  shift 2
  for kind in "$@"; do out="$out${out:+ / }$kind $(or_dash "$($field "$key-$kind")")"; done
  echo "$out"
}
echo
echo "delivered: $SUBS_FAST×$RATE_FAST WS: $(list got fast-ws $KINDS_RATE); SSE: $(list got fast-sse $KINDS_RATE);" \
  "$SUBS_WIDE×$RATE_WIDE WS: $(list got wide-ws $KINDS_RATE); SSE: $(list got wide-sse $KINDS_RATE); burst: $(list got burst-ws $KINDS_RATE)"
echo "connections held: WS $(list conns idle-ws $KINDS_WS); SSE $(list conns idle-sse $KINDS_SSE)"
echo "floors: actix floor = actix-web holding each response; upgrade floor = actix-http's upgrade service keeping only the socket (Tandem's WebSocket design); Tandem ÷ floor uses the upgrade floor for WebSocket rows."
echo "nchan: nginx with $CORES worker processes (one per core); its RSS and CPU are the master's and the workers' summed." \
  "Node ws: one process."
# Targets of the performance work, judged on this run.
verdict() { awk -v v="$1" -v lim="$2" -v op="$3" 'BEGIN {
  if (v == "" || lim == "") { print "not measured"; exit }
  ok = (op == "le") ? (v + 0 <= lim + 0) : (v + 0 >= lim + 0)
  print (ok ? "met" : "NOT met") }'; }
ratio_num() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print ""; else printf "%.3f", a / b }'; }
echo
echo "targets:"
for t in ws sse; do
  label=$([ "$t" = ws ] && echo WebSocket || echo SSE)
  echo "- $label ≤ 3.0 KiB per idle connection, $(k "$IDLE"): $(or_dash "$(kib "idle-$t-tandem")") KiB, $(verdict "$(kib "idle-$t-tandem")" 3.0 le)"
  if [ "$BIG" = 1 ]; then
    echo "- $label ≤ 3.0 KiB per idle connection, $(k "$BIG_IDLE"): $(or_dash "$(kib "big-$t-tandem")") KiB, $(verdict "$(kib "big-$t-tandem")" 3.0 le)"
  fi
done
for row in fast-ws fast-sse wide-ws wide-sse; do
  x=$(ratio_num "$(us "$row-tandem")" "$(us "$row-reference")")
  echo "- CPU per delivery ≤ 1.05× the reference ($row): $(or_dash "$x")×, $(verdict "$x" 1.05 le)"
done
for row in wide-ws wide-sse; do
  x=$(ratio_num "$(p99 "$row-tandem")" "$(p99 "$row-reference")")
  echo "- p99 latency ≤ 1.05× the reference ($row): $(or_dash "$x")×, $(verdict "$x" 1.05 le)"
done
x=$(ratio_num "$(rate idle-ws-tandem)" "$(rate idle-ws-reference)")
echo "- accepts ≥ 0.95× the reference: $(or_dash "$x")×, $(verdict "$x" 0.95 ge)"
x=$(ratio_num "$(per_s burst-ws-tandem)" "$(per_s burst-ws-reference)")
echo "- burst throughput ≥ 0.9× the reference: $(or_dash "$x")×, $(verdict "$x" 0.9 ge)"
echo "- commands through Tandem: $(or_dash "$(sed -n 's/.*s (\([0-9]*\)\/s).*/\1/p' "$WORK/commands-tandem" 2>/dev/null)")/s; $(or_dash "$(sed -n 's/.*\(added p50 [0-9.]* ms p99 [0-9.]* ms\).*/\1/p' "$WORK/commands-tandem" 2>/dev/null)") over the backend's own round trip"
if [ "$BIG" = 1 ]; then
  echo "- 19,000 connections held: WebSocket $(or_dash "$(conns big-ws-tandem)"), SSE $(or_dash "$(conns big-sse-tandem)")"
fi

# --readme: the README's benchmark table becomes this run's.
if [ "$README" = 1 ]; then
  awk -v table="$WORK/table.md" '
    /<!-- bench-table:end -->/ { while ((getline line < table) > 0) print line; skip = 0 }
    !skip { print }
    /<!-- bench-table:start -->/ { skip = 1 }
  ' README.md >"$WORK/README.md" && cp "$WORK/README.md" README.md
  echo "README.md: benchmark table replaced by this run's"
fi
