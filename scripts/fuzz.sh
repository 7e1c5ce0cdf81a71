#!/bin/sh
# `make fuzz`: build the libFuzzer harnesses with clang (ASan + UBSan) and run each for
# a bounded time. Usage: scripts/fuzz.sh BUILD_DIR SECONDS_PER_HARNESS
# A finding leaves a crash-*/leak-*/timeout-* file in fuzz/ and fails the run.
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build-fuzz}
SECONDS_EACH=${2:-60}
if [ ! -f "$BUILD/build.ninja" ]; then
    CC=clang meson setup "$BUILD" -Dfuzzing=true -Dtests=false \
        -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
ninja -C "$BUILD" >/dev/null
status=0
for h in fuzz-spec fuzz-quantity fuzz-shoot-request fuzz-init-msg fuzz-users fuzz-webhook fuzz-source-url fuzz-www-authenticate fuzz-registry-json fuzz-nix-registration fuzz-age-header fuzz-sops; do
    corpus=fuzz/corpus-run/$h
    mkdir -p "$corpus"
    seeds=fuzz/corpus/$h
    echo "== $h for ${SECONDS_EACH}s"
    "$BUILD/fuzz/$h" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix=fuzz/ \
        $( [ "$h" = fuzz-spec ] && echo -dict=fuzz/spec.dict ) \
        "$corpus" "$seeds" 2>&1 | grep -E '^(#[0-9]+ +(DONE|INITED)|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)' || true
    if ls fuzz/crash-* fuzz/leak-* fuzz/timeout-* fuzz/oom-* >/dev/null 2>&1; then
        echo "$h: finding saved under fuzz/"
        status=1
    fi
done
exit $status
