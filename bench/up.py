#!/usr/bin/python3
"""Benchmark: starting an instance and what it costs to keep one, seed against crun.

Both run the same workload from the same root (busybox httpd serving a page, on a
static busybox rootfs), in one run, inside a network namespace this script creates.

1. Start to answering: from launching the runtime to the first HTTP 200.
   - seed: `seed up` (evaluate, state, namespaces, bridge, proxy, sandbox, init) until
     the exposed port answers through the node's proxy on 127.0.0.1.
   - crun: `crun run -d` (user, mount, PID, IPC, UTS namespaces; it shares the bench's
     network namespace, so it does less: no network setup, no proxy) until the port
     answers.
2. Start to a running process: seed's own measure of building the sandbox and
   exec'ing the init (the node logs it), against the time `crun run -d` takes.
3. Memory per instance, with K idle instances (`sleep`) each:
   - seed: the init's PSS, the node's RSS growth per instance, and the memory charged
     to each instance's cgroup;
   - crun: the runtime keeps no process per container (0 bytes), and the memory
     charged to each container's cgroup.

crun rejects this host's hybrid cgroup layout, so it runs in a private mount namespace
where /sys/fs/cgroup/unified is masked. Medians over --runs. Goals (issue #3): under
50 ms to a running process, under 2 MB of runtime memory per instance.

Usage: bench/up.py [--seed PATH] [--runs N] [--instances K]
"""
import argparse
import json
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from common import ROOT, Netns, masked_cgroup2, oci_bundle, sh

PORT = 8080


