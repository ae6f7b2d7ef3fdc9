#!/usr/bin/env bash
# Runs every Tandem test on a fresh machine: installs what the tests need
# when it is missing (Debian packages, npm packages), then format, lint, the
# Rust unit and end-to-end tests, and the suites outside Cargo.
#
#   scripts/test.sh            # everything
#
# `.ci/run` calls this same script. A tool a test needs is installed here,
# never skipped: a test whose tool is missing fails.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export DEBIAN_FRONTEND=noninteractive

# --- Debian packages -------------------------------------------------------
# jq: the log-analysis recipes; prometheus: promtool and the real Prometheus;
# chromium: browser tests; redis-server: the multi-node tests; curl and
# openssl: the TLS tests (curl over https, a certificate for the browser).
need=()
command -v jq >/dev/null 2>&1 || need+=(jq)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if ((${#need[@]})); then
    echo "--- installing: ${need[*]}"
    sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo -n)
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# Services the tests start themselves must not also run as system daemons
# holding their default ports.
if command -v systemctl >/dev/null 2>&1; then
    systemctl stop prometheus redis-server >/dev/null 2>&1 || true
fi

echo "--- versions"
rustc --version
cargo --version
jq --version
promtool --version 2>&1 | head -n 1
chromium --version 2>/dev/null || true
redis-server --version
node --version

echo "--- cargo fmt"
cargo fmt --all -- --check

echo "--- cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "--- cargo test"
cargo test --workspace

# --- Prometheus rules and config (dashboards/prometheus): promtool checks
# the scrape config (in a scratch copy, with a stand-in for the operator
# token file it names), checks the alert rules and runs their unit tests.
# The Prometheus e2e test (tests/tests/e2e/prometheus.rs) ran with cargo test.
echo "--- promtool"
promdir=$(mktemp -d)
trap 'rm -rf "$promdir"' EXIT
cp dashboards/prometheus/prometheus.yml dashboards/prometheus/alerts.yml "$promdir/"
printf 'stand-in-token' >"$promdir/tandem-token"
promtool check config "$promdir/prometheus.yml"
promtool check rules dashboards/prometheus/alerts.yml
(cd dashboards/prometheus && promtool test rules alerts_test.yml)

# --- browser client (client-sdk/js): type check and size budget, the
# committed dist/ (embedded in tandem) equal to a fresh build, and the unit
# tests of its decision modules.
echo "--- browser client: build check and unit tests"
(cd client-sdk/js && npm ci --no-audit --no-fund --loglevel=error && npm run --silent check-dist && npm test)

# --- the example game's HTTP backend (examples/tictactoe/node-backend):
# its rules and its service, no dependencies beyond Node.
echo "--- example game: Node backend unit tests"
(cd examples/tictactoe/node-backend && node --test)

# --- browser suites (tests/browser): Debian's Chromium via playwright-core,
# against the tandem binary built by the Rust tests above.
echo "--- browser tests"
cargo build -p tandem-server --bin tandem
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error && npm test)

echo "--- all suites passed"
