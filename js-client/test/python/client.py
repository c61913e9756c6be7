"""A python-socketio client of the lobby chat, driven by a test over stdin and stdout.

    client.py CLASS TRANSPORT URL NAME

CLASS is Client, AsyncClient or SimpleClient; TRANSPORT is websocket, polling or
default (polling, then the upgrade). On every connection it names itself NAME
(`newUser`), as a chat client does when it comes back. It prints one JSON array a line:
["connected"], ["disconnected"], ["update", DATA]; it reads one JSON array a line:
["say", TEXT] (a `message`), ["quit"]. Reconnection is python-socketio's own, with a
short delay so that a test does not wait long.
"""

import asyncio
import json
import sys
import threading
import time

import socketio

KIND, TRANSPORT, URL, NAME = sys.argv[1:5]
TRANSPORTS = None if TRANSPORT == "default" else [TRANSPORT]
RECONNECT = {"reconnection_delay": 0.2, "reconnection_delay_max": 0.5}


OUT = threading.Lock()


def out(*event):
    # Handlers may run on several threads: one whole line at a time.
    with OUT:
        print(json.dumps(event, ensure_ascii=False), flush=True)


def commands():
    for line in sys.stdin:
        yield json.loads(line)


def line(text):
    return {"type": "message", "message": text}


def run_client():
    sio = socketio.Client(**RECONNECT)

    @sio.event
    def connect():
        out("connected")
        sio.emit("newUser", NAME)

    @sio.event
    def disconnect(*_reason):
        out("disconnected")

    @sio.on("update")
    def update(data):
        out("update", data)

    sio.connect(URL, transports=TRANSPORTS)
    for command in commands():
        if command[0] == "say":
            sio.emit("message", line(command[1]))
        else:
            break
    sio.disconnect()


async def run_async_client():
    sio = socketio.AsyncClient(**RECONNECT)

    @sio.event
    async def connect():
        out("connected")
        await sio.emit("newUser", NAME)

    @sio.event
    async def disconnect(*_reason):
        out("disconnected")

    @sio.on("update")
    async def update(data):
        out("update", data)

    await sio.connect(URL, transports=TRANSPORTS)
    loop = asyncio.get_running_loop()
    while True:
        text = await loop.run_in_executor(None, sys.stdin.readline)
        command = json.loads(text) if text else ["quit"]
        if command[0] == "say":
            await sio.emit("message", line(command[1]))
        else:
            break
    await sio.disconnect()


def run_simple_client():
    # SimpleClient has no handlers: a thread of its own receives, and names the member
    # anew whenever it finds the client connected again.
    sio = socketio.SimpleClient(**RECONNECT)
    sio.connect(URL, transports=TRANSPORTS)
    quit = threading.Event()

    def receive():
        # The session last told as connected (None: none, or told as disconnected).
        shown = None
        while not quit.is_set():
            # The session now: its sid while connected; None while it reconnects
            # (`connected` true, `connected_event` clear) or after it gave up (the
            # server ended the session on purpose). A reconnection is a new sid, so one
            # that came and went between two looks is not missed.
            up = sio.connected and sio.connected_event.is_set()
            now = sio.sid if up else None
            if now != shown:
                if shown is not None:
                    out("disconnected")
                if now is not None:
                    out("connected")
                    sio.emit("newUser", NAME)
                shown = now
            if now is None:
                time.sleep(0.05)
                continue
            try:
                event, *data = sio.receive(timeout=0.1)
            except socketio.exceptions.TimeoutError:
                continue
            except socketio.exceptions.DisconnectedError:
                continue
            if event == "update":
                out("update", *data)

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    for command in commands():
        if command[0] == "say":
            sio.emit("message", line(command[1]))
        else:
            break
    quit.set()
    receiver.join()
    sio.disconnect()


if KIND == "Client":
    run_client()
elif KIND == "AsyncClient":
    asyncio.run(run_async_client())
elif KIND == "SimpleClient":
    run_simple_client()
else:
    sys.exit(f"unknown client class {KIND}")
