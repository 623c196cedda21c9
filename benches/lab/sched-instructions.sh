#!/bin/bash
# Instructions per pick of every lb-sched algorithm at 1000 backends, counted by callgrind:
# the sched bench's best-of mode (same pools, requests and harness as criterion's) run once
# with 2 rounds and once with 1 round of 200 000 picks; the difference over 200 000 is the
# cost of one pick with the harness, free of setup. Instruction counts repeat exactly for the
# same binary whatever else the machine does, unlike times on a shared machine.
# `maglev-build` as an ALG counts one `sched/maglev/build/1000` build instead (SCHED_BUILDS=1
# and 2, the difference). Needs valgrind and a Rust toolchain.
# Usage: benches/lab/sched-instructions.sh [ALG ...]
set -euo pipefail
command -v valgrind >/dev/null || { echo "missing valgrind"; exit 2; }
cd "$(dirname "$0")/../.."
bench=$(cargo bench --bench sched --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p')
[ -x "$bench" ] || { echo "could not build the sched bench"; exit 1; }
algs=("$@")
if [ ${#algs[@]} -eq 0 ]; then
    mapfile -t algs < <(SCHED_BEST_OF=1 "$bench" | sed -n 's|^sched/\([^/]*\)/pick/.*|\1|p')
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "instructions per pick at 1000 backends (callgrind, harness included)"
for alg in "${algs[@]}"; do
    if [ "$alg" = maglev-build ]; then
        for builds in 1 2; do
            SCHED_BUILDS=$builds valgrind --tool=callgrind \
                --callgrind-out-file="$out/$builds" "$bench" >/dev/null 2>&1
        done
        one=$(sed -n 's/^summary: //p' "$out/1")
        two=$(sed -n 's/^summary: //p' "$out/2")
        echo "sched/maglev/build/1000 $(( two - one )) instructions per build"
        continue
    fi
    for rounds in 1 2; do
        SCHED_BEST_OF=$rounds SCHED_ONLY=$alg valgrind --tool=callgrind \
            --callgrind-out-file="$out/$rounds" "$bench" >/dev/null 2>&1
    done
    one=$(sed -n 's/^summary: //p' "$out/1")
    two=$(sed -n 's/^summary: //p' "$out/2")
    echo "sched/$alg/pick/1000 $(( (two - one) / 200000 ))"
done
