"""Shoots end to end: the API exactly as Seed's README shows it, called from inside
instances; seed-shoot; isolation of each shoot; limits; errors; and no leaks after
10,000 shoots. Each node runs in a network namespace the test creates."""
import json
import os
import pathlib
import re
import shutil
import subprocess
import textwrap
import time

import pytest

from seedtest import BUILD, ID_BASE, SEED, host_pids_with_uid_at_least, make_project, run

pytestmark = pytest.mark.timeout(300)


def script_instance(script, root="host", **extra):
    """An instance whose one process runs a shell script once and then idles."""
    inst = {"root": root, "shoot": {"enable": True},
            "processes": {"t": {"command": ["sh", "-c", script + "\nexec sleep 100000"], "restart": "no"}}}
    inst.update(extra)
    return inst


def py_instance(code, **extra):
    """An instance whose process runs a Python script (the host's python3)."""
    return script_instance("python3 -c " + shell_quote(textwrap.dedent(code)), **extra)


def shell_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def results(node, name, kind="result", timeout=60):
    """JSON lines {"result": ...} an instance's process printed, once it printed "done"."""
    logs = node.wait_log(name, "t: done", timeout=timeout)
    out = []
    for line in logs.splitlines():
        m = re.search(r" t: (\{.*\})$", line)
        if m:
            j = json.loads(m.group(1))
            if kind in j:
                out.append(j[kind])
    return out


def pids_with_cmdline(needle):
    found = []
    for p in pathlib.Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if needle in (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(p.name))
            except OSError:
                pass
    return found


# ---- the API, as Seed's README shows it ----

def test_readme_curl_example(nodes):
    proj = make_project({"w": script_instance(
        'curl -s -X POST -H "Content-Type: application/json" '
        '-d \'{"command":["echo","hello"],"timeout":30000}\' "$SEED_SHOOT_URL/shoot"; echo; '
        'echo "url=$SEED_SHOOT_URL"; grep SEED_SHOOT_URL /run/seed/env; echo done')}, rootfs=False)
    node = nodes(proj)
    logs = node.wait_log("w", "t: done")
    line = re.search(r" t: (\{\"exitCode\".*\})$", logs, re.M).group(1)
    r = json.loads(line)
    assert r["exitCode"] == 0 and r["stdout"] == "hello\n" and r["stderr"] == ""
    assert r["timedOut"] is False and r["signal"] is None and r["truncated"] is False
    assert isinstance(r["durationMs"], int) and r["durationMs"] >= 0
    assert re.search(r"t: url=http://10\.77\.0\.1:\d+$", logs, re.M)
    assert re.search(r"t: SEED_SHOOT_URL='http://10\.77\.0\.1:\d+'$", logs, re.M)


def test_request_fields_and_encodings(nodes):
    proj = make_project({"w": py_instance('''
        import base64, json, os, urllib.request
        url = os.environ["SEED_SHOOT_URL"] + "/shoot"
        def shoot(body):
            req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
            return json.loads(urllib.request.urlopen(req).read())
        blob = bytes(range(256)) * 4
        cases = {
          "env": {"command": ["sh", "-c", "echo $A-$B"], "env": {"A": "1", "B": "two"}},
          "cwd": {"command": ["pwd"], "cwd": "/usr/bin"},
          "stdin": {"command": ["cat"], "stdin": "line one\\nline two\\n"},
          "b64": {"command": ["cat"], "encoding": "base64", "stdin": base64.b64encode(blob).decode()},
          "invalid-utf8": {"command": ["printf", "a\\\\377b"]},
          "exit": {"command": ["sh", "-c", "echo out; echo err >&2; exit 7"]},
          "signal": {"command": ["sh", "-c", "kill -SEGV $$"]},
          "notfound": {"command": ["no-such-program"]},
          "notexec": {"command": ["/etc/hostname"]},
          "badcwd": {"command": ["true"], "cwd": "/nonexistent"},
          "hostname": {"command": ["sh", "-c", "hostname; cat /etc/hostname"]},
          "big-env": {"command": ["sh", "-c", "echo $((${#B0}+${#B1}+${#B2}+${#B3}+${#B4}+${#B5}+${#B6}))"],
                      "env": {f"B{i}": "x" * 100000 for i in range(7)}},
        }
        for name, body in cases.items():
            r = shoot(body)
            if name == "b64":
                r["same"] = base64.b64decode(r["stdout"]) == blob
            print(json.dumps({"result": {name: r}}), flush=True)
        print("done", flush=True)
        ''')}, rootfs=False)
    node = nodes(proj)
    r = {k: v for d in results(node, "w") for k, v in d.items()}
    assert r["env"]["stdout"] == "1-two\n"
    assert r["cwd"]["stdout"] == "/usr/bin\n"
    assert r["stdin"]["stdout"] == "line one\nline two\n"
    assert r["b64"]["same"] is True and r["b64"]["encoding"] == "base64"
    assert r["invalid-utf8"]["stdout"] == "a\ufffdb"
    assert (r["exit"]["exitCode"], r["exit"]["stdout"], r["exit"]["stderr"]) == (7, "out\n", "err\n")
    assert r["signal"]["exitCode"] == 128 + 11 and r["signal"]["signal"] == "SIGSEGV"
    assert r["notfound"]["exitCode"] == 127 and "no-such-program" in r["notfound"]["stderr"]
    assert r["notexec"]["exitCode"] == 126 and "Permission denied" in r["notexec"]["stderr"]
    assert r["badcwd"]["exitCode"] == 126 and "/nonexistent" in r["badcwd"]["stderr"]
    assert r["hostname"]["stdout"] == "shoot\nshoot\n"
    assert r["big-env"]["stdout"] == "700000\n"    # a request larger than a socket buffer


