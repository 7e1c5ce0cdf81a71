#!/usr/bin/python3
"""Benchmark: a trivial command (`true`) in a fresh sandbox, again and again — seed's
shoots against bubblewrap, crun and runc doing the same work, in one run, on this
machine.

All run the same dynamically linked /bin/true from the same small root (a copy of
the host's `true` with its libc and loader).
- seed: a shoot-enabled instance on that root runs `shootload` (bench/shootload.c),
  which sends POST /shoot {"command":["true"]} over keep-alive connections from C
  client threads; each round trip is timed. A shoot is a fresh user, mount, PID,
  network (lo only), IPC and UTS namespace with its own cgroup, seccomp filter and
  dropped capabilities, plus the HTTP request and reply.
- bwrap --unshare-all (user, IPC, PID, network, UTS, cgroup), crun run and runc run
  (user, mount, PID, IPC, UTS, network, cgroup namespaces, cgroup limits; they run in
  a private mount namespace that masks /sys/fs/cgroup/unified, because they refuse
  this host's hybrid cgroup layout), each started by `spawnload` (bench/spawnload.c:
  posix_spawn + waitpid from C threads).
- fork+exec of the same `true`, and `unshare` with the same namespaces, for scale.
Sequential (1 client), 8 and 64 concurrent clients; p50/p99 latency and throughput,
and each peer's ratio to seed. Goals (issue #4): p50 <= 1.5 ms and p99 <= 5 ms at
one client, >= 900 shoots/s with 8 clients.

Usage: bench/shoot.py [--seed PATH] [--n N] [--peer-n N]
"""
import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import time

from common import ROOT, Netns, masked_cgroup2, oci_bundle, sh


