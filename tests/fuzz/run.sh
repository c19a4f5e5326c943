#!/bin/sh
# Fuzz the redactor for SECONDS seconds (default 60), as CI could:
#   tests/fuzz/run.sh 300
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain; on stable,
# RUSTC_BOOTSTRAP=1 is set so the sanitizer flags are accepted. Exits non-zero, with
# the crashing input under tests/fuzz/artifacts/redact/, when an invariant breaks.
set -eu
seconds="${1:-60}"
case "$seconds" in
    ''|*[!0-9]*) echo "usage: $0 SECONDS" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/../.."
command -v cargo-fuzz >/dev/null 2>&1 || {
    echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 2
}
toolchain=""
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain="+nightly"
fi
# Set also on nightly, so that `cargo fuzz build` runs with the same flags reuse
# one build.
export RUSTC_BOOTSTRAP=1
# The redactor is safe Rust (unsafe_code = forbid): no sanitizer needed, which also
# keeps whisper.cpp and OpenCC out of AddressSanitizer's way. -O: without debug
# assertions, as `cargo fuzz build -O` builds (add -a to check overflows too).
mkdir -p tests/fuzz/corpus/redact
exec cargo $toolchain fuzz run --fuzz-dir tests/fuzz --sanitizer none -O redact \
    tests/fuzz/corpus/redact -- -max_total_time="$seconds" -max_len=512
