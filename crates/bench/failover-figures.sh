#!/usr/bin/env bash
# The failover figures of docs/deployment.md: runs the cluster failure tests (tests/it/nats/
# cluster.rs: a real 3-node nats-server cluster on loopback, R3 on disk, the real tributary
# binary under load) RUNS times (default 1) and prints each run's FAILOVER lines as a Markdown
# table: 5xx answers, latency p99 before the failure and p99/max of the requests open at or
# sent after it, the subscriber's longest pause, lost and duplicated (the tests fail unless
# both are 0). Needs nats-server (Debian package `nats-server`, or NATS_SERVER=/path).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${RUNS:-1}"
cargo build --quiet -p tributary-adapter-arcadia -p tributary-adapter-finicity \
    -p tributary-adapter-klavi
lines="$(mktemp)"
trap 'rm -f "$lines"' EXIT
for run in $(seq "$runs"); do
    cargo test --quiet --test it nats::cluster -- --nocapture --test-threads=1 2>&1 \
        | grep -o 'FAILOVER scenario=.*' | sed "s/^/run=$run /" | tee -a "$lines" >&2
done
echo "| run | failure | acknowledged | 5xx | lost | duplicated | p99 before (ms) | p99 during failover (ms) | max during failover (ms) | subscriber pause (ms) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
awk '{
    delete f
    for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", f["run"], f["scenario"],
        f["acknowledged"], f["5xx"], f["lost"], f["duplicated"], f["p99_before_ms"],
        f["p99_failover_ms"], f["max_failover_ms"], f["subscriber_pause_ms"]
}' "$lines"