def make_root(path, shootload):
    for d in ("bin", "lib64", "lib/x86_64-linux-gnu", "proc", "dev", "sys", "tmp", "etc", "run", "usr"):
        (path / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/usr/bin/true", path / "bin" / "true")
    for lib in ("/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"):
        shutil.copy2(lib, path / lib.lstrip("/"))
    shutil.copy2(shootload, path / "bin" / "shootload")
    shutil.copy2(shutil.which("busybox") or "/bin/busybox", path / "bin" / "busybox")
    for a in ("sh", "sleep", "cat"):
        (path / "bin" / a).symlink_to("busybox")
    (path / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    for p in [path] + [p for p in path.rglob("*") if p.is_dir() and not p.is_symlink()]:
        p.chmod(0o755)


def seed_runs(seed, work, rootfs, n, netns):
    proj = work / "proj"
    proj.mkdir()
    proj.chmod(0o755)
    shutil.copytree(rootfs, proj / "rootfs", symlinks=True)
    script = (f"shootload 1000 8 > /dev/null; shootload {n} 1; shootload {2 * n} 8; shootload {2 * n} 64; "
              "echo bench-done; exec sleep 100000")
    (proj / "seeds.json").write_text(json.dumps({"bench": {
        "root": "rootfs", "shoot": {"enable": True, "max": 64},  # as many as the most concurrent clients
        "processes": {"load": {"command": ["sh", "-c", script], "restart": "no"}}}}))
    state = work / "state"
    node = subprocess.Popen(netns.cmd(seed, "up", str(proj), "--state-dir", str(state)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        while time.time() < deadline:
            r = sh(seed, "--state-dir", str(state), "logs", "bench", check=False)
            if "bench-done" in r.stdout:
                return [json.loads(m) for m in re.findall(r'load: (\{"probe":"shootload".*\})', r.stdout)]
            if node.poll() is not None:
                raise SystemExit("seed up exited")
            time.sleep(0.5)
        raise SystemExit("seed bench timed out")
    finally:
        node.terminate()
        node.wait(60)


def peer(spawnload, n, c, cmd, netns=None, private_cgroup=False):
    argv = [spawnload, str(n), str(c), *cmd]
    if private_cgroup:
        argv = masked_cgroup2(*argv)
    if netns:
        argv = netns.cmd(*argv)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise SystemExit(f"{cmd[0]} load failed: {r.stderr[-500:]}")
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", default=str(ROOT / "build" / "src" / "seed"))
    ap.add_argument("--n", type=int, default=3000, help="sequential shoots (twice as many concurrent)")
    ap.add_argument("--peer-n", type=int, default=400, help="sequential runs of each peer")
    a = ap.parse_args()
    build = pathlib.Path(a.seed).resolve().parents[1]
    shootload, spawnload = build / "bench" / "shootload", build / "bench" / "spawnload"
    for tool, pkg in (("bwrap", "bubblewrap"), ("crun", "crun"), ("runc", "runc")):
        if not shutil.which(tool):
            sh("apt-get", "install", "-y", "-qq", pkg)
    work = pathlib.Path(tempfile.mkdtemp(prefix="seed-bench-shoot.", dir="/tmp"))
    work.chmod(0o755)
    netns = Netns()
    try:
        rootfs = work / "rootfs"
        make_root(rootfs, shootload)
        bundle = oci_bundle(work / "bundle", rootfs, ["/bin/true"])
        rows = {}
        for r in seed_runs(a.seed, work, rootfs, a.n, netns):
            rows[("seed", r["clients"])] = r
        N = a.peer_n
        true = str(rootfs / "bin" / "true")
        bw = ["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", str(rootfs), "/", "--proc", "/proc",
              "--dev", "/dev", "--tmpfs", "/tmp", "/bin/true"]
        uns = ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "--net", "--ipc", "--uts",
               "--cgroup", true]
        crun = ["crun", "--root", str(work / "crun"), "run", "--bundle", str(bundle), "crun{}"]
        runc = ["runc", "--root", str(work / "runc"), "run", "--bundle", str(bundle), "runc{}"]
        for c in (1, 8, 64):
            n = N if c == 1 else 2 * N
            rows[("fork+exec", c)] = peer(spawnload, n * 4, c, [true])
            rows[("unshare", c)] = peer(spawnload, n, c, uns)
            rows[("bwrap", c)] = peer(spawnload, n, c, bw)
            rows[("crun", c)] = peer(spawnload, n, c, crun, netns, private_cgroup=True)
            rows[("runc", c)] = peer(spawnload, n // 2, c, runc, netns, private_cgroup=True)

        print(f"`true` in a fresh sandbox; {os.cpu_count()} CPUs; medians of one run each\n")
        print(f"{'':11}{'clients':>8}{'p50 ms':>9}{'p99 ms':>9}{'per s':>9}   {'seed faster (p50)':>17}"
              f"{'seed more per s':>17}")
        for c in (1, 8, 64):
            s = rows[("seed", c)]
            for tool in ("seed", "fork+exec", "unshare", "bwrap", "crun", "runc"):
                r = rows[(tool, c)]
                lat = "" if tool == "seed" else f"{r['p50_ms'] / s['p50_ms']:16.2f}x"
                thr = "" if tool == "seed" else f"{s['per_s'] / r['per_s']:16.2f}x"
                err = f"  ({r['errors']} errors)" if r["errors"] else ""
                print(f"{tool:11}{c:8}{r['p50_ms']:9.3f}{r['p99_ms']:9.3f}{r['per_s']:9.1f}   {lat:>17}{thr:>17}{err}")
            print()
        s1, s8 = rows[("seed", 1)], rows[("seed", 8)]
        print("goals: p50 <= 1.5 ms at one client: %s (%.3f); p99 <= 5 ms: %s (%.3f); >= 900/s with 8 clients: %s (%.0f)"
              % ("met" if s1["p50_ms"] <= 1.5 else "NOT met", s1["p50_ms"], "met" if s1["p99_ms"] <= 5 else "NOT met",
                 s1["p99_ms"], "met" if s8["per_s"] >= 900 else "NOT met", s8["per_s"]))
        bw2 = rows[("bwrap", 8)]["per_s"]
        print(f"seed with 8 clients does {s8['per_s'] / bw2:.1f}x the sandboxes per second of bwrap with 8 loops")
    finally:
        netns.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
