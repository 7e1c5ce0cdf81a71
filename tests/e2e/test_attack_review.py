"""An attacker's review of the issue 7 hardening (what changed since 49b3a1d). Each test
makes the attack as an instance's payload or a user of the CLI would; a test that fails
is a finding (see the review report), one that passes is an attack that held."""
import json
import os
import pathlib
import re
import signal
import subprocess
import time
import uuid

import pytest

from seedtest import SEED, make_project, run, workdir

pytestmark = pytest.mark.timeout(240)


def add_applets(proj, *names):
    for a in names:
        link = proj / "rootfs" / "bin" / a
        if not link.exists():
            link.symlink_to("busybox")


def seed_exec(node, *args, timeout=60, **kw):
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run([SEED, "--state-dir", str(node.state), "exec", *args], capture_output=True,
                          timeout=timeout, **kw)


def in_mountinfo(node, name, path):
    """Whether a mount is visible at path inside the running instance name: path is on
    another filesystem than its parent directory (a mount hidden beneath a later one at
    or above it is listed in mountinfo all the same)."""
    r = seed_exec(node, name, "--", "stat", "-c", "%d", path, os.path.dirname(path))
    if r.returncode != 0:
        return False   # not even a directory there
    dev, parent = r.stdout.split()
    return dev != parent


# ---- rootfs: a mount point is made, and bound, through a symlink the payload planted in a volume ----

def test_symlink_in_a_volume_makes_no_host_directory(nodes):
    """Volume `outer` at /tmp/o holds the mount point of volume `pwn` (/tmp/o/l/NAME). The
    instance replaces /tmp/o/l by a symlink to /tmp. At the next start the mount point of
    `pwn` was made with mkdir -p *before pivot_root*, through the symlink: on the host's
    /tmp, as the instance's uid; and `pwn` was bound there. Mount points are now opened
    without following symbolic links: the start fails, saying so, and nothing is made."""
    victim = f"seed-attack-{uuid.uuid4().hex[:10]}"
    host_dir = pathlib.Path("/tmp") / victim
    proj = make_project({"box": {"root": "rootfs", "storage": {
        "outer": {"size": "8Mi", "mountPoint": "/tmp/o"},
        "pwn": {"size": "8Mi", "mountPoint": f"/tmp/o/l/{victim}"}},
        "processes": {"p": {"command": ["sh", "-c",
            "if [ ! -L /tmp/o/l ]; then mv /tmp/o/l /tmp/o/l.old && ln -s /tmp /tmp/o/l && echo planted; fi; "
            "echo up; sleep 100000"]}}}})
    add_applets(proj, "mv", "ln", "stat")
    try:
        node = nodes(proj)
        node.wait_log("box", "p: planted")
        # the instance broke its own mount point: it cannot start, and says why
        r = node.cli("restart", "box")
        assert r.returncode == 1
        assert f"mount point /tmp/o/l/{victim}" in r.stderr and "symbolic link" in r.stderr, r.stderr
        assert not host_dir.exists(), f"the instance made {host_dir} on the host (owner uid {host_dir.stat().st_uid})"
        assert "symbolic link" in node.ps()["box"]["error"]
    finally:
        if host_dir.is_dir():
            host_dir.rmdir()


def test_nested_volumes_are_mounted_outer_first(nodes):
    """Volume `a` at /tmp/x/in lies inside volume `b` at /tmp/x. Binds go in name order,
    so `b` is mounted over `a`, which vanishes (item 11's symptom, another way)."""
    proj = make_project({"box": {"root": "rootfs", "storage": {
        "a": {"size": "8Mi", "mountPoint": "/tmp/x/in"},
        "b": {"size": "8Mi", "mountPoint": "/tmp/x"},
        "c": {"size": "8Mi", "mountPoint": "/srv/in"},
        "d": {"size": "8Mi", "mountPoint": "/srv"}},
        "processes": {"p": {"command": ["sleep", "100000"]}}}})
    add_applets(proj, "stat")
    node = nodes(proj)
    node.wait_running("box")
    for path in ("/tmp/x", "/tmp/x/in", "/srv", "/srv/in"):
        assert in_mountinfo(node, "box", path), f"{path} is hidden in the instance"


# ---- seed exec: what a redirected file gives the instance ----

