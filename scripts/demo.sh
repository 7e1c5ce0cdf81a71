#!/bin/sh
# `make demo`: the main job of the current milestone, on examples/hello.
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build}
SEED="$BUILD/src/seed"

echo "\$ seed eval examples/hello"
"$SEED" eval examples/hello
echo
echo "\$ seed eval examples/hello --json"
"$SEED" eval examples/hello --json
