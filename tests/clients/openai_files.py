#!/usr/bin/env python3
"""The official `openai` Python SDK against `cantocap serve`'s file transcription.

    python3 tests/clients/openai_files.py --base-url http://127.0.0.1:8787/v1 \
        --api-key TOKEN --audio speech.wav --expect "good morning everyone"

Calls `client.audio.transcriptions.create` once per response_format (json, text, srt,
verbose_json, vtt) and checks each answer's shape and that the expected words are
in it; then an error case (a non-audio file) for the SDK's error class. Exits 0 when
every check passes, 1 with a message otherwise. Driven by
tests/integration/openai_files.rs.
"""

import argparse
import re
import sys

try:
    import openai
    from openai import OpenAI
except ImportError:
    sys.exit("the openai package is missing: pip install openai (./setup.sh test does)")


def words(text):
    return re.findall(r"[a-z0-9']+", text.lower())


def word_error_rate(reference, hypothesis):
    r, h = words(reference), words(hypothesis)
    prev = list(range(len(h) + 1))
    for i, rw in enumerate(r):
        cur = [i + 1] * (len(h) + 1)
        for j, hw in enumerate(h):
            cur[j + 1] = min(prev[j] + (rw != hw), prev[j + 1] + 1, cur[j] + 1)
        prev = cur
    return prev[len(h)] / max(len(r), 1)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def check_words(fmt, text, expect, max_wer):
    wer = word_error_rate(expect, text)
    check(wer <= max_wer, f"{fmt}: WER {wer:.2f} > {max_wer} for {text!r} (expected {expect!r})")
    print(f"{fmt}: WER {wer:.2f}: {text.strip()!r}")


CUE_SRT = re.compile(r"^\d+\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n.+", re.M)
CUE_VTT = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}\n.+", re.M)


def cue_text(body):
    """The text lines of an SRT or WebVTT body."""
    keep = []
    for line in body.splitlines():
        if not line or line == "WEBVTT" or line.isdigit() or "-->" in line:
            continue
        keep.append(line)
    return " ".join(keep)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", required=True, help="http://HOST:PORT/v1")
    ap.add_argument("--api-key", default="none", help="a token with the ingest role")
    ap.add_argument("--audio", required=True, help="speech to transcribe")
    ap.add_argument("--expect", required=True, help="what is said")
    ap.add_argument("--language", default="en")
    ap.add_argument("--max-wer", type=float, default=0.25)
    ap.add_argument("--not-audio", help="a file that is not audio, for the error case")
    args = ap.parse_args()

    client = OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=300)
    print(f"openai {openai.__version__} -> {args.base_url}")

    def create(fmt, **extra):
        with open(args.audio, "rb") as f:
            return client.audio.transcriptions.create(
                model="whisper-1", file=f, response_format=fmt, language=args.language, **extra
            )

    r = create("json")
    check(isinstance(r, openai.types.audio.Transcription), f"json: got {type(r)}")
    check_words("json", r.text, args.expect, args.max_wer)

    r = create("text")
    check(isinstance(r, str), f"text: got {type(r)}")
    check(not r.lstrip().startswith("{"), f"text: looks like JSON: {r!r}")
    check_words("text", r, args.expect, args.max_wer)

    r = create("srt")
    check(isinstance(r, str) and CUE_SRT.search(r), f"srt: not SRT: {r!r}")
    check_words("srt", cue_text(r), args.expect, args.max_wer)

    r = create("vtt")
    check(isinstance(r, str) and r.startswith("WEBVTT") and CUE_VTT.search(r), f"vtt: not WebVTT: {r!r}")
    check_words("vtt", cue_text(r), args.expect, args.max_wer)

    r = create("verbose_json", timestamp_granularities=["segment"])
    check(isinstance(r, openai.types.audio.TranscriptionVerbose), f"verbose_json: got {type(r)}")
    check(r.language == "english", f"verbose_json: language {r.language!r}")
    check(r.duration > 1.0, f"verbose_json: duration {r.duration}")
    check(r.segments, "verbose_json: no segments")
    last_end = 0.0
    for i, s in enumerate(r.segments):
        check(s.id == i, f"verbose_json: segment ids {[x.id for x in r.segments]}")
        check(0.0 <= s.start <= s.end <= r.duration + 0.5, f"verbose_json: segment {i} at {s.start}-{s.end}")
        check(s.start >= last_end - 0.01, f"verbose_json: segment {i} starts before the one before ends")
        last_end = s.end
    dump = r.model_dump()
    for key in ("task", "language", "duration", "text", "segments"):
        check(key in dump, f"verbose_json: no {key}")
    check(r.task == "transcribe" if hasattr(r, "task") else dump.get("task") == "transcribe", "verbose_json: task")
    check_words("verbose_json", r.text, args.expect, args.max_wer)
    check_words("verbose_json segments", " ".join(s.text for s in r.segments), args.expect, args.max_wer)

    if args.not_audio:
        try:
            with open(args.not_audio, "rb") as f:
                client.audio.transcriptions.create(model="whisper-1", file=f)
            check(False, "a file that is not audio was accepted")
        except openai.BadRequestError as e:
            err = e.body if isinstance(e.body, dict) else {}
            check(err.get("type") == "invalid_request_error", f"error body {e.body!r}")
            check(err.get("code") == "unsupported_format", f"error body {e.body!r}")
            print(f"not audio: {e.status_code} {err.get('code')}: {err.get('message')}")
        try:
            create("xml")
            check(False, "response_format xml was accepted")
        except openai.BadRequestError as e:
            check(e.body.get("param") == "response_format", f"error body {e.body!r}")
            print(f"bad format: {e.status_code} {e.body.get('code')}")
        # cantocap's own `script` field, as the SDK sends extra fields.
        try:
            create("json", extra_body={"script": "klingon"})
            check(False, "script klingon was accepted")
        except openai.BadRequestError as e:
            check(e.body.get("param") == "script", f"error body {e.body!r}")
            print(f"bad script: {e.status_code} {e.body.get('code')}")
    print("ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        sys.exit(f"FAILED: {e}")
