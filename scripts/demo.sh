#!/bin/sh
# `make demo`: run examples/hello on this machine and show where it answers.
# The node runs in the foreground; Ctrl-C stops it (DEMO_SECONDS=N stops it after N
# seconds). State goes to $SEED_STATE_DIR (default /var/lib/seed).
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build}
SEED="$PWD/$BUILD/src/seed"
STATE=${SEED_STATE_DIR:-/var/lib/seed}

echo "\$ seed eval examples/hello"
"$SEED" eval examples/hello
echo
echo "\$ seed up examples/hello --state-dir $STATE"
"$SEED" up examples/hello --state-dir "$STATE" &
node=$!
trap 'kill -TERM $node 2>/dev/null || true' INT TERM

i=0
until page=$(curl -fsS -m 1 http://127.0.0.1:8080/ 2>/dev/null); do
    i=$((i + 1))
    if ! kill -0 $node 2>/dev/null || [ $i -gt 300 ]; then
        echo "demo: web did not answer on 127.0.0.1:8080" >&2
        kill -TERM $node 2>/dev/null || true
        wait $node || true
        exit 1
    fi
    sleep 0.1
done
api=$(curl -fsS -m 5 http://127.0.0.1:8081/cgi-bin/index 2>/dev/null || echo "(no answer yet)")
echo
echo "web answers at http://127.0.0.1:8080/  ->  $page"
echo "api answers at http://127.0.0.1:8081/cgi-bin/index  ->  $api"
echo
echo "\$ seed --state-dir $STATE ps"
"$SEED" --state-dir "$STATE" ps
echo
echo "From another terminal: seed --state-dir $STATE logs web | ps | stop web | start web"
if [ -n "${DEMO_SECONDS:-}" ]; then
    sleep "$DEMO_SECONDS"
    kill -TERM $node
else
    echo "The node runs in the foreground: press Ctrl-C to stop it."
fi
wait $node
