#!/usr/bin/env python3
"""ufal/whisper_streaming (LocalAgreement-2 over faster-whisper) on cantocap's stream clip.

Prints one Markdown table row to set beside `cargo bench --bench stream`:

    benches/peer/.venv/bin/python benches/peer/peer.py --clip /tmp/peer-clip --pace max

The clip folder holds clip.wav (16 kHz mono), clip.txt (the reference text) and clip.ends
(each utterance's end in ms, one a line), as `cargo bench --bench stream -- --write-clip DIR`
writes them. See README.md beside this file.
"""

import argparse
import logging
import math
import os
import resource
import sys
import time
import types
import wave

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# whisper_online imports librosa (only for load_audio, a file reader we do not use) and
# soundfile (only for the OpenAI API backend) at the top; stub them when absent.
for _name in ("librosa", "soundfile"):
    try:
        __import__(_name)
    except ImportError:
        sys.modules[_name] = types.ModuleType(_name)

import whisper_online  # noqa: E402  (vendored, unmodified)

SAMPLING_RATE = 16000
UPSTREAM_COMMIT = "1f25a1a"


class CpuFasterWhisperASR(whisper_online.FasterWhisperASR):
    """Upstream's FasterWhisperASR, loaded on the CPU in float32 with a thread count, and
    with the beam size as a parameter (upstream hard-codes cuda/float16 and beam 5)."""

    def __init__(self, lan, model_dir, threads, beam_size):
        self.threads = threads
        self.beam_size = beam_size
        super().__init__(lan, model_dir=model_dir)

    def load_model(self, modelsize=None, cache_dir=None, model_dir=None):
        from faster_whisper import WhisperModel

        return WhisperModel(
            model_dir, device="cpu", compute_type="float32", cpu_threads=self.threads
        )

    def transcribe(self, audio, init_prompt=""):
        # Upstream's call, beam size aside.
        segments, _info = self.model.transcribe(
            audio,
            language=self.original_language,
            initial_prompt=init_prompt,
            beam_size=self.beam_size,
            word_timestamps=True,
            condition_on_previous_text=True,
            **self.transcribe_kargs,
        )
        return list(segments)


def read_wav(path):
    with wave.open(path, "rb") as w:
        assert w.getnchannels() == 1, "clip.wav must be mono"
        assert w.getframerate() == SAMPLING_RATE, "clip.wav must be 16 kHz"
        assert w.getsampwidth() == 2, "clip.wav must be 16-bit PCM"
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def words(text):
    """Normalised words, as cantocap's bench: lowercase, punctuation stripped."""
    out = []
    for w in text.split():
        w = "".join(c for c in w if c.isalnum()).lower()
        if w:
            out.append(w)
    return out


def edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a):
        cur = [i + 1] * (len(b) + 1)
        for j, y in enumerate(b):
            cur[j + 1] = min(prev[j] + (x != y), prev[j + 1] + 1, cur[j] + 1)
        prev = cur
    return prev[len(b)]


def wer(reference, hypothesis):
    r, h = words(reference), words(hypothesis)
    return edit_distance(r, h) / max(len(r), 1)


def percentile(values, p):
    """As cantocap's bench: the sorted value at round((n - 1) p), half away from zero."""
    if not values:
        return 0
    values = sorted(values)
    return values[int(math.floor((len(values) - 1) * p + 0.5))]


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def stream(online, audio, min_chunk, realtime, progress=False):
    """Feeds `audio` to `online`; returns the commits as (time_ms, beg_ms, end_ms, text),
    stamped with wall-clock ms since the start (realtime) or the stream ms pushed (max).
    With `progress`, prints each decode's buffer and the commits as they come (stderr)."""
    duration = len(audio) / SAMPLING_RATE
    commits = []
    cpu_start = cpu_seconds()

    def record(o, now):
        if progress:
            print(
                f"  pushed {min(end, duration):6.1f} s  buffer "
                f"{len(online.audio_buffer) / SAMPLING_RATE:5.1f} s  CPU "
                f"{cpu_seconds() - cpu_start:6.1f} s  {o[2].strip()}",
                file=sys.stderr,
                flush=True,
            )
        if o[0] is not None:
            commits.append((now * 1000.0, o[0] * 1000.0, o[1] * 1000.0, o[2]))

    beg = 0.0
    if realtime:
        # whisper_online.py's simultaneous mode: wait until min_chunk more seconds have
        # "arrived" by the wall clock, then push all that arrived and decode.
        start = time.monotonic()
        end = 0.0
        while True:
            now = time.monotonic() - start
            if now < end + min_chunk:
                time.sleep(min_chunk + end - now)
            end = time.monotonic() - start
            online.insert_audio_chunk(audio[int(beg * SAMPLING_RATE) : int(end * SAMPLING_RATE)])
            beg = end
            record(online.process_iter(), time.monotonic() - start)
            if end >= duration:
                break
        record(online.finish(), time.monotonic() - start)
    else:
        # As fast as it goes (whisper_online.py's --comp_unaware): times are stream time.
        end = min(min_chunk, duration)
        while True:
            online.insert_audio_chunk(audio[int(beg * SAMPLING_RATE) : int(end * SAMPLING_RATE)])
            record(online.process_iter(), end)
            if end >= duration:
                break
            beg, end = end, min(end + min_chunk, duration)
        record(online.finish(), duration)
    return commits