def test_exec_redirect_to_a_file_gives_only_writes(nodes, tmp_path):
    """`seed exec box -- cmd >> host.log` hands the host file's description itself to the
    instance (SCM_RIGHTS): through /proc/self/fd/1 the instance reopens it for reading
    and reads what the host wrote there before."""
    proj = make_project({"box": {"root": "rootfs", "processes": {"p": {"command": ["sleep", "100000"]}}}})
    node = nodes(proj)
    node.wait_running("box")
    log = tmp_path / "host.log"
    log.write_text("HOST-SECRET-LINE written by the host before\n")
    log.chmod(0o644)
    with open(log, "ab") as f:
        r = subprocess.run([SEED, "--state-dir", str(node.state), "exec", "box", "--", "sh", "-c",
                            "cat /proc/self/fd/1 >&2; echo appended"], stdout=f, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 0, r
    assert b"HOST-SECRET-LINE" not in r.stderr, f"the instance read the host file: {r.stderr!r}"


# ---- seed exec: a hostile /etc/passwd does not hang the helper ----

def test_exec_user_with_fifo_passwd_fails_fast(nodes):
    proj = make_project({"box": {"root": "rootfs", "processes": {"p": {"command": [
        "sh", "-c", "mkfifo /tmp/passwd /tmp/group && echo ready; sleep 100000"]}}}})
    add_applets(proj, "mkfifo")
    etc = proj / "rootfs" / "etc"
    for f in ("passwd", "group"):
        (etc / f).unlink()
        (etc / f).symlink_to(f"/tmp/{f}")
    node = nodes(proj)
    node.wait_log("box", "p: ready")
    t0 = time.time()
    r = seed_exec(node, "-u", "app", "box", "--", "id", timeout=30)
    assert time.time() - t0 < 10
    assert r.returncode == 125 and b"does not exist" in r.stderr, r
    r = seed_exec(node, "-u", "1000:staff", "box", "--", "id", timeout=30)
    assert r.returncode == 125 and b"group" in r.stderr, r
    r = seed_exec(node, "box", "--", "echo", "ok", timeout=30)   # root needs no entry
    assert r.returncode == 0 and r.stdout == b"ok\n", r


def test_exec_user_with_long_passwd_line_is_bounded(nodes):
    """/etc/passwd (a symlink to /tmp/passwd in the payload) is one 16 MiB line. glibc's
    fgetpwent grows its buffer 1 KiB at a time and rereads the line each time: the helper
    spins for many minutes. It does not watch its channel meanwhile, and holds the
    client's stdout and stderr: `timeout 10 seed exec ...` gives its caller no EOF."""
    proj = make_project({"box": {"root": "rootfs", "processes": {"p": {"command": [
        "sh", "-c", "head -c 16777216 /dev/zero | tr '\\0' a > /tmp/passwd && echo ready; sleep 100000"]}}}})
    add_applets(proj, "tr")
    etc = proj / "rootfs" / "etc"
    (etc / "passwd").unlink()
    (etc / "passwd").symlink_to("/tmp/passwd")
    node = nodes(proj)
    node.wait_log("box", "p: ready", timeout=60)
    t0 = time.time()
    try:
        r = subprocess.run(["timeout", "10", SEED, "--state-dir", str(node.state), "exec", "-u", "app", "box",
                            "--", "id"], capture_output=True, stdin=subprocess.DEVNULL, timeout=40)
    except subprocess.TimeoutExpired:
        pytest.fail("`timeout 10 seed exec -u app` gave no EOF on its output after 40 s: the helper still "
                    "parses /etc/passwd, holding the client's stdout and stderr")
    assert time.time() - t0 < 20, r
    assert node.ps()["box"]["state"] == "running"


# ---- volumes: free space is checked per volume, not for what they hold together ----

def test_volumes_together_cannot_overcommit_the_disk(nodes):
    """Three 64 MiB volumes on a filesystem with 128 MiB free: each fits alone (a sparse
    image costs nothing yet), together they promise far more than there is."""
    state = workdir() / "state"
    state.mkdir()
    run(["mount", "-t", "tmpfs", "-o", "size=128m,mode=0711", "tmpfs", str(state)]).check_returncode()
    try:
        proj = make_project({"box": {"root": "rootfs", "storage": {"a": "64Mi", "b": "64Mi", "c": "64Mi"},
                                     "processes": {"p": {"command": ["sleep", "100000"]}}}})
        node = nodes(proj, state=state)
        st = node.wait(lambda: (p := node.ps()) and p["box"]["state"] in ("running", "failed") and p["box"],
                       timeout=60, what="box settled")
        promised = sum(v["sizeBytes"] if "sizeBytes" in v else 0
                       for v in json.loads(node.cli("volume", "ls", "--json").stdout))
        free = os.statvfs(state).f_bavail * os.statvfs(state).f_frsize
        assert st["state"] == "failed", (
            f"box runs with volumes promising {promised} bytes on a filesystem with {free} bytes free")
        node.close()
    finally:
        run(["umount", "-l", str(state)])


# ---- logs: floods ----

def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_empty_line_flood_costs_the_node_little(nodes):
    """Empty lines cost the most per byte; each counts 128 bytes in the init's limit."""
    proj = make_project({"flood": {"root": "rootfs", "size": "xs", "processes": {"y": {"restart": "no", "command": [
        "sh", "-c", "echo start; timeout 8 yes ''; sleep 1.5; echo end; sleep 100000"]}}}})
    node = nodes(proj)
    node.wait_log("flood", "y: start")
    t0, c0 = time.time(), cpu_seconds(node.proc.pid)
    node.wait(lambda: re.search(r"y: end$", node.logs("flood", "--tail", "3"), re.M), timeout=60, what="the end")
    wall, cpu = time.time() - t0, cpu_seconds(node.proc.pid) - c0
    assert cpu / wall < 0.3, (cpu, wall)
    assert "suppressed" in node.logs("flood")


def test_line_after_a_flood_is_kept(nodes):
    """Once over the rate, the init drops everything for a whole second, whatever the
    rate now: the line a program prints right after a burst (its error, its last words)
    is lost, though the output is far under the limit by then."""
    proj = make_project({"flood": {"root": "rootfs", "size": "xs", "processes": {"y": {"restart": "no", "command": [
        "sh", "-c", "echo start; head -c 20000000 /dev/zero | tr '\\0' '\\n'; echo the-last-words; "
        "sleep 3; echo end; sleep 100000"]}}}})
    add_applets(proj, "tr")
    node = nodes(proj)
    node.wait(lambda: re.search(r"y: end$", node.logs("flood", "--tail", "3"), re.M), timeout=60, what="the end")
    logs = node.logs("flood")
    assert "suppressed" in logs
    assert "y: the-last-words" in logs, "the line after the burst was dropped: " + logs[-600:]
