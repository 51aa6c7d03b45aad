#!/usr/bin/env bash
# An interleaved A/B of servers: for each round and rate, each server in
# turn, a fresh server per run (so its peak RSS is that run's), flood
# control off, loadgen from this checkout. One line per run on stdout:
#   NAME-RATE-rROUND exit=S load=L p50_us p99_us delivered lost server_ns loadgen_ns server_rss_kib
# and every run's loadgen JSON and table in $OUT.
#
# Usage: loadgen/ab.sh RATE...
# Environment: BASE_BIN (the server to compare against, e.g. a release build
#              of an older commit in a worktree; required if SERVERS names base),
#              SERVERS (default "base now metrics": base = $BASE_BIN,
#              now = target/release/logosnet_server, metrics = the same with
#              --metrics on loopback and loadgen --metrics-url),
#              ROUNDS (default 1), DURATION (default 10), OUT (default ab-results).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-ab-results}
ROUNDS=${ROUNDS:-1}
DURATION=${DURATION:-10}
SERVERS=${SERVERS:-base now metrics}
cargo build --release --locked -p logosnet --bin logosnet_server -p loadgen --bin loadgen >&2 || exit 1
LOADGEN=target/release/loadgen
mkdir -p "$OUT"
for round in $(seq "$ROUNDS"); do
    for rate in "$@"; do
        for name in $SERVERS; do
            case $name in
                base) bin=${BASE_BIN:?set BASE_BIN to the server to compare against}; extra="" ;;
                now) bin=target/release/logosnet_server; extra="" ;;
                metrics) bin=target/release/logosnet_server; extra="--metrics 127.0.0.1:0" ;;
                *) echo "unknown server $name" >&2; exit 64 ;;
            esac
            # shellcheck disable=SC2086
            "$bin" --ip 127.0.0.1 --port 0 --flood-rate 0 $extra >"$OUT/server.out" 2>"$OUT/server.log" &
            pid=$!
            for _ in $(seq 100); do
                if [ "$name" = metrics ]; then
                    grep -q " (metrics)$" "$OUT/server.out" && break
                else
                    grep -q "^listening on 127.0.0.1:[0-9]*$" "$OUT/server.out" && break
                fi
                sleep 0.05
            done
            port=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$OUT/server.out")
            scrape=()
            if [ "$name" = metrics ]; then
                at=$(sed -n 's/^listening on \(.*\) (metrics)$/\1/p' "$OUT/server.out")
                scrape=(--metrics-url "http://$at/metrics")
            fi
            tag="$name-$rate-r$round"
            load=$(cut -d' ' -f1 /proc/loadavg)
            "$LOADGEN" --ip 127.0.0.1 --port "$port" --rate "$rate" --duration "$DURATION" \
                --server-pid "$pid" "${scrape[@]}" --json "$OUT/$tag.json" >"$OUT/$tag.txt" 2>"$OUT/$tag.err"
            status=$?
            kill -TERM "$pid"
            wait "$pid" 2>/dev/null
            echo "$tag exit=$status load=$load $(jq -r '[.latency.delivery.p50_us, .latency.delivery.p99_us, .deliveries.delivered, .deliveries.lost, .server.cpu_per_delivery_ns, .loadgen.cpu_per_delivery_ns, .server.peak_rss_kib] | @tsv' "$OUT/$tag.json")"
        done
    done
done