# ---- seed-shoot ----

def test_seed_shoot_client(nodes):
    proj = make_project({"w": script_instance(
        "set -u; D=/seed/storage/data; command -v seed-shoot; "
        "head -c 100000 /dev/urandom > $D/in.bin; "
        "seed-shoot cat $D/in.bin > /tmp/out.bin; echo \"copy rc=$?\"; "
        "cmp $D/in.bin /tmp/out.bin && echo binary-identical; "
        "seed-shoot sh -c 'printf \"\\000\\001\\377\"; printf \"\\377\" >&2' > /tmp/o 2> /tmp/e; "
        "od -An -tx1 /tmp/o; od -An -tx1 /tmp/e; "
        "seed-shoot sh -c 'exit 42'; echo \"exit rc=$?\"; "
        "seed-shoot --timeout 200 sleep 30; echo \"timeout rc=$?\"; "
        "seed-shoot no-such-cmd 2>/tmp/err; echo \"notfound rc=$?\"; cat /tmp/err; "
        "head -c 300000 /dev/urandom > $D/stdin.bin; "
        "seed-shoot sha256sum < $D/stdin.bin | cut -d' ' -f1 > /tmp/remote; sha256sum < $D/stdin.bin | cut -d' ' -f1 > /tmp/local; "
        "cmp /tmp/remote /tmp/local && echo stdin-identical; "
        "/seed/bin/seed-shoot true; echo \"abs rc=$?\"; "
        "seed-shoot 2>/dev/null; echo \"usage rc=$?\"; "
        "seed-shoot echo \"$(printf 'a\\377')\" 2>/tmp/err; echo \"utf8 rc=$?\"; cat /tmp/err; "
        "echo done", storage={"data": "16Mi"})}, rootfs=False)
    node = nodes(proj)
    logs = node.wait_log("w", "t: done", timeout=60)
    assert "t: /seed/bin/seed-shoot" in logs
    assert "t: copy rc=0" in logs and "t: binary-identical" in logs
    assert re.search(r"t:\s+00 01 ff$", logs, re.M) and re.search(r"t:\s+ff$", logs, re.M)
    assert "t: exit rc=42" in logs
    assert "t: timeout rc=124" in logs
    assert "t: notfound rc=127" in logs and 'cannot execute "no-such-cmd"' in logs
    assert "t: stdin-identical" in logs
    assert "t: abs rc=0" in logs
    assert "t: usage rc=125" in logs
    # an argument that is not UTF-8 is refused, never dropped from the command
    assert "t: utf8 rc=125" in logs and "must be valid UTF-8" in logs


def test_parallel_fan_out_to_shared_storage(nodes):
    proj = make_project({"w": script_instance(
        "D=/seed/storage/data; for i in $(seq 1 24); do "
        "seed-shoot sh -c \"echo chunk-$i > $D/out-$i\" & done; wait; "
        "echo \"files $(ls $D | grep -c out-)\"; cat $D/out-* | sort | tr '\\n' ' '; echo; echo done",
        storage={"data": "16Mi"})}, rootfs=False)
    node = nodes(proj)
    logs = node.wait_log("w", "t: done", timeout=60)
    assert "t: files 24" in logs
    line = re.search(r"t: (chunk-.*)$", logs, re.M).group(1).split()
    assert sorted(line) == sorted(f"chunk-{i}" for i in range(1, 25))


# ---- processes end with the call ----

def test_timeout_kills_daemonised_grandchildren(nodes):
    proj = make_project({"w": script_instance(
        "seed-shoot --timeout 500 sh -c 'setsid sh -c \"exec sleep 1234.5\" & sleep 2345.5'; echo \"rc=$?\"; "
        "seed-shoot sh -c 'nohup sleep 3456.5 >/dev/null 2>&1 & echo started'; echo \"rc=$?\"; echo done")},
        rootfs=False)
    node = nodes(proj)
    logs = node.wait_log("w", "t: done", timeout=60)
    assert "t: rc=124" in logs and "t: rc=0" in logs and "t: started" in logs
    for marker in ("sleep 1234.5", "sleep 2345.5", "sleep 3456.5"):
        assert pids_with_cmdline(marker) == [], marker


def test_client_disconnect_ends_the_shoot(nodes):
    proj = make_project({"w": py_instance('''
        import json, os, socket, time
        host, port = os.environ["SEED_SHOOT_URL"][7:].split(":")
        body = json.dumps({"command": ["sleep", "4567.5"], "timeout": 60000})
        s = socket.create_connection((host, int(port)))
        s.sendall(("POST /shoot HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/json\\r\\n"
                   "Content-Length: %d\\r\\n\\r\\n%s" % (len(body), body)).encode())
        time.sleep(1.0)
        print("closing", flush=True)
        s.close()
        time.sleep(1.0)
        print("done", flush=True)
        ''')}, rootfs=False)
    node = nodes(proj)
    node.wait_log("w", "t: closing", timeout=30)
    node.wait_log("w", "t: done", timeout=30)
    assert pids_with_cmdline("sleep 4567.5") == []


