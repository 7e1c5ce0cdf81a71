"""GET / on 127.0.0.1:PORT every INTERVAL seconds over a fresh TCP connection, until
SIGTERM; writes its report (JSON) to OUT after every request that changes it and at
the end: ok, failed, errors (the first 20, with their time), bodies (distinct answers
in the order seen). Run inside a node's network namespace (nsenter --net=...).

    http_poll.py PORT INTERVAL OUT
"""
import json
import os
import signal
import socket
import sys
import time

port, interval, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
rep = {"ok": 0, "failed": 0, "errors": [], "bodies": [], "started": time.time()}
stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)


def write():
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(rep, f)
    os.replace(tmp, out)


def get():
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError as e:
        raise OSError(f"connect: {e!r}")
    with s:
        s.settimeout(2)
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    if not data:
        raise OSError("connection closed without an answer")
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" ":
        raise OSError(f"status {status!r}")
    return body.decode(errors="replace").strip()


write()
last_write = 0.0
while not stop:
    t = time.time()
    changed = False
    try:
        body = get()
        rep["ok"] += 1
        if not rep["bodies"] or rep["bodies"][-1] != body:
            rep["bodies"].append(body)
            changed = True
    except (OSError, ValueError) as e:
        rep["failed"] += 1
        changed = True
        if len(rep["errors"]) < 20:
            rep["errors"].append(f"{t - rep['started']:.3f}s: {e!r}")
    if changed or t - last_write > 0.2:
        write()
        last_write = t
    d = interval - (time.time() - t)
    if d > 0:
        time.sleep(d)
write()
