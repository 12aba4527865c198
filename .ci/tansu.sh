#!/usr/bin/env bash
# Start a tansu broker (Kafka protocol) on loopback with sqlite storage and
# print its address. Usage: .ci/tansu.sh start DIR [PORT] | .ci/tansu.sh stop DIR
# The sqlite engine is used because tansu's memory engine reports wrong high
# watermarks (see the design brief).
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?state directory}
port=${3:-19092}
tansu=${TANSU_BIN:-$HOME/.cache/kafka-state/tansu/bin/tansu}

case "$cmd" in
start)
    mkdir -p "$dir"
    cd "$dir"
    rm -f tansu.db*
    nohup "$tansu" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "sqlite://tansu.db" >tansu.log 2>&1 &
    echo $! >tansu.pid
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "127.0.0.1:$port"
            exit 0
        fi
        sleep 0.2
    done
    echo "tansu did not start listening on port $port; its log:" >&2
    cat tansu.log >&2
    exit 1
    ;;
stop)
    if [ -f "$dir/tansu.pid" ]; then
        kill "$(cat "$dir/tansu.pid")" 2>/dev/null || true
        rm -f "$dir/tansu.pid"
    fi
    ;;
*)
    echo "usage: $0 start DIR [PORT] | stop DIR" >&2
    exit 2
    ;;
esac
