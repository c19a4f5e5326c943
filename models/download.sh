#!/usr/bin/env bash
# Downloads a published ggml Whisper model into models/, checks its SHA-256 against
# models/catalogue.tsv, and resumes an interrupted download.
#
#   models/download.sh NAME        e.g. models/download.sh large-v3-turbo-q5_0
#   models/download.sh --list      the catalogue: names and sizes
#
# NAME is one of whisper.cpp's published models (see models/README.md for which to
# pick). The file goes to models/ggml-NAME.bin; while it downloads it is
# models/ggml-NAME.bin.part, which a later run continues (curl -C -). A file whose
# SHA-256 does not match is refused and removed, never kept under the final name.
#
# Environment (all optional):
#   CANTOCAP_MODEL_BASE_URL   where the files are (default: Hugging Face, pinned revision)
#   CANTOCAP_MODELS_DIR       where to put them (default: this folder)
#   CANTOCAP_MODEL_CATALOGUE  the catalogue file (default: catalogue.tsv next to this script)
#   CANTOCAP_CONNECT_TIMEOUT  seconds to wait for a connection (default 15)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
catalogue=${CANTOCAP_MODEL_CATALOGUE:-$here/catalogue.tsv}
dir=${CANTOCAP_MODELS_DIR:-$here}
base=${CANTOCAP_MODEL_BASE_URL:-https://huggingface.co/ggerganov/whisper.cpp/resolve/5359861c739e955e79d9a303bcbc70fb988958b1}
connect_timeout=${CANTOCAP_CONNECT_TIMEOUT:-15}

entries() { grep -v '^#' "$catalogue" | grep -v '^[[:space:]]*$'; }
human() { awk -v b="$1" 'BEGIN { if (b >= 1e9) printf "%.1f GB", b / 1e9; else printf "%.0f MB", b / 1e6 }'; }

name=${1:-}
if [ "$name" = "--list" ]; then
  entries | while IFS=$'\t' read -r n bytes _; do printf '%-22s %s\n' "$n" "$(human "$bytes")"; done
  exit 0
fi
entry=$(entries | awk -F'\t' -v n="$name" '$1 == n' || true)
if [ -z "$name" ] || [ -z "$entry" ]; then
  echo "usage: $0 NAME   (or --list)" >&2
  echo "NAME: one of: $(entries | cut -f1 | tr '\n' ' ')" >&2
  echo "For Cantonese, large-v3-turbo-q5_0 (or large-v3-turbo) is recommended (see models/README.md)." >&2
  exit 2
fi
IFS=$'\t' read -r _ bytes sha256 <<<"$entry"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
size_of() { stat -c %s "$1"; }

out="$dir/ggml-$name.bin"
if [ -f "$out" ]; then
  got=$(sha256_of "$out")
  if [ "$got" = "$sha256" ]; then
    echo "$out already exists (SHA-256 checked)"
    exit 0
  fi
  echo "error: $out exists but its SHA-256 is $got, not $sha256; remove it and run again" >&2
  exit 1
fi

mkdir -p "$dir"
part="$out.part"
url="$base/ggml-$name.bin"
have=0
[ -f "$part" ] && have=$(size_of "$part")
if [ "$have" -gt "$bytes" ]; then
  echo "$part is larger than ggml-$name.bin should be ($have > $bytes bytes): starting again"
  rm -f "$part"
  have=0
fi
if [ "$have" -lt "$bytes" ]; then
  if [ "$have" -gt 0 ]; then
    echo "Resuming $url at $(human "$have") of $(human "$bytes")"
  else
    echo "Downloading $url ($(human "$bytes"))"
  fi
  if command -v curl >/dev/null; then
    curl -fL --retry 3 --connect-timeout "$connect_timeout" -C - -o "$part" "$url"
  else
    wget -c --connect-timeout="$connect_timeout" -O "$part" "$url"
  fi
fi

got=$(sha256_of "$part")
if [ "$got" != "$sha256" ]; then
  rm -f "$part"
  echo "error: the download of ggml-$name.bin is damaged or not the published file:" >&2
  echo "  its SHA-256 is $got, the catalogue's $sha256" >&2
  echo "It was removed; run $0 $name again." >&2
  exit 1
fi
mv "$part" "$out"
echo "Saved $out (SHA-256 checked). Use it with: cantocap transcribe FILE --model $out"
