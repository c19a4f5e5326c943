#!/usr/bin/env python3
"""The official `openai` Python SDK's realtime client against `cantocap serve`.

    python3 tests/clients/openai_realtime.py --base-url http://127.0.0.1:8787/v1 \
        --api-key TOKEN --audio speech-24k.raw --expect "good morning everyone" \
        --turn-audio one.raw --turn-expect "..." --turn-audio two.raw --turn-expect "..."

Two transcription sessions through `client.realtime.connect(extra_query={"intent":
"transcription"})`:

1. server VAD (the GA `session.update`): PCM16 at 24 kHz streamed at its own pace;
   checks the event order (session.created, session.updated, speech_started before
   each item's committed and completed, deltas of the item) and the words;
2. the client's own turns (the older `transcription_session.update`, turn_detection
   null): one commit per turn, each completed transcript has that turn's words; an
   empty commit and an unknown event type get OpenAI error events, and the session
   goes on; a clear is answered with input_audio_buffer.cleared.

Audio files are raw PCM16 mono 24 kHz. Exits 0 when every check passes (last line
"ok"), 1 with a message otherwise. Driven by tests/integration/openai_realtime.rs.
"""

import argparse
import base64
import queue
import re
import sys
import threading
import time

try:
    from openai import OpenAI
except ImportError:
    sys.exit("the openai package is missing: pip install 'openai[realtime]' (./setup.sh test does)")

RATE = 24_000
CHUNK = RATE // 10 * 2  # 100 ms of PCM16


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
        print(f"FAILED: {message}", flush=True)
        sys.exit(1)


class Events:
    """Every server event, read on a thread of its own (the SDK's recv blocks)."""

    def __init__(self, conn):
        self.queue = queue.Queue()
        self.seen = []
        self.thread = threading.Thread(target=self._read, args=(conn,), daemon=True)
        self.thread.start()

    def _read(self, conn):
        try:
            for event in conn:
                self.queue.put(event)
        except Exception as e:  # the connection ended
            self.queue.put(e)

    def next(self, timeout):
        event = self.queue.get(timeout=timeout)
        check(not isinstance(event, Exception), f"the connection failed: {event!r}")
        self.seen.append(event)
        return event

    def until(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            check(left > 0, f"no {what} within {timeout} s; got {[e.type for e in self.seen[-20:]]}")
            try:
                event = self.next(left)
            except queue.Empty:
                continue
            if predicate(event):
                return event


def stream(conn, audio, pace=1.0):
    """Append audio in 100 ms chunks at `pace` times real time."""
    started = time.monotonic()
    for i in range(0, len(audio), CHUNK):
        due = i / 2 / RATE / pace
        wait = due - (time.monotonic() - started)
        if wait > 0:
            time.sleep(wait)
        conn.input_audio_buffer.append(audio=base64.b64encode(audio[i : i + CHUNK]).decode())


def server_vad(client, audio, expect, room):
    silence = bytes(RATE * 2 * 2)  # 2 s: the server ends the last turn
    query = {"intent": "transcription", "session": room, "speaker": "Amy"}
    with client.realtime.connect(extra_query=query) as conn:
        events = Events(conn)
        created = events.next(10)
        check(created.type == "session.created", f"first event {created.type}")
        check(created.session.type == "transcription", f"session {created.session}")
        check(created.event_id, "events have ids")
        conn.session.update(
            session={
                "type": "transcription",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": RATE},
                        "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
                        "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
                    }
                },
            }
        )
        updated = events.until(lambda e: True, 10, "session.updated")
        check(updated.type == "session.updated", f"after session.update: {updated.type}")
        check(updated.session.audio.input.transcription.language == "en", f"{updated.session}")
        stream(conn, audio + silence)
        expected_words = len(words(expect))
        transcripts = []
        deadline = time.monotonic() + 60
        while len(words(" ".join(transcripts))) < expected_words * 0.8:
            check(time.monotonic() < deadline, f"transcripts so far: {transcripts}")
            done = events.until(
                lambda e: e.type == "conversation.item.input_audio_transcription.completed",
                max(deadline - time.monotonic(), 0.1),
                "completed transcription",
            )
            transcripts.append(done.transcript)
        heard = " ".join(transcripts)
        wer = word_error_rate(expect, heard)
        check(wer < 0.3, f"server VAD heard {heard!r} (WER {wer:.2f})")

        # Each item: speech_started, then committed, then completed; deltas name it.
        order = {}
        for i, e in enumerate(events.seen):
            item = getattr(e, "item_id", None)
            if item:
                order.setdefault(item, []).append((i, e.type))
        completed = [e.item_id for e in events.seen if e.type.endswith("transcription.completed")]
        check(len(set(completed)) == len(completed), f"an item completed twice: {completed}")
        for item in completed:
            kinds = [k for _, k in order[item]]
            check(kinds[0] == "input_audio_buffer.speech_started", f"{item}: {kinds}")
            check(
                kinds.index("input_audio_buffer.committed")
                < kinds.index("conversation.item.input_audio_transcription.completed"),
                f"{item}: {kinds}",
            )
            starts = [e for e in events.seen if e.type == "input_audio_buffer.speech_started" and e.item_id == item]
            check(starts[0].audio_start_ms >= 0, f"{starts[0]}")
        deltas = [e for e in events.seen if e.type.endswith("transcription.delta")]
        check(deltas, "partial transcripts arrive as deltas")
        check(all(d.item_id in order for d in deltas), "deltas name their item")
        committed = [e for e in events.seen if e.type == "input_audio_buffer.committed"]
        for a, b in zip(committed, committed[1:]):
            check(b.previous_item_id == a.item_id, f"previous_item_id chain: {a} {b}")
    print(f"server VAD: {heard}", flush=True)


