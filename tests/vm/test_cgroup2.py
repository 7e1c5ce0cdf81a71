"""Smoke suite for a cgroup v2-only host (what `make check-vm` runs in its guest).

One node runs every instance the suite needs; the tests read what seed wrote into the
unified hierarchy (memory.max, cpu.max, pids.max of /sys/fs/cgroup/seed/<node id>/
<namespace>-<name>) and what the kernel counted there (memory.events, cpu.stat,
pids.events), check that the limits hold from inside, that shoots get cgroups of their
own with the same limits, and, last, that a stopped node leaves nothing behind.
Skipped on hosts with v1 hierarchies (the normal end-to-end run covers those).
"""
import json
import os
import pathlib
import re
import signal
import subprocess
import time

import pytest

from seedtest import ID_BASE, SEED, Node, host_pids_with_uid_at_least, make_project, remove_workdirs, run

CGROOT = pathlib.Path("/sys/fs/cgroup")
XS = {"memory.max": str(512 << 20), "cpu.max": "100000 100000", "pids.max": "1024"}
M = {"memory.max": str(2048 << 20), "cpu.max": "200000 100000", "pids.max": "2048"}


def cgroup2_only():
    """(True, "") on a host whose only cgroup hierarchy is cgroup2 at /sys/fs/cgroup."""
    types = {}
    for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        types.setdefault(right.split()[0], []).append(left.split()[4])
    if "cgroup" in types:
        return False, "this host has cgroup v1 hierarchies (" + ", ".join(types["cgroup"][:3]) + ")"
    if str(CGROOT) not in types.get("cgroup2", []):
        return False, "/sys/fs/cgroup is not a cgroup2 mount"
    return True, ""


ONLY_V2, WHY = cgroup2_only()
pytestmark = [pytest.mark.skipif(not ONLY_V2, reason=f"needs a cgroup v2-only host: {WHY}"),
              pytest.mark.timeout(300)]


def idle():
    return {"command": ["sleep", "100000"]}


def probe(*args, size="xs"):
    """An instance that runs seed-probe once and then idles, so its cgroup stays."""
    return {"root": "rootfs", "size": size,
            "processes": {"probe": {"command": ["seed-probe", *args], "restart": "no"}, "idle": idle()}}


PROJECT = {
    "web": {"root": "rootfs", "size": "xs", "storage": {"data": "8Mi"}, "expose": {"http": 8080},
            "processes": {"httpd": {"command": ["sh", "-c",
                "echo hello from cgroup v2 > /seed/storage/data/index.html; "
                "exec httpd -f -p 8080 -h /seed/storage/data"]}}},
    "big": {"root": "host", "size": "m", "processes": {"idle": idle()}},
    "hog": probe("alloc", "2048"),
    "bomb": probe("forkbomb"),
    "spin": probe("cpu", "3"),
    "w": {"root": "rootfs", "size": "xs", "shoot": {"enable": True}, "processes": {"idle": idle()}},
}


@pytest.fixture(scope="module")
def node():
    # The guest has 2.5 GiB: the default shoot budget (half of it) is taken by the
    # instances' own limits, so it is raised (the budget itself is tested on the host).
    n = Node(make_project(PROJECT), "--shoot-memory", "16Gi")
    try:
        n.wait_running(*PROJECT, timeout=180)
        yield n
    finally:
        n.stop()
        remove_leftover_cgroups(n)
        n.close()
        remove_workdirs()


def remove_leftover_cgroups(n):
    """After a failed test: the node's cgroups, deepest first (processes killed)."""
    top = CGROOT / "seed" / n.cgroup_id()
    if not top.exists():
        return
    for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [top]:
        try:
            (d / "cgroup.kill").write_text("1")
        except OSError:
            pass
        for _ in range(100):   # killed processes take a moment to leave
            try:
                d.rmdir()
                break
            except OSError:
                time.sleep(0.05)


def cgroup_of(node, name):
    ns = node.ps()[name]["namespace"]
    return CGROOT / "seed" / node.cgroup_id() / f"{ns}-{name}"


def read(cg, file):
    return (cg / file).read_text().strip()


def keyed(cg, file):
    return {k: int(v) for k, v in (l.split() for l in read(cg, file).splitlines())}


def limits(cg):
    return {f: read(cg, f) for f in ("memory.max", "cpu.max", "pids.max")}


def proc_cgroup(pid):
    line = pathlib.Path(f"/proc/{pid}/cgroup").read_text().strip()
    assert line.startswith("0::"), line   # one unified hierarchy, nothing else
    return line[3:]


