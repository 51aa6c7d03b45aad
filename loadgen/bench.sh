#!/usr/bin/env bash
# Reproduces the tables in BENCHMARKS.md: builds release binaries, then for
# each rate starts a fresh logosnet_server on a free port (so its peak RSS is
# that run's), runs loadgen against it with a full room (255 + 255), and
# writes <rate>.json / .hgrm / .svg / .txt plus the load average before the
# run into $OUT. Prints a Markdown table at the end.
#
# Usage: loadgen/bench.sh [RATE...]          (default: 500 1000 2000 5000 10000)
# Environment: OUT (default bench-results), DURATION (default 10 s),
#              EXTRA (more loadgen arguments, e.g. "--threads 2"),
#              SERVER_ARGS (the server's arguments after --ip and --port;
#              default "--flood-rate 0": flood control off, because the
#              benchmark measures the engine, not the spam rule. Set it to
#              something else, or to nothing (SERVER_ARGS=), for a server
#              without that option or for A/B runs, e.g. "--write-gap-ms 0";
#              with "--metrics 127.0.0.1:0" loadgen also reads the server's
#              own figures with --metrics-url: the metrics on/off A/B),
#              TLS=1 (loadgen connects over TLS: the script makes a CA and a
#              certificate for 127.0.0.1 in $OUT/certs, gives the server a
#              TLS port beside its plaintext one, and loadgen --tls-ca).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-bench-results}
DURATION=${DURATION:-10}
EXTRA=${EXTRA:-}
# Unset means the default; set but empty means no arguments.
SERVER_ARGS=${SERVER_ARGS---flood-rate 0}
TLS=${TLS:-}
RATES=("$@")
[ ${#RATES[@]} -gt 0 ] || RATES=(500 1000 2000 5000 10000)

cargo build --release -p logosnet --bin logosnet_server
cargo build --release -p loadgen --bin loadgen
mkdir -p "$OUT"
if [ -n "$TLS" ]; then
    cargo run --release -q -p devcerts --example make_certs -- "$OUT/certs" 127.0.0.1 >&2
    SERVER_ARGS="$SERVER_ARGS --tls-port 0 --tls-cert $OUT/certs/cert.pem --tls-key $OUT/certs/key.pem"
    EXTRA="$EXTRA --tls-ca $OUT/certs/ca.pem"
    listening=' (tls)'
else
    listening=''
fi
SERVER=${SERVER_BIN:-target/release/logosnet_server}
LOADGEN=target/release/loadgen

server_pid=""
stop_server() {
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
trap stop_server EXIT

for rate in "${RATES[@]}"; do
    # shellcheck disable=SC2086
    "$SERVER" --ip 127.0.0.1 --port 0 $SERVER_ARGS >"$OUT/server-$rate.out" 2>"$OUT/server-$rate.log" &
    server_pid=$!
    for _ in $(seq 100); do
        grep -q "^listening on .*:[0-9]*${listening}$" "$OUT/server-$rate.out" 2>/dev/null && break
        sleep 0.05
    done
    if [ -n "$TLS" ]; then
        port=$(sed -n 's/^listening on .*:\([0-9]*\) (tls)$/\1/p' "$OUT/server-$rate.out")
    else
        port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$OUT/server-$rate.out")
    fi
    if [ -z "$port" ]; then
        echo "the server did not start with arguments '$SERVER_ARGS':" >&2
        cat "$OUT/server-$rate.log" >&2
        echo "(a server without one of those options: run with SERVER_ARGS= or other arguments)" >&2
        exit 1
    fi
    # The server's metrics endpoint, when SERVER_ARGS asks for one (its
    # line comes after the chat ports').
    if [[ " $SERVER_ARGS " == *" --metrics "* ]]; then
        for _ in $(seq 100); do
            grep -q " (metrics)$" "$OUT/server-$rate.out" 2>/dev/null && break
            sleep 0.05
        done
    fi
    metrics=$(sed -n 's/^listening on \(.*\) (metrics)$/--metrics-url http:\/\/\1\/metrics/p' "$OUT/server-$rate.out")
    cut -d' ' -f1-3 /proc/loadavg >"$OUT/$rate.load"
    echo "== rate $rate msgs/s (load average before: $(cat "$OUT/$rate.load"))" >&2
    status=0
    # shellcheck disable=SC2086
    "$LOADGEN" --ip 127.0.0.1 --port "$port" --rate "$rate" --duration "$DURATION" \
        --server-pid "$server_pid" --json "$OUT/$rate.json" --hgrm "$OUT/$rate.hgrm" \
        --svg "$OUT/$rate.svg" $metrics $EXTRA >"$OUT/$rate.txt" 2>"$OUT/$rate.progress" || status=$?
    cat "$OUT/$rate.txt"
    if [ "$status" -ne 0 ]; then
        # A run stopped before its traffic says why in its last stderr line.
        [ -s "$OUT/$rate.txt" ] || tail -n 1 "$OUT/$rate.progress" >&2
        echo "loadgen exited with status $status at rate $rate" >&2
    fi
    stop_server
done

echo
echo "commit $(git rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
if [[ " $SERVER_ARGS " == *" --flood-rate 0 "* ]]; then
    flood="flood control off for the benchmark (--flood-rate 0)"
else
    flood="flood control at the server's default"
fi
echo "server arguments: '${SERVER_ARGS}'; $flood; loadgen arguments: '${EXTRA}'${TLS:+; over TLS}"
echo
echo "| offered msgs/s | sent/s | deliveries/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | send lag p99 ms | lost/dup/ooo | loadgen CPU (cores) | server CPU (cores) | loadgen ns/delivery | server ns/delivery | loadgen the bottleneck | server peak RSS MiB | load avg before | pass |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for rate in "${RATES[@]}"; do
    [ -f "$OUT/$rate.json" ] || continue
    jq -r --arg load "$(cat "$OUT/$rate.load")" '
        def ms: . / 1000 | . * 100 | round / 100;
        def ns: if . == null then "n/a" else round end;
        "| \(.config.rate) | \(.traffic.send_rate | round) | \(.deliveries.per_second | round) | \(.latency.delivery.p50_us | ms) | \(.latency.delivery.p90_us | ms) | \(.latency.delivery.p99_us | ms) | \(.latency.delivery.p99_9_us | ms) | \(.latency.delivery.max_us | ms) | \(.latency.send_lag.p99_us | ms) | \(.deliveries.lost)/\(.deliveries.duplicated)/\(.deliveries.out_of_order) | \(.loadgen.cpu_traffic_cores * 100 | round / 100) | \(.server.cpu_traffic_cores * 100 | round / 100) | \(.loadgen.cpu_per_delivery_ns | ns) | \(.server.cpu_per_delivery_ns | ns) | \(if any(.warnings[]; startswith("loadgen is the bottleneck")) then "yes" else "no" end) | \(.server.peak_rss_kib / 1024 | . * 10 | round / 10) | \($load) | \(.passed) |"
    ' "$OUT/$rate.json"
done