def own_turns(client, turns):
    with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        events = Events(conn)
        check(events.next(10).type == "session.created", "session.created first")
        conn.send(
            {
                "type": "transcription_session.update",
                "session": {
                    "input_audio_format": "pcm16",
                    "input_audio_transcription": {"model": "whisper-1", "language": "en"},
                    "turn_detection": None,
                },
            }
        )
        updated = events.next(10)
        check(updated.type == "transcription_session.updated", f"older API's answer: {updated.type}")

        # Nothing appended yet: OpenAI's error, and the session goes on.
        conn.input_audio_buffer.commit()
        error = events.next(10)
        check(error.type == "error", f"empty commit: {error}")
        check(error.error.code == "input_audio_buffer_commit_empty", f"{error.error}")
        conn.send({"type": "response.create"})
        error = events.next(10)
        check(error.type == "error" and error.error.param == "type", f"{error}")
        conn.input_audio_buffer.clear()
        check(events.next(10).type == "input_audio_buffer.cleared", "clear is answered")

        silence = bytes(RATE * 2 // 2)  # 0.5 s
        heard = []
        for audio, expect in turns:
            stream(conn, audio + silence, pace=2.0)
            conn.input_audio_buffer.commit()
            committed = events.until(
                lambda e: e.type == "input_audio_buffer.committed", 30, "input_audio_buffer.committed"
            )
            done = events.until(
                lambda e: e.type == "conversation.item.input_audio_transcription.completed",
                60,
                "completed transcription",
            )
            check(done.item_id == committed.item_id, f"completed {done.item_id} for {committed.item_id}")
            wer = word_error_rate(expect, done.transcript)
            check(wer < 0.35, f"turn heard {done.transcript!r} for {expect!r} (WER {wer:.2f})")
            heard.append(done.transcript)
        check(
            not any(e.type == "input_audio_buffer.speech_started" for e in events.seen),
            "no server VAD events when the client ends turns",
        )
    print(f"own turns: {heard}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--audio", required=True, help="raw PCM16 24 kHz, for server VAD")
    p.add_argument("--expect", required=True)
    p.add_argument("--session", required=True, help="the room of the server VAD session")
    p.add_argument("--turn-audio", action="append", default=[])
    p.add_argument("--turn-expect", action="append", default=[])
    args = p.parse_args()
    client = OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0)
    with open(args.audio, "rb") as f:
        server_vad(client, f.read(), args.expect, args.session)
    turns = []
    for path, expect in zip(args.turn_audio, args.turn_expect):
        with open(path, "rb") as f:
            turns.append((f.read(), expect))
    own_turns(client, turns)
    print("ok", flush=True)


if __name__ == "__main__":
    main()