def test_output_held_open_outside_the_shoot_does_not_hang_it(nodes):
    """A shoot passes its stdout to a process of its caller (over a socket on the
    shared volume), which keeps it open: the call still returns when the shoot ends."""
    proj = make_project({"w": py_instance('''
        import array, json, os, socket, subprocess, time, urllib.request
        path = "/seed/storage/data/sock"
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen()
        os.chmod(path, 0o777)
        body = {"command": ["python3", "-c", "import socket,array; s=socket.socket(socket.AF_UNIX); "
                "s.connect('%s'); s.sendmsg([b'x'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, "
                "array.array('i', [1]))]); print('sent')" % path], "timeout": 20000}
        def call():
            req = urllib.request.Request(os.environ["SEED_SHOOT_URL"] + "/shoot", json.dumps(body).encode())
            return json.loads(urllib.request.urlopen(req).read())
        import threading
        out = {}
        t = threading.Thread(target=lambda: out.update(call()))
        t0 = time.time()
        t.start()
        conn, _ = srv.accept()
        msg, anc, _, _ = conn.recvmsg(1, socket.CMSG_SPACE(4))
        held = array.array("i", anc[0][2])[0]          # the shoot's stdout, kept open here
        t.join(30)
        print(json.dumps({"result": {"returned": not t.is_alive(), "after": time.time() - t0,
                                     "exitCode": out.get("exitCode"), "stdout": out.get("stdout")}}), flush=True)
        print("done", flush=True)
        ''', storage={"data": "8Mi"})}, rootfs=False)
    node = nodes(proj)
    r = results(node, "w", timeout=60)[0]
    assert r["returned"] is True and r["after"] < 10, r
    assert r["exitCode"] == 0 and r["stdout"] == "sent\n"


# ---- limits ----

def test_fork_bomb_and_memory_hog_are_contained(nodes):
    proj = make_project({"w": script_instance(
        "seed-shoot seed-probe forkbomb; echo \"bomb rc=$?\"; "
        "seed-shoot seed-probe alloc 2048; echo \"hog rc=$?\"; "
        "seed-shoot echo still-fine; echo done", root="rootfs", size="xs")})
    node = nodes(proj)
    logs = node.wait_log("w", "t: done", timeout=120)
    bomb = json.loads(re.search(r't: (\{"probe":"forkbomb".*\})$', logs, re.M).group(1))
    assert bomb["errno"] == 11 and 100 < bomb["forked"] < 1024
    assert "t: bomb rc=137" in logs          # the probe ends its own process group with SIGKILL
    assert "t: hog rc=137" in logs           # killed by the out-of-memory killer (SIGKILL)
    progress = [int(m) for m in re.findall(r'"mib":(\d+)', logs)]
    assert max(progress, default=0) < 512
    assert "t: still-fine" in logs
    assert node.ps()["w"]["state"] == "running"


def test_kill_everything_reaches_only_the_shoot(nodes):
    """kill(-1) and kill(0) from a shoot end its own processes, nothing else: process
    groups cross PID namespaces, so every sandbox starts its own session."""
    proj = make_project({"w": script_instance(
        "seed-shoot sh -c 'kill -KILL 0'; echo \"group rc=$?\"; "
        "seed-shoot sh -c 'kill -KILL -1; sleep 1; echo survived'; echo \"all rc=$?\"; "
        "seed-shoot echo after; echo done")}, rootfs=False)
    node = nodes(proj)
    logs = node.wait_log("w", "t: done", timeout=60)
    assert "t: group rc=137" in logs
    assert "t: survived" in logs            # kill(-1) spares the caller itself ...
    assert "t: after" in logs                # ... and the template still makes shoots
    assert node.ps()["w"]["state"] == "running" and node.ps()["w"]["restarts"] == 0


