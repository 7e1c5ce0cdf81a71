"""What an attacker and a new user found (issue 7): each promise is tested from inside
the sandbox where it is an isolation promise, and end to end where it is a behaviour of
the node. Each node runs in a network namespace the test creates."""
import json
import os
import pathlib
import re
import signal
import subprocess
import time

import pytest

from seedtest import SEED, make_project, run

pytestmark = pytest.mark.timeout(240)


def probe_lines(node, name, kind, count, timeout=30):
    """The JSON lines of one probe kind an instance printed, once there are count."""
    def find():
        found = []
        for line in node.logs(name).splitlines():
            i = line.find(": {")
            if i < 0:
                continue
            try:
                j = json.loads(line[i + 2:])
            except ValueError:
                continue
            if j.get("probe") == kind:
                found.append(j)
        return found if len(found) >= count else None
    return node.wait(find, timeout, f"{count} {kind} probe lines of {name}")


# ---- 3: PID 1 of an instance or a shoot cannot be ptraced ----

DENIED = ("EPERM", "EACCES")


def assert_untouchable(r):
    for op in ("attach", "seize", "mem_rdwr", "mem_read", "vm_readv", "vm_writev", "environ"):
        assert r[op] in DENIED, (op, r)


def test_instance_pid1_cannot_be_ptraced(nodes):
    proj = make_project({"a": {"root": "rootfs", "processes": {"p": {"restart": "no", "command": [
        "sh", "-c", "seed-probe ptrace 1; sleep 1000"]}}}})
    node = nodes(proj)
    r = node.probe_json("a", "ptrace")
    assert r["pid"] == 1
    assert_untouchable(r)


def test_shoot_pid1_cannot_be_ptraced(nodes):
    proj = make_project({"a": {"root": "rootfs", "shoot": {"enable": True}, "processes": {"p": {
        "restart": "no", "command": ["sh", "-c", "seed-shoot seed-probe ptrace 1; sleep 1000"]}}}})
    node = nodes(proj)
    r = node.probe_json("a", "ptrace")
    assert r["pid"] == 1
    assert_untouchable(r)


# ---- 19: a root without a root account ----

def test_root_without_root_account_runs(nodes):
    proj = make_project({"a": {"root": "rootfs", "processes": {"p": {"restart": "no", "command": [
        "sh", "-c", "echo uid=$(id -u) home=$HOME; sleep 1000"]}}}})
    (proj / "rootfs" / "etc" / "passwd").write_text("app:x:1000:1000:app:/home/app:/bin/sh\n")
    node = nodes(proj)
    logs = node.wait_log("a", "uid=")
    assert "p: uid=0 home=/root" in logs
    assert "does not exist" not in logs
    assert node.ps()["a"]["restarts"] == 0
