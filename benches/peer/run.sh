#!/usr/bin/env bash
# ufal/whisper_streaming beside cantocap on the stream bench's clip; see README.md here.
#
#   benches/peer/run.sh [--trim] [peer.py flags, e.g. --beam-size 1 --show]
#
# Environment (all optional):
#   PEER_CLIP_DIR        a clip folder (clip.wav, clip.txt, clip.ends) to use instead of
#                        writing one with `cargo bench --bench stream -- --write-clip`
#   PEER_MODEL           the CTranslate2 Whisper base folder (default
#                        $CANTOCAP_ROOT/models/ct2/whisper-base when there, else peer.py's)
#   PEER_SKIP_CANTOCAP=1 skip cantocap's row (`cargo bench --bench stream -- --model base`)
#   CANTOCAP_ROOT        the cantocap checkout to run cargo in (default: this repository)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=${CANTOCAP_ROOT:-$(cd "$here/../.." && pwd)}

trim=()
peer_args=()
for a in "$@"; do
  if [ "$a" = "--trim" ]; then trim=(--trim); else peer_args+=("$a"); fi
done

# The virtual environment, (re)installed when requirements.txt changes.
venv="$here/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  echo "$want" >"$stamp"
fi

clip=${PEER_CLIP_DIR:-}
if [ -z "$clip" ]; then
  clip=$(mktemp -d)
  trap 'rm -rf "$clip"' EXIT
  (cd "$root" && cargo bench --bench stream -- --write-clip "$clip" "${trim[@]}")
fi

model=${PEER_MODEL:-$root/models/ct2/whisper-base}
model_args=()
[ -f "$model/model.bin" ] && model_args=(--model "$model")

"$venv/bin/python" "$here/peer.py" --clip "$clip" --pace realtime \
  "${model_args[@]}" "${peer_args[@]}"

if [ "${PEER_SKIP_CANTOCAP:-}" != 1 ]; then
  (cd "$root" && cargo bench --bench stream -- --model base "${trim[@]}")
fi
