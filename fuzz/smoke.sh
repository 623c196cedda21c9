#!/usr/bin/env bash
# Builds every fuzz target once, then runs each for SECONDS seconds (default 20).
# Exits non-zero if a build fails or a target finds a crash (or a timeout / leak / OOM).
#
#   fuzz/smoke.sh [SECONDS]
#
# Needs cargo-fuzz (installed on first use with `cargo install cargo-fuzz --locked`).
# RUSTC_BOOTSTRAP=1 lets the stable toolchain take the sanitizer flags cargo-fuzz passes.
set -euo pipefail

SECONDS_PER_TARGET="${1:-20}"
if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || [ "$SECONDS_PER_TARGET" -lt 1 ]; then
    echo "usage: $0 [SECONDS]  (a whole number of seconds, at least 1)" >&2
    exit 2
fi

cd "$(dirname "${BASH_SOURCE[0]}")"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "smoke: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

mapfile -t targets < <(cargo fuzz list)
if [ "${#targets[@]}" -eq 0 ]; then
    echo "smoke: cargo fuzz list found no targets" >&2
    exit 1
fi

echo "smoke: building ${targets[*]}" >&2
cargo fuzz build

failed=()
for target in "${targets[@]}"; do
    echo "smoke: running $target for ${SECONDS_PER_TARGET}s" >&2
    # Replay the saved regressions first (they must no longer crash), then fuzz. The corpus
    # directory is created by cargo fuzz; the regressions directory is read only.
    extra=()
    if [ -d "regressions/$target" ] && [ -n "$(ls -A "regressions/$target")" ]; then
        extra+=("regressions/$target")
    fi
    mkdir -p "corpus/$target"
    if ! cargo fuzz run "$target" "corpus/$target" "${extra[@]}" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=60 -rss_limit_mb=4096; then
        echo "smoke: $target FAILED (see artifacts/$target/)" >&2
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "smoke: crashes in: ${failed[*]}" >&2
    exit 1
fi
echo "smoke: all ${#targets[@]} targets ran ${SECONDS_PER_TARGET}s without a crash" >&2