def make_rootfs(path):
    (path / "bin").mkdir(parents=True)
    shutil.copy2(shutil.which("busybox") or "/bin/busybox", path / "bin" / "busybox")
    for a in ("sh", "httpd", "sleep"):
        (path / "bin" / a).symlink_to("busybox")
    for d in ("www", "proc", "dev", "sys", "tmp", "etc", "run"):
        (path / d).mkdir()
    (path / "www" / "index.html").write_text("hello\n")
    (path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    for p in [path] + [p for p in path.rglob("*") if p.is_dir()]:
        p.chmod(0o755)


def wait_http(timeout=10):
    """A Python program that polls 127.0.0.1:PORT until HTTP 200 and prints when it
    answered (run it inside the benchmark's network namespace)."""
    code = ("import socket,time,sys\n"
            f"end=time.time()+{timeout}\n"
            "while time.time()<end:\n"
            "  try:\n"
            f"    s=socket.create_connection(('127.0.0.1',{PORT}),timeout=1)\n"
            "    s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n"
            "    if s.recv(64)[9:12] == b'200':\n"
            "      print(time.time()); sys.exit(0)\n"
            "  except OSError: pass\n"
            "  time.sleep(0.001)\n"
            "sys.exit(1)\n")
    return code


def pss_kb(pid):
    try:
        for line in pathlib.Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kb(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children(pid):
    out = []
    for p in pathlib.Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                st = (p / "stat").read_text()
                if int(st.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(p.name))
            except (OSError, ValueError, IndexError):
                pass
    return out


# ---- seed ----

def seed_project(work, k, expose):
    proj = work / "proj"
    proj.mkdir()
    make_rootfs(proj / "rootfs")
    seeds = {}
    for i in range(k):
        inst = {"root": "rootfs", "size": "xs"}
        if expose and i == 0:
            inst["expose"] = {"http": PORT}
            inst["processes"] = {"httpd": {"command": ["httpd", "-f", "-p", str(PORT), "-h", "/www"]}}
        else:
            inst["processes"] = {"idle": {"command": ["sleep", "100000"]}}
        seeds[f"i{i}"] = inst
    (proj / "seeds.json").write_text(json.dumps(seeds))
    for p in (work, proj):
        p.chmod(0o755)
    return proj


def seed_start_once(seed, netns, work):
    proj = seed_project(work, 1, True)
    state = work / "state"
    waiter = subprocess.Popen(netns.cmd(sys.executable, "-c", wait_http()), stdout=subprocess.PIPE, text=True)
    t0 = time.time()
    node = subprocess.Popen(netns.cmd(seed, "up", str(proj), "--state-dir", str(state)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = waiter.communicate(timeout=30)
    answered = float(out) if waiter.returncode == 0 else None
    node.terminate()
    log, _ = node.communicate(timeout=30)
    m = re.search(r"started in ([\d.]+) ms", log)
    if answered is None or not m:
        raise SystemExit(f"seed did not answer:\n{log}")
    return (answered - t0) * 1000, float(m.group(1))


def seed_memory(seed, netns, work, k):
    """Node RSS with 1 and with k idle instances; init PSS; cgroup charge per instance."""
    res = {}
    for count in (1, k):
        w = work / f"mem{count}"
        w.mkdir()
        proj = seed_project(w, count, False)
        node = subprocess.Popen(netns.cmd(seed, "up", str(proj), "--state-dir", str(w / "state")),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.time() + 30
            while True:
                r = sh(seed, "--state-dir", str(w / "state"), "ps", "--json", check=False)
                if r.returncode == 0 and all(i["state"] == "running" for i in json.loads(r.stdout)) \
                        and len(json.loads(r.stdout)) == count:
                    break
                if time.time() > deadline:
                    raise SystemExit("seed instances did not start")
                time.sleep(0.05)
            time.sleep(0.5)
            inits = [c for c in children(node.pid)
                     if pathlib.Path(f"/proc/{c}/comm").read_text().strip() == "seed-init"]
            cg = [int(p.read_text()) for p in pathlib.Path("/sys/fs/cgroup/memory/seed").glob(
                  "*/*/memory.usage_in_bytes")]
            res[count] = {"node_rss_kb": rss_kb(node.pid), "init_pss_kb": [pss_kb(p) for p in inits],
                          "init_rss_kb": [rss_kb(p) for p in inits], "cgroup_bytes": cg}
        finally:
            node.terminate()
            node.communicate(timeout=60)
    return res


# ---- crun ----

def crun_bundle(work, rootfs, idx, command):
    # crun shares the bench's network namespace: the port answers on its loopback
    return oci_bundle(work / f"bundle{idx}", rootfs, command, own_network=False, memory=512 << 20,
                      cgroups_path=f"/seed-bench/crun{idx}")


CRUN_ROOT = None   # crun's state directory, inside the bench's work directory


def crun_cmd(netns, *args):
    assert args[0] == "crun"
    return netns.cmd(*masked_cgroup2("crun", "--root", str(CRUN_ROOT), *args[1:]))


def crun_start_once(netns, work, rootfs, idx):
    b = crun_bundle(work, rootfs, idx, ["httpd", "-f", "-p", str(PORT), "-h", "/www"])
    name = f"seedbench{idx}"
    waiter = subprocess.Popen(netns.cmd(sys.executable, "-c", wait_http()), stdout=subprocess.PIPE, text=True)
    t0 = time.time()
    # The container inherits crun's stdio: never a pipe we would wait on forever.
    r = subprocess.run(crun_cmd(netns, "crun", "run", "-d", "-b", str(b), name), stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.time()
    out, _ = waiter.communicate(timeout=30)
    subprocess.run(crun_cmd(netns, "crun", "delete", "-f", name), capture_output=True)
    if r.returncode != 0 or waiter.returncode != 0:
        raise SystemExit(f"crun failed (exit {r.returncode})")
    return (float(out) - t0) * 1000, (started - t0) * 1000


def crun_memory(netns, work, rootfs, k):
    names = []
    for i in range(k):
        b = crun_bundle(work, rootfs, 1000 + i, ["sleep", "100000"])
        name = f"seedbenchm{i}"
        subprocess.run(crun_cmd(netns, "crun", "run", "-d", "-b", str(b), name), check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        names.append(name)
    time.sleep(0.5)
    cg = [int(p.read_text()) for p in pathlib.Path("/sys/fs/cgroup/memory/seed-bench").glob(
          "crun1*/memory.usage_in_bytes")]
    for n in names:
        subprocess.run(crun_cmd(netns, "crun", "delete", "-f", n), capture_output=True)
    return {"cgroup_bytes": cg}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", default=str(ROOT / "build" / "src" / "seed"))
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--instances", type=int, default=10)
    a = ap.parse_args()
    if not shutil.which("crun"):
        sh("apt-get", "install", "-y", "-qq", "crun")
    work = pathlib.Path(tempfile.mkdtemp(prefix="seed-bench-up.", dir="/tmp"))
    work.chmod(0o755)
    global CRUN_ROOT
    CRUN_ROOT = work / "crun-state"
    netns = Netns()
    try:
        rootfs = work / "rootfs"
        make_rootfs(rootfs)
        seed_answer, seed_proc, crun_answer, crun_proc = [], [], [], []
        for i in range(a.runs):
            w = work / f"seed{i}"
            w.mkdir()
            t_ans, t_proc = seed_start_once(a.seed, netns, w)
            seed_answer.append(t_ans)
            seed_proc.append(t_proc)
            t_ans, t_proc = crun_start_once(netns, work, rootfs, i)
            crun_answer.append(t_ans)
            crun_proc.append(t_proc)
        med = statistics.median
        print(f"start, median of {a.runs} (ms)           seed      crun    seed/crun")
        print(f"  launch to HTTP 200 on 127.0.0.1:{PORT}   {med(seed_answer):7.1f}   {med(crun_answer):7.1f}"
              f"    {med(seed_answer) / med(crun_answer):5.2f}x")
        print(f"  to a running process (sandbox+exec)    {med(seed_proc):7.1f}   {med(crun_proc):7.1f}"
              f"    {med(seed_proc) / med(crun_proc):5.2f}x   (goal < 50 ms: "
              f"{'met' if med(seed_proc) < 50 else 'NOT met'})")
        print("  (seed's launch includes evaluating the project, its state database, its network namespace,\n"
              "   bridge, veth, inbound filter and port proxy; crun shares the caller's network namespace)")

        k = a.instances
        sm = seed_memory(a.seed, netns, work, k)
        cm = crun_memory(netns, work, rootfs, k)
        growth = (sm[k]["node_rss_kb"] - sm[1]["node_rss_kb"]) / (k - 1)
        init_pss = med(sm[k]["init_pss_kb"])
        init_rss = med(sm[k]["init_rss_kb"])
        seed_cg = med(sm[k]["cgroup_bytes"]) / 1024 if sm[k]["cgroup_bytes"] else float("nan")
        crun_cg = med(cm["cgroup_bytes"]) / 1024 if cm["cgroup_bytes"] else float("nan")
        runtime = init_pss + max(growth, 0)
        print(f"\nmemory per instance, {k} idle instances (KiB)   seed      crun")
        print(f"  runtime process in the instance (PSS)    {init_pss:8.0f}         0   (crun leaves none; "
              f"seed-init RSS {init_rss:.0f})")
        print(f"  node/runtime growth per instance (RSS)   {growth:8.0f}         0")
        print(f"  runtime total                            {runtime:8.0f}         0   (goal < 2048: "
              f"{'met' if runtime < 2048 else 'NOT met'})")
        print(f"  charged to the instance's cgroup         {seed_cg:8.0f}  {crun_cg:8.0f}   "
              f"ratio {seed_cg / crun_cg:4.2f}x")
    finally:
        netns.close()
        for top in pathlib.Path("/sys/fs/cgroup").glob("*/seed-bench"):
            for d in top.iterdir():
                if d.is_dir():
                    d.rmdir()
            top.rmdir()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
