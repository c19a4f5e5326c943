#!/usr/bin/env bash
# Downloads a published ggml Whisper model into models/ (needs internet access to
# Hugging Face). Usage: models/download.sh NAME     e.g. models/download.sh large-v3-turbo
# NAME is one of whisper.cpp's published models; see models/README.md for which to pick.
set -euo pipefail

names="tiny tiny.en base base.en small small.en medium medium.en large-v3 large-v3-q5_0 large-v3-turbo large-v3-turbo-q5_0 large-v3-turbo-q8_0"
name=${1:-}
if [ -z "$name" ] || ! [[ " $names " == *" $name "* ]]; then
  echo "usage: $0 NAME" >&2
  echo "NAME: one of: $names" >&2
  echo "For Cantonese, large-v3-turbo is recommended (see models/README.md)." >&2
  exit 2
fi

dir=$(cd "$(dirname "$0")" && pwd)
out="$dir/ggml-$name.bin"
if [ -f "$out" ]; then
  echo "$out already exists"
  exit 0
fi
url="https://huggingface.co/ggerganov/whisper.cpp/resolve/main/ggml-$name.bin"
echo "Downloading $url"
if command -v curl >/dev/null; then
  curl -fL --retry 3 -o "$out.part" "$url"
else
  wget -O "$out.part" "$url"
fi
mv "$out.part" "$out"
echo "Saved $out. Use it with: cantocap transcribe FILE --model $out"