def pids_running(*argv):
    """PIDs whose command line is exactly argv."""
    want = "\0".join(argv).encode() + b"\0"
    found = []
    for p in pathlib.Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if (p / "cmdline").read_bytes() == want:
                    found.append(int(p.name))
            except OSError:
                pass
    return found


def test_node_picks_cgroup_v2_and_instances_answer(node):
    assert "cgroups v2" in node.output()
    ctl = read(CGROOT / "seed", "cgroup.subtree_control").split()
    assert {"memory", "cpu", "pids"} <= set(ctl)
    page = node.wait(lambda: node.http(8080), timeout=60, what="web answering")
    assert page == "hello from cgroup v2\n"
    ps = node.ps()
    for name in PROJECT:
        assert ps[name]["state"] == "running", ps[name]
        cg = cgroup_of(node, name)
        assert proc_cgroup(ps[name]["pid"]) == "/" + str(cg.relative_to(CGROOT))
        assert int(read(cg, "pids.current")) >= 2   # init and its process(es)


def test_limits_are_written_to_the_unified_hierarchy(node):
    for name in ("web", "hog", "bomb", "spin", "w"):
        assert limits(cgroup_of(node, name)) == XS, name
    big = cgroup_of(node, "big")
    assert limits(big) == M
    if (big / "memory.swap.max").exists():
        assert read(big, "memory.swap.max") == "0"


def test_memory_limit_oom_is_reported(node):
    logs = node.wait_log("hog", "out-of-memory killer", timeout=120)
    assert "memory limit is 512 MiB" in logs
    assert "probe (seed): was killed by signal 9" in logs
    progress = [json.loads(l.split(": ", 1)[1])["mib"] for l in logs.splitlines() if '"mib"' in l]
    assert progress and max(progress) < 512
    cg = cgroup_of(node, "hog")
    assert keyed(cg, "memory.events")["oom_kill"] >= 1
    assert int(read(cg, "memory.peak" if (cg / "memory.peak").exists() else "memory.max")) <= 512 << 20
    assert node.ps()["hog"]["state"] == "running"   # the idle process lives on
    assert keyed(cgroup_of(node, "big"), "memory.events")["oom_kill"] == 0


def test_cpu_quota_holds(node):
    r = node.probe_json("spin", "cpu", timeout=120)
    ratio = r["cpu"] / r["wall"]
    assert ratio < 1.25, r   # two spinning threads, one vCPU
    stat = keyed(cgroup_of(node, "spin"), "cpu.stat")
    assert stat["usage_usec"] > 0
    # Throttled when both threads ran at once (on a busy guest they may not have).
    assert stat["nr_throttled"] > 0 or ratio < 0.9, (r, stat)


def test_pids_limit_holds(node):
    r = node.probe_json("bomb", "forkbomb", timeout=180)
    assert r["errno"] == 11 and 100 < r["forked"] < 1024, r   # EAGAIN from the pids controller
    assert keyed(cgroup_of(node, "bomb"), "pids.events")["max"] >= 1


