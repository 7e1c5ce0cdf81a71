#!/bin/sh
# `make bench`: every benchmark, each printing its own figures and ratios.
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build}
command -v jq >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null || true; }
echo "== bench/eval.py"
/usr/bin/python3 bench/eval.py --seed "$BUILD/src/seed"
echo
echo "== bench/deploy"
/usr/bin/python3 bench/deploy --seed "$BUILD/src/seed"
echo
echo "== bench/up.py"
/usr/bin/python3 bench/up.py --seed "$BUILD/src/seed"
echo
echo "== bench/shoot.py"
/usr/bin/python3 bench/shoot.py --seed "$BUILD/src/seed"
echo
echo "== bench/nix-eval.py"
/usr/bin/python3 bench/nix-eval.py --seed "$BUILD/src/seed"
echo
echo "== bench/image.py"
/usr/bin/python3 bench/image.py --seed "$BUILD/src/seed"
