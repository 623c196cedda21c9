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
# Instructions of a run with VAR=2 minus a run with VAR=1 (VAR and the other variables of the
# environment given as arguments): what one more round or build costs, set-up excluded.
difference() {
    local var=$1 n
    shift
    for n in 1 2; do
        env "$@" "$var=$n" valgrind --tool=callgrind \
            --callgrind-out-file="$out/$n" "$bench" >/dev/null 2>&1
    done
    echo $(( $(sed -n 's/^summary: //p' "$out/2") - $(sed -n 's/^summary: //p' "$out/1") ))
}
for alg in "${algs[@]}"; do
    if [ "$alg" = maglev-build ]; then
        echo "sched/maglev/build/1000 $(difference SCHED_BUILDS) instructions per build"
    else
        echo "sched/$alg/pick/1000 $(( $(difference SCHED_BEST_OF SCHED_ONLY="$alg") / 200000 ))"
    fi
done