def test_shoots_run_in_cgroups_of_their_own_with_the_tier(node):
    node.wait(lambda: node.cli("shoot", "w", "--", "true", timeout=60).returncode == 0, timeout=120,
              what="shoots ready")
    inst = cgroup_of(node, "w")
    shoots = inst.with_name(inst.name + "-shoots")
    client = subprocess.Popen([SEED, "--state-dir", str(node.state), "shoot", "w", "--", "sleep", "5678.5"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pid = node.wait(lambda: pids_running("sleep", "5678.5"), timeout=60, what="a running shoot")[0]
        path = proc_cgroup(pid)
        assert re.fullmatch(re.escape("/" + str(shoots.relative_to(CGROOT))) + r"/s\d+", path), path
        assert limits(CGROOT / path.lstrip("/")) == XS
    finally:
        client.kill()
        client.wait()
    node.wait(lambda: not pids_running("sleep", "5678.5"), timeout=60, what="the shoot ended")

    r = node.cli("shoot", "w", "--", "seed-probe", "alloc", "2048", timeout=180)
    assert r.returncode == 137, (r.returncode, r.stdout[-500:], r.stderr[-500:])
    progress = [int(m) for m in re.findall(r'"mib":(\d+)', r.stdout)]
    assert max(progress, default=0) < 512
    assert keyed(shoots, "memory.events")["oom_kill"] >= 1   # counted below ...-shoots
    assert keyed(inst, "memory.events")["oom_kill"] == 0      # not in the instance
    assert node.cli("shoot", "w", "--", "echo", "still-fine", timeout=60).stdout == "still-fine\n"
    assert node.ps()["w"]["state"] == "running"


def test_restart_gets_a_fresh_cgroup_with_the_limits(node):
    before = node.ps()["web"]["pid"]
    r = node.cli("restart", "web", timeout=120)
    assert r.returncode == 0, r.stderr
    ps = node.wait_running("web", timeout=120)
    assert ps["web"]["pid"] != before
    cg = cgroup_of(node, "web")
    assert proc_cgroup(ps["web"]["pid"]) == "/" + str(cg.relative_to(CGROOT))
    assert limits(cg) == XS
    # reachable again at once (stable MAC, announced): not after ARP entries expire
    assert node.wait(lambda: node.http(8080), timeout=15, what="web answering after restart")


def test_nothing_left_after_stop(node):
    state = str(node.state)
    assert node.stop() == 0
    assert "node stopped" in node.output()
    top = CGROOT / "seed"
    left = sorted(str(p) for p in top.rglob("*") if p.is_dir()) if top.exists() else []
    if os.environ.get("SEED_VM"):   # the guest runs no other node
        assert not top.exists(), left
    else:
        assert not [p for p in left if node.cgroup_id() in p], left
    assert host_pids_with_uid_at_least(ID_BASE) == []
    assert state not in run(["losetup", "-a"]).stdout
    assert state not in run(["findmnt", "-rn"]).stdout
    links = run(["ip", "-n", node.netns, "-o", "link"]).stdout
    assert [l.split(":")[1].strip() for l in links.splitlines()] == ["lo"]


def test_next_node_removes_the_cgroups_of_a_killed_one():
    # with shoots: their cgroups nest (a-shoots/sN), and a leftover tree is removed whole
    n = Node(make_project({"a": {"root": "rootfs", "size": "xs", "shoot": {"enable": True},
                                 "processes": {"idle": idle()}}}))
    try:
        n.wait_running("a", timeout=120)
        cg = cgroup_of(n, "a")
        shoots = cg.with_name(cg.name + "-shoots")
        n.wait(lambda: list(shoots.glob("s*")), timeout=120, what="warm shoot cgroups")
        n.stop(sig=signal.SIGKILL)
        # The sandboxes die with the node (in a moment); their empty cgroups stay.
        end = time.time() + 30
        while keyed(cg, "cgroup.events")["populated"] and time.time() < end:
            time.sleep(0.1)
        assert keyed(cg, "cgroup.events")["populated"] == 0
        n.start()
        n.wait_running("a", timeout=120)
        assert re.search(r"removed \d+ cgroups left by a previous node", n.output())
        assert limits(cgroup_of(n, "a")) == XS
        assert n.stop() == 0
        assert not (CGROOT / "seed" / n.cgroup_id()).exists()
    finally:
        n.stop()
        remove_leftover_cgroups(n)
        n.close()
        remove_workdirs()


def test_seedd_instances_outlive_the_daemon_on_cgroup_v2():
    """seedd's instances keep their unified-hierarchy cgroups and limits while no daemon
    runs; the next seedd adopts them (same PID), and seed down leaves nothing."""
    from seedtest import Daemon
    proj = make_project({"web": PROJECT["web"]})
    d = Daemon(webhook=False)
    try:
        r = d.cli("source", "add", "app", str(proj), timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        d.wait(lambda: d.http(8080), timeout=60, what="web answering")
        pid = d.ps()["web"]["pid"]
        cg = CGROOT / "seed" / d.cgroup_id()
        web = [p for p in cg.iterdir() if p.name.endswith("-web")]
        assert len(web) == 1 and limits(web[0]) == XS
        d.stop(signal.SIGTERM)
        assert d.http(8080) == "hello from cgroup v2\n"      # no daemon: still answering
        assert keyed(web[0], "cgroup.events")["populated"] == 1
        d.start()
        d.wait(lambda: (d.ps() or {}).get("web", {}).get("state") == "running", 60, "adopted")
        assert d.ps()["web"]["pid"] == pid
        assert limits(web[0]) == XS
        assert d.cli("down", timeout=120).returncode == 0
        d.proc.wait(30)
        assert not cg.exists(), sorted(str(p) for p in cg.rglob("*") if p.is_dir())
    finally:
        d.close()
        remove_workdirs()