def test_output_flood_is_truncated(nodes):
    proj = make_project({"w": py_instance('''
        import base64, json, os, urllib.request
        url = os.environ["SEED_SHOOT_URL"] + "/shoot"
        body = {"command": ["sh", "-c", "head -c 5000000 /dev/zero; echo tail >&2"], "encoding": "base64"}
        req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
        r = json.loads(urllib.request.urlopen(req).read())
        print(json.dumps({"result": {"truncated": r["truncated"], "exitCode": r["exitCode"],
                          "stdout": len(base64.b64decode(r["stdout"])), "stderr": base64.b64decode(r["stderr"]).decode()}}),
              flush=True)
        print("done", flush=True)
        ''')}, rootfs=False)
    node = nodes(proj, "--shoot-output-max", str(1 << 20))
    r = results(node, "w")[0]
    # the cap is on what is sent: 1 MiB of base64 holds 768 KiB
    assert r == {"truncated": True, "exitCode": 0, "stdout": (1 << 20) // 4 * 3, "stderr": "tail\n"}


def shoots_cgroup(node, name):
    """{controller file: path} of an instance's parent shoots cgroup, v1 or v2."""
    ns = node.ps()[name]["namespace"]
    leaf = pathlib.Path("seed", node.cgroup_id(), f"{ns}-{name}-shoots")
    v2 = pathlib.Path("/sys/fs/cgroup") / leaf
    if (v2 / "memory.max").exists():
        return {"memory": v2 / "memory.max", "cpu": v2 / "cpu.max", "pids": v2 / "pids.max", "dir": v2,
                "usage": "memory.current"}
    base = pathlib.Path("/sys/fs/cgroup")
    return {"memory": base / "memory" / leaf / "memory.limit_in_bytes",
            "cpu": base / "cpu" / leaf / "cpu.cfs_quota_us", "pids": base / "pids" / leaf / "pids.max",
            "dir": base / "memory" / leaf, "usage": "memory.usage_in_bytes"}


def shoots_memory(cg):
    """Memory used by the shoot cgroups (s0, s1, ...) of an instance, summed."""
    total = 0
    for d in cg["dir"].glob("s*"):
        try:
            total += int((d / cg["usage"]).read_text())
        except (OSError, ValueError):
            pass
    return total


PARALLEL_CALLS = '''
    import json, os, threading, urllib.request, urllib.error
    url = os.environ["SEED_SHOOT_URL"] + "/shoot"
    out = []
    def one(i):
        body = json.dumps({"command": COMMAND, "timeout": 60000}).encode()
        try:
            r = json.loads(urllib.request.urlopen(urllib.request.Request(url, body), timeout=120).read())
            out.append([200, r["exitCode"], r["stdout"].strip()[-40:]])
        except urllib.error.HTTPError as e:
            out.append([e.code, e.headers.get("Retry-After"), json.loads(e.read()).get("error")])
    ts = [threading.Thread(target=one, args=(i,)) for i in range(CALLS)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    print(json.dumps({"result": sorted(out, key=str)}), flush=True)
    print("done", flush=True)
'''


def parallel_calls(command, calls):
    """A script that makes `calls` shoots of `command` at once and prints their results."""
    return (PARALLEL_CALLS.replace("COMMAND", json.dumps(command)).replace("CALLS", str(calls)))


def test_shoots_of_an_instance_are_bounded_together(nodes):
    """The attack: twelve parallel shoots from an xs instance, each holding 400 MiB.
    At most shoot.max (4) run; the rest wait, then get 503; the instance's parent
    shoots cgroup is capped at 4 x the tier, and the shoots never hold more."""
    hog = "b = b'x' * (400 << 20); import time; time.sleep(3); print(len(b))"
    proj = make_project({"w": py_instance(parallel_calls(["python3", "-c", hog], 12), size="xs")},
                        rootfs=False)
    node = nodes(proj, "--shoot-queue-ms", "500")
    node.wait_running("w")
    cg = node.wait(lambda: (c := shoots_cgroup(node, "w")) and c["memory"].exists() and c, what="shoots cgroup")
    if "max" in str(cg["memory"]):
        assert cg["memory"].read_text().strip() == str(4 * 512 << 20)
        assert cg["cpu"].read_text().split() == ["400000", "100000"]
    else:
        assert int(cg["memory"].read_text()) == 4 * 512 << 20
        assert int(cg["cpu"].read_text()) == 4 * 100000
    assert int(cg["pids"].read_text()) == 4 * 1024
    peak = 0
    end = time.time() + 90
    while time.time() < end and "t: done" not in node.logs("w"):
        peak = max(peak, shoots_memory(cg))
        time.sleep(0.05)
    r = results(node, "w")[0]
    print("peak shoot memory", peak >> 20, "MiB", r)
    ok = [x for x in r if x[0] == 200]
    busy = [x for x in r if x[0] == 503]
    assert len(ok) == 4 and len(busy) == 8, r
    assert all(x[1] == 0 and x[2] == str(400 << 20) for x in ok), ok
    assert all(b[1] == "1" and "shoot.max" in b[2] for b in busy), busy
    assert 2 * (400 << 20) <= peak <= 4 * (512 << 20), peak


def test_node_memory_budget_refuses_with_503(nodes):
    """--shoot-memory: the memory limits of running instances and shoots stay within it;
    a shoot past it waits, then gets 503 saying why."""
    proj = make_project({"w": py_instance(parallel_calls(["sleep", "2"], 3), size="xs")}, rootfs=False)
    node = nodes(proj, "--shoot-memory", "1Gi", "--shoot-queue-ms", "500")
    r = results(node, "w", timeout=60)[0]
    ok = [x for x in r if x[0] == 200]
    busy = [x for x in r if x[0] == 503]
    # the instance (512 MiB) and one shoot (512 MiB) fill 1 GiB
    assert len(ok) == 1 and len(busy) == 2, r
    assert all(b[1] == "1" and "--shoot-memory" in b[2] and "1024 MiB" in b[2] for b in busy), busy
    bad = run([SEED, "up", str(proj), "--shoot-memory", "lots"])
    assert bad.returncode == 2 and "--shoot-memory expects a size" in bad.stderr, bad.stderr


SLOW_CLIENTS = '''
    import json, os, resource, socket, time
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    N, ROUNDS = 4300, 12
    conns = {}
    lasted = []
    def open_one():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("10.77.0.1", 7070))
        conns[s.fileno()] = [s, time.time(), 0]
    while len(conns) < N:
        open_one()
    print("opened", flush=True)
    for _ in range(ROUNDS):
        reopen = 0
        for fd, c in list(conns.items()):
            s = c[0]
            try:
                s.send(b"POST /shoot HTTP/1.1\\r\\n" if c[2] == 0 else b"X-Slow-%d: x\\r\\n" % c[2])
                c[2] += 1
                if s.recv(1) == b"":
                    raise ConnectionResetError
            except BlockingIOError:
                continue
            except OSError:
                lasted.append(time.time() - c[1])
                s.close()
                del conns[fd]
                if reopen < 1000:
                    reopen += 1
                    open_one()
        time.sleep(2)
    held = [time.time() - c[1] for c in conns.values() if c[2] > 0]
    print(json.dumps({"result": {"closed": len(lasted), "longest_closed": max(lasted, default=0),
                                 "held": len(held), "longest_held": max(held, default=0)}}), flush=True)
    print("done", flush=True)
'''

STEADY_CALLER = '''
    import json, os, time, urllib.request
    url = os.environ["SEED_SHOOT_URL"] + "/shoot"
    time.sleep(4)
    lat, errors = [], []
    end = time.time() + 16
    while time.time() < end:
        t0 = time.time()
        try:
            r = urllib.request.urlopen(urllib.request.Request(url, b'{"command": ["true"]}'), timeout=15)
            if json.loads(r.read())["exitCode"] != 0:
                errors.append("exit")
        except Exception as e:
            errors.append(str(e)[:120])
        lat.append(time.time() - t0)
        time.sleep(0.2)
    print(json.dumps({"result": {"calls": len(lat), "errors": errors[:5], "failed": len(errors),
                                 "slowest": max(lat)}}), flush=True)
    print("done", flush=True)
'''


def accepted_from(node, addr):
    """Connections from addr the node has accepted (a process owns them; those still in
    the listen queue have none)."""
    r = run(["nsenter", f"--net=/proc/{node.proc.pid}/ns/net", "ss", "-Htnp", "state", "established",
             "( sport = :7070 )"])
    return sum(1 for line in r.stdout.splitlines() if f" {addr}:" in line and "users:(" in line)


def most_accepted(node, addr, seconds):
    """The most connections from addr the node held at once, sampled for seconds."""
    most = 0
    end = time.time() + seconds
    while time.time() < end:
        most = max(most, accepted_from(node, addr))
        time.sleep(0.5)
    return most


def test_half_sent_requests_of_others_do_not_deny_shoots(nodes):
    """The attack: an instance without shoot.enable holds thousands of half-sent
    requests (a header line every 2 s). It is refused at accept, so the shoot-enabled
    instance's calls all succeed promptly."""
    proj = make_project({"bad": {"root": "host", "processes": {"t": {"restart": "no", "command": [
                             "python3", "-c", textwrap.dedent(SLOW_CLIENTS)]}}},
                         "w": py_instance(STEADY_CALLER)}, rootfs=False)
    node = nodes(proj)
    node.wait_log("bad", "t: opened", timeout=60)
    most = most_accepted(node, node.ps()["bad"]["address"], 15)
    r = results(node, "w", timeout=90)[0]
    print("caller", r, "most accepted from bad", most)
    assert r["calls"] >= 20 and r["failed"] == 0 and r["slowest"] < 5, r
    assert most == 0
    b = results(node, "bad", timeout=60)[0]
    print("attacker", b)
    # none of its connections lasts: each is closed as soon as it is accepted
    assert b["longest_held"] < 5 and b["longest_closed"] < 5, b


def test_slow_sender_cannot_starve_its_siblings(nodes):
    """A shoot-enabled instance that slow-sends its own requests keeps at most shoot.max
    + 64 connections, each dropped 10 s after accept however it trickles; a sibling
    shoot-enabled instance's calls all succeed promptly."""
    proj = make_project({"a": script_instance("python3 -c " + shell_quote(textwrap.dedent(SLOW_CLIENTS)) +
                                              "; echo done-a"),
                         "b": py_instance(STEADY_CALLER)}, rootfs=False)
    node = nodes(proj)
    node.wait_log("a", "t: opened", timeout=60)
    most = most_accepted(node, node.ps()["a"]["address"], 20)
    r = results(node, "b", timeout=90)[0]
    print("caller", r, "most held by a", most)
    assert r["calls"] >= 20 and r["failed"] == 0 and r["slowest"] < 5, r
    assert 0 < most <= 4 + 64 + 4, most
    a = results(node, "a", timeout=60)[0]
    print("slow sender", a)
    # whole-request deadline: trickling does not keep a connection (10 s from accept)
    assert a["longest_closed"] < 20 and a["longest_held"] < 20, a


def vm_hwm_mib(node):
    status = pathlib.Path(f"/proc/{node.proc.pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) // 1024


def test_output_flood_response_and_node_memory_are_bounded(nodes):
    """40 MB of NUL bytes: in text mode each would be 3 bytes of U+FFFD, in base64 4/3.
    The answer holds at most --shoot-output-max (16 MiB) per stream as sent, with
    truncated true, and the node never builds it whole: its peak memory stays small,
    for one call and for several at once, over HTTP and over the control socket."""
    cap = 16 << 20
    proj = make_project({"w": py_instance('''
        import json, os, threading, time, urllib.request
        url = os.environ["SEED_SHOOT_URL"] + "/shoot"
        def call(encoding):
            body = {"command": ["head", "-c", "40000000", "/dev/zero"]}
            if encoding:
                body["encoding"] = encoding
            data = urllib.request.urlopen(urllib.request.Request(url, json.dumps(body).encode()), timeout=120).read()
            r = json.loads(data)
            return {"size": len(data), "truncated": r["truncated"], "exitCode": r["exitCode"],
                    "stdout": len(r["stdout"])}
        def wait_for(name):
            while not os.path.exists("/seed/storage/d/" + name):
                time.sleep(0.05)
        wait_for("one")
        print(json.dumps({"result": {"text": call(None)}}), flush=True)
        print(json.dumps({"result": {"base64": call("base64")}}), flush=True)
        print("one-done", flush=True)
        wait_for("parallel")
        out = []
        ts = [threading.Thread(target=lambda: out.append(call(None))) for _ in range(4)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        print(json.dumps({"result": {"parallel": out}}), flush=True)
        print("done", flush=True)
        ''', storage={"d": "8Mi"})}, rootfs=False)
    node = nodes(proj)
    node.wait_running("w")
    node.wait(lambda: node.cli("shoot", "w", "--", "true").returncode == 0, what="shoots ready")
    base = vm_hwm_mib(node)
    node.cli("shoot", "w", "--", "touch", "/seed/storage/d/one").check_returncode()
    node.wait_log("w", "t: one-done", timeout=120)
    one = vm_hwm_mib(node)
    node.cli("shoot", "w", "--", "touch", "/seed/storage/d/parallel").check_returncode()
    r = {k: v for d in results(node, "w", timeout=180) for k, v in d.items()}
    several = vm_hwm_mib(node)
    # and `seed shoot` over the control socket: the same bound, streamed the same way
    c = subprocess.run([SEED, "--state-dir", str(node.state), "shoot", "w", "--", "head", "-c", "40000000",
                        "/dev/zero"], capture_output=True, timeout=120)
    ctl = vm_hwm_mib(node)
    print("VmHWM MiB: start", base, "one", one, "four", several, "control", ctl, r)
    for k in ("text", "base64"):
        assert r[k]["exitCode"] == 0 and r[k]["truncated"] is True, r
        assert cap - 8 <= r[k]["size"] <= cap + 256, r      # the answer: the cap plus a small constant
    assert r["text"]["stdout"] == cap // 3                   # U+FFFD is 3 bytes: whole characters only
    assert len(r["parallel"]) == 4 and all(x["size"] <= cap + 256 and x["truncated"] for x in r["parallel"])
    assert c.returncode == 0 and len(c.stdout) == cap // 4 * 3, (c.returncode, len(c.stdout), c.stderr)
    if "asan" not in str(BUILD):
        assert one - base < 48, (base, one)       # one stream's buffer (16 MiB) and change
        assert several - base < 4 * 16 + 48, (base, several)
        assert ctl - base < 4 * 16 + 48, (base, ctl)


# ---- who may shoot, and what a shoot sees ----

def test_isolation_of_a_shoot(nodes):
    proj = make_project({
        "a": script_instance(
            "echo A > /seed/storage/data/marker; B=$(grep seed-b /etc/hosts | cut -f1); "
            "seed-shoot sh -c 'seed-probe report; cat /seed/storage/data/marker; "
            "ls /etc/seed /run/seed 2>&1 | head -2; seed-probe connect '\"$B\"' 80'; "
            "seed-shoot --timeout 60000 sleep 5678.5 & "
            "echo done", root="rootfs", storage={"data": "8Mi"}),
        "b": {"root": "rootfs", "storage": {"data": "8Mi"}, "expose": {"http": 80},
              "processes": {"s": {"command": ["sh", "-c", "echo B > /seed/storage/data/marker; exec seed-probe serve 80"]}}},
    })
    node = nodes(proj)
    logs = node.wait_log("a", "t: done", timeout=60)
    rep = json.loads(re.search(r't: (\{"probe":"report".*\})$', logs, re.M).group(1))
    comms = sorted(p.split(":", 1)[1] for p in rep["processes"])
    # only the shoot's own processes: its PID 1, the shell and the probe
    assert "sleep" not in comms and set(comms) <= {"seed-template", "sh", "seed-probe"}, comms
    assert rep["interfaces"] == ["lo"]
    assert rep["hostname"] == "shoot"
    assert int(rep["CapEff"], 16) == int(rep["CapBnd"], 16) == 0x4fb
    assert rep["NoNewPrivs"] == "1" and rep["Seccomp"] == "2"
    for op in ("mount_tmpfs", "unshare_user", "unshare_net", "init_module", "raw_socket", "bpf", "keyctl",
               "clone_newuser", "pivot_root", "sethostname"):
        assert rep["attempts"][op] in ("EPERM", "ENOSYS"), op
    assert rep["attempts"]["write_root"] == "EROFS" and rep["attempts"]["write_tmp"] == "ok"
    # its own user namespace, nested in its template's: uid 0 maps to the template's
    # uid 0, which the host sees as the caller's unprivileged range
    assert rep["uid_map"].split() == ["0", "0", "65536"]
    sleeper = node.wait(lambda: pids_with_cmdline("sleep 5678.5"), what="a running shoot")
    host_uid = int(pathlib.Path(f"/proc/{sleeper[0]}/status").read_text().split("Uid:")[1].split()[0])
    assert host_uid >= ID_BASE
    assert "SEED_SHOOT_URL" not in rep["env"] and "SEED_INSTANCE" not in rep["env"]
    assert rep["connect_files"] == {} and rep["run_seed_env"] is None
    assert "t: A" in logs                                    # its caller's volume, not b's
    assert re.search(r"No such file or directory", logs)     # no /etc/seed, no /run/seed
    conn = json.loads(re.search(r't: (\{"probe":"connect".*\})$', logs, re.M).group(1))
    assert conn["result"] != "ok"                            # no network


def test_only_shoot_enabled_instances_are_served(nodes):
    """Anything but a shoot-enabled instance is refused at accept, before a byte of its
    request is read: the connection closes without an answer."""
    proj = make_project({
        "yes": script_instance("echo done"),
        "no": {"root": "host", "processes": {"t": {"restart": "no", "command": ["sh", "-c",
               "sleep 0.5; echo \"env=${SEED_SHOOT_URL:-unset}\"; "
               "curl -s -m 5 -o /dev/null -w 'code=%{http_code}\\n' -X POST -d '{\"command\":[\"true\"]}' http://10.77.0.1:7070/shoot; "
               "echo \"rc=$?\"; "
               "test -e /seed/bin/seed-shoot || echo no-client; echo done; exec sleep 100000"]}}},
    }, rootfs=False)
    node = nodes(proj)
    logs = node.wait_log("no", "t: done")
    assert "t: env=unset" in logs and "t: code=000" in logs and "t: no-client" in logs
    assert re.search(r"t: rc=(52|56)$", logs, re.M), logs    # empty reply / connection reset
    # and from outside the instances: the endpoint is not even reachable from the node's own address
    r = node.netns_run("curl", "-s", "-m", "2", "http://127.0.0.1:7070/shoot")
    assert r.returncode != 0


def test_malformed_requests(nodes):
    proj = make_project({"w": py_instance('''
        import json, os, socket, time, http.client
        host, port = os.environ["SEED_SHOOT_URL"][7:].split(":")
        def call(method, path, body=None, headers=None):
            c = http.client.HTTPConnection(host, int(port), timeout=30)
            c.request(method, path, body=body, headers=headers or {"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            try:
                err = json.loads(data).get("error")
            except ValueError:
                err = "NOT JSON: %r" % data[:80]
            return {"status": r.status, "error": err, "retry": r.getheader("Retry-After"),
                    "allow": r.getheader("Allow"), "type": r.getheader("Content-Type")}
        cases = {
          "bad-json": ("POST", "/shoot", "{nope"),
          "not-object": ("POST", "/shoot", "[1]"),
          "no-command": ("POST", "/shoot", "{}"),
          "empty-command": ("POST", "/shoot", '{"command": []}'),
          "command-string": ("POST", "/shoot", '{"command": "ls"}'),
          "non-string-arg": ("POST", "/shoot", '{"command": ["echo", 1]}'),
          "empty-program": ("POST", "/shoot", '{"command": [""]}'),
          "timeout-type": ("POST", "/shoot", '{"command": ["true"], "timeout": "5"}'),
          "timeout-zero": ("POST", "/shoot", '{"command": ["true"], "timeout": 0}'),
          "timeout-huge": ("POST", "/shoot", '{"command": ["true"], "timeout": 3600001}'),
          "unknown-field": ("POST", "/shoot", '{"command": ["true"], "comand": 1}'),
          "bad-encoding": ("POST", "/shoot", '{"command": ["true"], "encoding": "hex"}'),
          "bad-base64": ("POST", "/shoot", '{"command": ["cat"], "encoding": "base64", "stdin": "!!!"}'),
          "env-type": ("POST", "/shoot", '{"command": ["true"], "env": {"A": 1}}'),
          "cwd-relative": ("POST", "/shoot", '{"command": ["true"], "cwd": "tmp"}'),
          "duplicate-key": ("POST", "/shoot", '{"command": ["true"], "command": ["false"]}'),
          "env-name-cut": ("POST", "/shoot", '{"command": ["true"], "env": {"a' + "\\\\u00e9" * 40 + '=": "x"}}'),
          "not-found": ("POST", "/nope", "{}"),
          "not-found-utf8": ("POST", "/%ff%c3", "{}"),
          "wrong-method": ("GET", "/shoot", None),
          "too-large": ("POST", "/shoot", '{"command": ["true"], "stdin": "' + "x" * (1 << 20) + '"}'),
        }
        for name, (m, p, b) in cases.items():
            print(json.dumps({"result": {name: call(m, p, b)}}), flush=True)
        # A client that sends a partial request and stalls is dropped.
        s = socket.create_connection((host, int(port)))
        s.sendall(b"POST /shoot HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 100\\r\\n\\r\\n{")
        s.settimeout(30)
        t0 = time.time()
        try:
            data = s.recv(1000)
        except socket.timeout:
            data = b"TIMEOUT"
        print(json.dumps({"result": {"slow": {"got": data.decode(errors="replace")[:40], "after": time.time() - t0}}}),
              flush=True)
        print(json.dumps({"result": {"after-errors": call("POST", "/shoot", '{"command": ["echo", "ok"]}')}}), flush=True)
        print("done", flush=True)
        ''')}, rootfs=False)
    node = nodes(proj)
    r = {k: v for d in results(node, "w", timeout=90) for k, v in d.items()}
    for name in ("bad-json", "not-object", "no-command", "empty-command", "command-string", "non-string-arg",
                 "empty-program", "timeout-type", "timeout-zero", "timeout-huge", "unknown-field", "bad-encoding",
                 "bad-base64", "env-type", "cwd-relative", "duplicate-key", "env-name-cut"):
        assert r[name]["status"] == 400, (name, r[name])
        assert r[name]["error"] and not r[name]["error"].startswith("NOT JSON"), (name, r[name])
        assert r[name]["type"] == "application/json"
    assert "command" in r["no-command"]["error"] and "timeout" in r["timeout-zero"]["error"]
    assert r["not-found"]["status"] == 404 and r["not-found"]["error"]
    # messages that quote what was sent stay valid UTF-8 (the JSON could not hold them otherwise)
    assert "must be non-empty" in r["env-name-cut"]["error"], r["env-name-cut"]
    assert r["not-found-utf8"]["status"] == 404 and "no such endpoint" in r["not-found-utf8"]["error"], r["not-found-utf8"]
    assert r["wrong-method"]["status"] == 405 and r["wrong-method"]["allow"] == "POST"
    assert r["too-large"]["status"] == 413 and r["too-large"]["error"]
    assert r["slow"]["got"] in ("",) or r["slow"]["got"].startswith("HTTP/1.1 408")
    assert r["slow"]["after"] < 25
    assert r["after-errors"]["status"] == 200


def test_busy_node_answers_503_with_retry_after(nodes):
    proj = make_project({"w": py_instance('''
        import json, os, threading, urllib.request, urllib.error
        url = os.environ["SEED_SHOOT_URL"] + "/shoot"
        out = []
        def one():
            body = json.dumps({"command": ["sleep", "3"]}).encode()
            try:
                r = urllib.request.urlopen(urllib.request.Request(url, body))
                out.append((r.status, None))
            except urllib.error.HTTPError as e:
                out.append((e.code, e.headers.get("Retry-After"), json.loads(e.read()).get("error")))
        ts = [threading.Thread(target=one) for _ in range(4)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        print(json.dumps({"result": sorted(out, key=str)}), flush=True)
        print("done", flush=True)
        ''')}, rootfs=False)
    node = nodes(proj, "--shoot-max", "2", "--shoot-queue-ms", "500")
    r = results(node, "w", timeout=60)[0]
    ok = [x for x in r if x[0] == 200]
    busy = [x for x in r if x[0] == 503]
    assert len(ok) == 2 and len(busy) == 2, r
    assert all(b[1] == "1" and "busy" in b[2] for b in busy)


def test_seed_shoot_from_the_node(nodes):
    proj = make_project({"w": script_instance("echo done", storage={"data": "8Mi"}),
                         "plain": {"root": "host"}}, rootfs=False)
    node = nodes(proj)
    node.wait_log("w", "t: done")
    node.wait(lambda: node.cli("shoot", "w", "--", "true").returncode == 0, what="shoots ready")
    r = node.cli("shoot", "w", "--", "sh", "-c", "echo hi; echo oops >&2; exit 5")
    assert (r.returncode, r.stdout, r.stderr) == (5, "hi\n", "oops\n")
    r = run([SEED, "--state-dir", str(node.state), "shoot", "w", "--", "cat"], input="piped\n")
    assert r.stdout == "piped\n"
    r = node.cli("shoot", "plain", "--", "true")
    assert r.returncode == 125 and "shoot.enable" in r.stderr
    r = node.cli("shoot", "w")
    assert r.returncode == 2
    r = subprocess.run([SEED, "--state-dir", str(node.state), "shoot", "w", "--", "echo", b"a\xff"],
                       capture_output=True, stdin=subprocess.DEVNULL, timeout=30)
    assert r.returncode == 2 and b"valid UTF-8" in r.stderr and r.stdout == b""


# ---- no leaks ----

def node_footprint(node):
    pid = node.proc.pid
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    mounts = len(pathlib.Path(f"/proc/{pid}/mountinfo").read_text().splitlines())
    mine = pathlib.Path("/sys/fs/cgroup/pids/seed", node.cgroup_id())   # this node's only
    cgroups = sum(1 for _ in mine.rglob("*/") if _.is_dir()) if mine.exists() else 0
    sandbox_procs = len(host_pids_with_uid_at_least(ID_BASE))
    netns = len({os.readlink(f"/proc/{p}/ns/net") for p in os.listdir("/proc") if p.isdigit()
                 and os.path.exists(f"/proc/{p}/ns/net")})
    return {"rss_kb": rss, "fds": fds, "mounts": mounts, "cgroups": cgroups, "procs": sandbox_procs, "netns": netns}


def test_ten_thousand_shoots_leak_nothing(nodes):
    proj = make_project({"w": script_instance(
        "shootload 2000 8 > /tmp/warm; echo warmed-up; "
        "while [ ! -e /seed/storage/data/go ]; do sleep 0.05; done; "
        "shootload 10000 8; echo done", root="rootfs", storage={"data": "8Mi"})})
    shutil.copy2(BUILD / "bench" / "shootload", proj / "rootfs" / "bin" / "shootload")
    node = nodes(proj)
    node.wait_log("w", "t: warmed-up", timeout=120)
    time.sleep(1)
    before = node_footprint(node)
    # let the instance start the 10,000 (it waits for a file in its volume)
    node.cli("shoot", "w", "--", "touch", "/seed/storage/data/go").check_returncode()
    logs = node.wait_log("w", "t: done", timeout=240)
    load = json.loads(re.findall(r't: (\{"probe":"shootload".*\})$', logs, re.M)[-1])
    assert load["n"] == 10000 and load["errors"] == 0
    time.sleep(2)   # the last sandboxes finish tearing down and the pool refills
    after = node_footprint(node)
    print("before", before, "after", after, "load", load)
    if "asan" not in str(BUILD):   # ASan's quarantine holds freed memory on purpose
        assert after["rss_kb"] - before["rss_kb"] <= 1024, (before, after)
    assert after["fds"] == before["fds"], (before, after)
    assert after["mounts"] == before["mounts"], (before, after)
    assert after["cgroups"] <= before["cgroups"] + 2, (before, after)
    # instance, templates and warm sandboxes (their number moves while the pool refills)
    assert after["procs"] <= before["procs"] + 1, (before, after)
    assert after["netns"] <= before["netns"] + 2, (before, after)
