#!/usr/bin/env python3
"""A Jigasi stand-in for tests/integration/jitsi.rs: signs Jitsi JWTs (PyJWT,
cryptography) and streams a meeting as Jigasi's WhisperWebsocket does (websockets):
binary frames of a 60-byte NUL-padded "participant|language" header and s16le
16 kHz mono PCM, 1.5 s each, then one 0x00 byte.

  jitsi.py keygen --keys-dir DIR --kid KID --private OUT.pem
  jitsi.py token --alg RS256|HS512 --kid KID --key PEM_PATH|SECRET --aud AUD --exp-in SECS
  jitsi.py meeting --url URL --token T [--query-auth] [--speed X] --participant NAME:LANG:RAW_PATH ...
  jitsi.py frames --url URL --token T --hex FRAME_HEX ...

meeting and frames print one JSON object: {"status": HTTP status when refused,
"body": its body} or {"messages": [every text message], "close": close code}.
"""

import argparse
import hashlib
import json
import threading
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

HEADER = 60
BUFFER_BYTES = 16000 * 2 * 3 // 2  # Jigasi's 1.5 s buffers


def keygen(args):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with open(args.private, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    name = hashlib.sha256(args.kid.encode()).hexdigest() + ".pem"
    with open(f"{args.keys_dir}/{name}", "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))


def token(args):
    key = args.key
    if args.alg == "RS256":
        with open(key) as f:
            key = f.read()
    now = int(time.time())
    claims = {"iss": "jigasi", "iat": now, "exp": now + args.exp_in, "aud": args.aud}
    print(jwt.encode(claims, key, algorithm=args.alg, headers={"kid": args.kid}))


def header(participant, language):
    text = f"{participant}|{language}".encode()
    return text + b"\0" * (HEADER - len(text))


def session(args):
    """Connect; (socket, None), or (None, the refusal as JSON)."""
    url, headers = args.url, {}
    if args.query_auth:
        url += f"?auth_token={args.token}"
    elif args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    try:
        return connect(url, additional_headers=headers, max_size=None, open_timeout=30), None
    except InvalidStatus as e:
        body = e.response.body.decode(errors="replace")
        return None, {"status": e.response.status_code, "body": json.loads(body or "null")}


def collect(ws, send):
    """Run send() in a thread; every text message until the close."""
    sender = threading.Thread(target=send)
    sender.start()
    messages = []
    try:
        while True:
            messages.append(json.loads(ws.recv(timeout=300)))
    except ConnectionClosed as e:
        code = e.rcvd.code if e.rcvd else 1006
    sender.join()
    return {"messages": messages, "close": code}


def meeting(args):
    ws, refused = session(args)
    if refused:
        return refused
    streams = []
    for spec in args.participant:
        name, language, path = spec.split(":", 2)
        with open(path, "rb") as f:
            streams.append((header(name, language), f.read()))

    def send():
        started = time.monotonic()
        longest = max(len(pcm) for _, pcm in streams)
        for i, at in enumerate(range(0, longest, BUFFER_BYTES)):
            due = i * 1.5 / args.speed
            time.sleep(max(0.0, due - (time.monotonic() - started)))
            for head, pcm in streams:
                if at < len(pcm):
                    ws.send(head + pcm[at:at + BUFFER_BYTES])
        ws.send(b"\0")

    return collect(ws, send)


def frames(args):
    ws, refused = session(args)
    if refused:
        return refused

    def send():
        try:
            for frame in args.hex:
                ws.send(bytes.fromhex(frame))
        except ConnectionClosed:
            pass

    return collect(ws, send)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("keygen")
    p.add_argument("--keys-dir", required=True)
    p.add_argument("--kid", required=True)
    p.add_argument("--private", required=True)
    p = sub.add_parser("token")
    p.add_argument("--alg", required=True, choices=["RS256", "HS512"])
    p.add_argument("--kid", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--aud", required=True)
    p.add_argument("--exp-in", type=int, default=3600)
    for name in ["meeting", "frames"]:
        p = sub.add_parser(name)
        p.add_argument("--url", required=True)
        p.add_argument("--token", default="")
        p.add_argument("--query-auth", action="store_true")
        if name == "meeting":
            p.add_argument("--speed", type=float, default=1.0)
            p.add_argument("--participant", action="append", required=True)
        else:
            p.add_argument("--hex", action="append", required=True)
    args = parser.parse_args()
    if args.command == "keygen":
        keygen(args)
    elif args.command == "token":
        token(args)
    else:
        print(json.dumps(meeting(args) if args.command == "meeting" else frames(args)))


if __name__ == "__main__":
    main()