def final_latencies(commits, ends):
    """As cantocap's bench: for each utterance end, the first commit whose end timestamp
    lies within 1.2 s of it (Whisper's word times run early; utterances are 1.5 s apart),
    i.e. the one holding its last word; its time minus the utterance end. None: no final."""
    out = []
    for end in ends:
        hit = next((t for t, _b, e, _text in commits if e + 1200 >= end), None)
        out.append(None if hit is None else max(0, round(hit - end)))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clip", required=True, help="folder with clip.wav, clip.txt, clip.ends")
    p.add_argument("--model", default="/work/main/models/ct2/whisper-base",
                   help="CTranslate2 Whisper folder (float16 weights load as float32)")
    p.add_argument("--threads", type=int, default=2, help="CTranslate2 cpu_threads")
    p.add_argument("--beam-size", type=int, default=5, help="upstream's is 5")
    p.add_argument("--min-chunk", type=float, default=1.0, help="seconds (upstream's 1.0)")
    p.add_argument("--pace", choices=["realtime", "max"], default="realtime")
    p.add_argument("--lang", default="en")
    p.add_argument("--no-offline", action="store_true", help="skip the offline decode")
    p.add_argument("--no-header", action="store_true", help="print the row alone")
    p.add_argument("--show", action="store_true", help="print the streamed and offline texts")
    p.add_argument("--progress", action="store_true", help="print each decode as it ends")
    p.add_argument("--debug", action="store_true", help="whisper_online's debug log")
    args = p.parse_args()

    logging.basicConfig(format="%(levelname)s\t%(message)s")
    whisper_online.logger.setLevel(logging.DEBUG if args.debug else logging.WARNING)

    audio = read_wav(os.path.join(args.clip, "clip.wav"))
    with open(os.path.join(args.clip, "clip.txt")) as f:
        reference = f.read().strip()
    with open(os.path.join(args.clip, "clip.ends")) as f:
        ends = [int(line) for line in f if line.strip()]

    asr = CpuFasterWhisperASR(args.lang, args.model, args.threads, args.beam_size)
    # Upstream's default: "segment" trimming once the buffer passes 15 s.
    online = whisper_online.OnlineASRProcessor(asr, tokenizer=None, logfile=sys.stderr)
    # Upstream warms up on the first second before it starts its clock; so do we.
    asr.transcribe(audio[:SAMPLING_RATE])

    cpu0 = cpu_seconds()
    commits = stream(online, audio, args.min_chunk, args.pace == "realtime", args.progress)
    cpu_stream = cpu_seconds() - cpu0
    streamed = asr.sep.join(text for _t, _b, _e, text in commits)

    offline_text, cpu_offline = "", float("nan")
    if not args.no_offline:
        cpu0 = cpu_seconds()
        segments, _info = asr.model.transcribe(
            audio, language=args.lang, beam_size=args.beam_size
        )
        offline_text = "".join(s.text for s in segments)  # the generator decodes here
        cpu_offline = cpu_seconds() - cpu0

    latencies = final_latencies(commits, ends)
    got = [x for x in latencies if x is not None]
    never = len(latencies) - len(got)
    ratio = cpu_stream / cpu_offline if cpu_offline > 0 else float("nan")
    name = f"whisper_streaming {UPSTREAM_COMMIT} (faster-whisper, {args.pace})"
    if not args.no_header:
        print("| implementation | threads | beam | final p50 (ms) | final p90 (ms) | WER stream "
              "| WER offline | CPU stream (s) | CPU offline (s) | CPU stream/offline |")
        print("|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {name} | {args.threads} | {args.beam_size} | {percentile(got, 0.5)} "
        f"| {percentile(got, 0.9)} | {wer(reference, streamed):.3f} "
        f"| {wer(reference, offline_text) if offline_text else float('nan'):.3f} "
        f"| {cpu_stream:.1f} | {cpu_offline:.1f} | {ratio:.2f} |",
        flush=True,
    )
    print(
        f"{len(commits)} commits for {len(ends)} utterances, {never} never final; "
        f"clip {len(audio) / SAMPLING_RATE:.0f} s; latencies (ms): "
        + " ".join("-" if x is None else str(x) for x in latencies),
        file=sys.stderr,
    )
    if args.show:
        print("offline:\n  " + offline_text.strip(), file=sys.stderr)
        print("streamed commits:", file=sys.stderr)
        for t, b, e, text in commits:
            print(f"  [{b:.0f}-{e:.0f} @{t:.0f}] {text.strip()}", file=sys.stderr)


if __name__ == "__main__":
    main()
