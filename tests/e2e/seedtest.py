"""Helpers for end-to-end tests that run a node.

Every node runs inside a network namespace the test creates (`ip netns add`), entered
with `nsenter --net=` (not `ip netns exec`, which remounts /sys and hides the cgroup
hierarchies). Nothing is added to the host's own network namespace. Projects and
state live under a world-traversable temporary directory, because sandboxes run as
unprivileged uids and must be able to read a project's root directory.
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("SEED_BUILD", ROOT / "build"))
SEED = str(BUILD / "src" / "seed")
PROBE = str(BUILD / "tests" / "probe" / "seed-probe")
BUSYBOX = shutil.which("busybox") or "/bin/busybox"

ID_BASE = 0x70000000
EXAMPLES_HELLO = ROOT / "examples" / "hello"

BUSYBOX_APPLETS = ["sh", "cat", "ls", "echo", "sleep", "wget", "nc", "touch", "mkdir", "rm", "printf",
                   "sync", "head", "id", "env", "true", "false", "test", "httpd", "grep", "dd", "kill",
                   "trap", "ps", "hostname", "nslookup"]


CREATED = []   # directories to remove after the test (see conftest.py)


def workdir():
    """A fresh directory that sandboxed uids can traverse. Its name is lower-case hex, so
    a path below it is a valid image reference too (podman names an oci: image by its
    path, and mkdtemp's '_' would break that)."""
    while True:
        d = pathlib.Path("/tmp") / f"seed-e2e-{uuid.uuid4().hex[:12]}"
        try:
            d.mkdir(mode=0o700)
            break
        except FileExistsError:
            continue
    d.chmod(0o755)
    CREATED.append(d)
    return d


def remove_workdirs():
    while CREATED:
        shutil.rmtree(CREATED.pop(), ignore_errors=True)


def make_rootfs(path):
    """A minimal root: busybox (static) with its applets, seed-probe, accounts."""
    b = path / "bin"
    b.mkdir(parents=True)
    shutil.copy2(BUSYBOX, b / "busybox")
    for applet in BUSYBOX_APPLETS:
        (b / applet).symlink_to("busybox")
    shutil.copy2(PROBE, b / "seed-probe")
    etc = path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                "app:x:1000:1000:app:/home/app:/bin/sh\n"
                                "nobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\napp:x:1000:\nstaff:x:50:app\nnobody:x:65534:\n")
    for p in [path, b, etc]:
        p.chmod(0o755)


def make_project(spec, rootfs=True):
    """Write a project (seeds.json plus a rootfs/ directory) and return its path."""
    d = workdir()
    proj = d / "project"
    proj.mkdir()
    proj.chmod(0o755)
    if rootfs:
        make_rootfs(proj / "rootfs")
    (proj / "seeds.json").write_text(json.dumps(spec, indent=1))
    (proj / "seeds.json").chmod(0o644)
    return proj


def run(cmd, timeout=60, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)



GIT_ENV = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1")
GIT_ENV.pop("GIT_SSH_COMMAND", None)


def git(*args, cwd=None):
    r = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@seed.invalid",
                        "-c", "init.defaultBranch=main", *args],
                       cwd=cwd, env=GIT_ENV, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"git {args}: {r.stderr}"
    return r.stdout.strip()


class GitRepo:
    """A bare repository (HEAD -> refs/heads/main) and a work tree that pushes to it."""

    def __init__(self):
        self.top = workdir()
        self.bare = self.top / "remote.git"
        self.work = self.top / "work"
        git("init", "-q", "--bare", str(self.bare))
        git("symbolic-ref", "HEAD", "refs/heads/main", cwd=self.bare)
        git("init", "-q", str(self.work))
        git("remote", "add", "origin", str(self.bare), cwd=self.work)

    def commit_files(self, files, msg="change"):
        """Write files ({name: text or (text, mode)}) and commit them; the new commit id."""
        for name, content in files.items():
            p = self.work / name
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, tuple):
                p.write_text(content[0])
                p.chmod(content[1])
            else:
                p.write_text(content)
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "--allow-empty", "-m", msg, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def push(self, *refs, force=False):
        git("push", "-q", *(["--force"] if force else []), "origin", *(refs or ["HEAD:main"]), cwd=self.work)


def last_probe(logs, kind):
    """The last JSON line of a probe kind (tests/probe) in an instance's log text."""
    found = None
    for line in logs.splitlines():
        i = line.find(": {")
        if i < 0:
            continue
        try:
            j = json.loads(line[i + 2:])
        except ValueError:
            continue
        if j.get("probe") == kind:
            found = j
    return found


class Waiting:
    """wait(), wait_running() and stop() of a node process (Node, Daemon)."""

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signal it and wait (SIGKILL after timeout); its exit status."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log:
            self.log.close()
            self.log = None
        return self.proc.returncode if self.proc else None

    def exited(self):
        """Why the process is gone (a message), or None while it runs."""
        return None if self.proc.poll() is None else f"{self.what} exited ({self.proc.returncode})"

    def wait(self, pred, timeout=20, what="condition", daemon=True):
        end = time.time() + timeout
        last = None
        while time.time() < end:
            gone = self.exited() if daemon else None
            if gone:
                raise AssertionError(f"{gone}:\n{self.output()}")
            last = pred()
            if last:
                return last
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what} (last: {last!r})\n{self.output()}")

    def wait_running(self, *names, timeout=20):
        def ok():
            ps = self.ps()
            return ps if ps and all(ps.get(n, {}).get("state") == "running" for n in names) else None
        return self.wait(ok, timeout, f"{names} running")

class Node(Waiting):
    """A `seed up` in a network namespace of its own."""

    what = "node"

    def __init__(self, project, *args, state=None):
        self.netns = "seedt-" + uuid.uuid4().hex[:8]
        run(["ip", "netns", "add", self.netns]).check_returncode()
        run(["ip", "-n", self.netns, "link", "set", "lo", "up"]).check_returncode()
        self.work = workdir()
        self.state = state or (self.work / "state")
        self.project = project
        self.args = list(args)
        self.proc = None
        self.log_path = self.work / "node.log"
        self.start()

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.netns}", SEED, "up", str(self.project),
             "--state-dir", str(self.state), *self.args],
            stdout=self.log, stderr=subprocess.STDOUT)

    def output(self):
        return self.log_path.read_text()

    def cli(self, *args, timeout=60):
        return run([SEED, "--state-dir", str(self.state), *args], timeout=timeout)

    def ps(self):
        r = self.cli("ps", "--json")
        if r.returncode != 0:
            return None
        return {i["name"]: i for i in json.loads(r.stdout)}

    def logs(self, name, *args):
        """The instance's log ("" while the node is not answering yet)."""
        r = self.cli("logs", name, *args)
        return r.stdout if r.returncode == 0 else ""

    def wait_log(self, name, needle, timeout=20):
        return self.wait(lambda: needle in self.logs(name) and self.logs(name), timeout,
                         f"{needle!r} in the logs of {name}")

    def probe_json(self, name, kind, timeout=20):
        """The last JSON line of the given probe kind in an instance's logs."""
        return self.wait(lambda: last_probe(self.logs(name), kind), timeout, f"{kind} probe output of {name}")

    def netns_run(self, *cmd, timeout=30):
        return run(["nsenter", f"--net=/run/netns/{self.netns}", *cmd], timeout=timeout)

    def http(self, port, path="/", timeout=5):
        r = self.netns_run("curl", "-s", "-m", str(timeout), f"http://127.0.0.1:{port}{path}",
                           timeout=timeout + 5)
        return r.stdout if r.returncode == 0 else None


    def close(self):
        self.stop()
        run(["ip", "netns", "del", self.netns])
        # A node killed with SIGKILL leaves empty cgroup directories behind for the
        # next node to remove; no next node comes, so remove them here.
        for d in self.cgroup_dirs():
            # deepest first (an instance's shoots are in <instance>-shoots/sN)
            for child in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                child.rmdir()
            if d.exists():
                d.rmdir()
            try:
                d.parent.rmdir()   # /seed, when no other node uses it
            except OSError:
                pass
        shutil.rmtree(self.work, ignore_errors=True)

    def cgroup_id(self):
        import hashlib
        return hashlib.sha256(os.path.realpath(self.state).encode()).hexdigest()[:12]

    def cgroup_dirs(self):
        cid = self.cgroup_id()
        dirs = [pathlib.Path("/sys/fs/cgroup", c, "seed", cid) for c in ("memory", "cpu", "pids")]
        dirs.append(pathlib.Path("/sys/fs/cgroup/seed", cid))
        return [d for d in dirs if d.exists()]


def host_pids_with_uid_at_least(base):
    """PIDs of processes on the host running as a uid in the sandbox range."""
    pids = []
    for p in pathlib.Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            for line in (p / "status").read_text().splitlines():
                if line.startswith("Uid:") and int(line.split()[1]) >= base:
                    pids.append(int(p.name))
        except (OSError, ValueError):
            pass
    return pids


SEEDD = str(BUILD / "src" / "seedd")
HTTP_POLL = str(ROOT / "tests" / "e2e" / "http_poll.py")


class Daemon(Waiting):
    """A `seedd` in a network namespace of its own (the same approach as Node).

    close() stops it with `seed down` (instances may outlive the daemon), then kills
    whatever is left in its cgroups, detaches loop devices and unmounts anything under
    its work directory, and removes its cgroups and the namespace."""

    def __init__(self, *args, webhook=True, state=None):
        self.netns = "seedt-" + uuid.uuid4().hex[:8]
        run(["ip", "netns", "add", self.netns]).check_returncode()
        run(["ip", "-n", self.netns, "link", "set", "lo", "up"]).check_returncode()
        self.work = workdir()
        self.state = state or (self.work / "state")
        self.webhook_port = 9000 if webhook else None
        self.args = list(args) + (["--webhook", f"127.0.0.1:{self.webhook_port}"] if webhook else [])
        self.proc = None
        self.log = None
        self.log_path = self.work / "seedd.log"
        self.start()

    def start(self, wait=True):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.netns}", SEEDD, "--state-dir", str(self.state), *self.args],
            stdout=self.log, stderr=subprocess.STDOUT)
        if wait:
            self.wait(lambda: self.cli("source", "ls", "--json").returncode == 0, 20, "seedd answering")

    @property
    def pid(self):
        return self.proc.pid

    def output(self):
        return self.log_path.read_text()

    def cli(self, *args, timeout=90):
        return run([SEED, "--state-dir", str(self.state), *args], timeout=timeout)

    def cli_json(self, *args):
        r = self.cli(*args, "--json")
        assert r.returncode == 0, f"seed {' '.join(args)} --json: {r.stdout}{r.stderr}"
        return json.loads(r.stdout)

    def ps_list(self):
        r = self.cli("ps", "--json")
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)

    def ps(self):
        """Instances by name (use ps_list() when two sources have the same name)."""
        lst = self.ps_list()
        return None if lst is None else {i["name"]: i for i in lst}

    def sources(self):
        return {s["name"]: s for s in self.cli_json("source", "ls")}

    def history(self, source=None):
        return self.cli_json("history", *([source] if source else []))

    def events(self, tail=1000):
        r = self.cli("events", "--json", "--tail", str(tail))
        assert r.returncode == 0, r.stdout + r.stderr
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def exited(self):
        return None if self.alive() else f"seedd exited ({self.proc.returncode})"

    def netns_run(self, *cmd, timeout=30, **kw):
        return run(["nsenter", f"--net=/run/netns/{self.netns}", *cmd], timeout=timeout, **kw)

    def http(self, port, path="/", timeout=5):
        r = self.netns_run("curl", "-s", "-f", "-m", str(timeout), f"http://127.0.0.1:{port}{path}",
                           timeout=timeout + 5)
        return r.stdout if r.returncode == 0 else None

    def webhook(self, source, body, headers=None, timeout=10):
        """POST body (bytes or str) to /webhook/<source> with curl inside the namespace:
        (status, answer text, seconds taken)."""
        if isinstance(body, str):
            body = body.encode()
        f = self.work / f"body-{uuid.uuid4().hex[:8]}"
        f.write_bytes(body)
        cmd = ["curl", "-s", "-m", str(timeout), "-o", "-", "-w", "\n%{http_code} %{time_total}",
               "-X", "POST", "--data-binary", f"@{f}"]
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        for k, v in hdrs.items():
            cmd += ["-H", f"{k}: {v}"]
        cmd.append(f"http://127.0.0.1:{self.webhook_port}/webhook/{source}")
        r = self.netns_run(*cmd, timeout=timeout + 5)
        f.unlink()
        text, _, tail = r.stdout.rpartition("\n")
        code, took = tail.split()
        return int(code), text, float(took)

    def poller(self, port, interval=0.01):
        """Start tests/e2e/http_poll.py in the namespace: GET / every interval; stop()
        returns its counts."""
        return Poller(self, port, interval)

        return self.proc.returncode

    def cgroup_id(self):
        import hashlib
        return hashlib.sha256(os.path.realpath(self.state).encode()).hexdigest()[:12]

    def cgroup_dirs(self):
        cid = self.cgroup_id()
        dirs = [pathlib.Path("/sys/fs/cgroup", c, "seed", cid) for c in ("memory", "cpu", "pids", "freezer")]
        dirs.append(pathlib.Path("/sys/fs/cgroup/seed", cid))
        return [d for d in dirs if d.exists()]

    def cgroup_procs(self):
        pids = set()
        for d in self.cgroup_dirs():
            for f in d.rglob("cgroup.procs"):
                try:
                    pids.update(int(x) for x in f.read_text().split())
                except OSError:
                    pass
        return pids

    def loop_devices(self):
        """Loop devices whose backing file lies under this daemon's state directory."""
        r = run(["losetup", "-J", "-l"])
        if r.returncode != 0 or not r.stdout.strip():
            return []
        state = os.path.realpath(self.state)
        return [d["name"] for d in json.loads(r.stdout).get("loopdevices", [])
                if (d.get("back-file") or "").split(" (deleted)")[0].startswith(state)]

    def host_mounts(self):
        """Mount points under the work directory in the host's mount namespace."""
        work = os.path.realpath(self.work)
        out = []
        for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines():
            mp = line.split()[4]
            if mp == work or mp.startswith(work + "/"):
                out.append(mp)
        return out

    def close(self):
        if self.alive():
            self.cli("down", timeout=60)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        self.stop()
        # Whatever outlived the daemon (instances adopted by none) goes now, by PID.
        for _ in range(50):
            pids = self.cgroup_procs()
            if not pids:
                break
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        for mp in sorted(self.host_mounts(), key=len, reverse=True):
            run(["umount", "-l", mp])
        for dev in self.loop_devices():
            run(["losetup", "-d", dev])
        run(["ip", "netns", "del", self.netns])
        for d in self.cgroup_dirs():
            for child in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                try:
                    child.rmdir()
                except OSError:
                    pass
            try:
                d.rmdir()
                d.parent.rmdir()   # /seed, when no other node uses it
            except OSError:
                pass
        shutil.rmtree(self.work, ignore_errors=True)


class Poller:
    """An HTTP client in a daemon's namespace sending GET / to a port every interval
    (tests/e2e/http_poll.py); stop() ends it and returns its JSON report:
    ok, failed, errors (the first few), bodies (distinct answers in order)."""

    def __init__(self, daemon, port, interval):
        self.out = daemon.work / f"poll-{port}-{uuid.uuid4().hex[:6]}.json"
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{daemon.netns}", "/usr/bin/python3", HTTP_POLL,
             str(port), str(interval), str(self.out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        end = time.time() + 10
        while not self.out.exists() and time.time() < end:
            time.sleep(0.02)

    def snapshot(self):
        try:
            return json.loads(self.out.read_text())
        except (OSError, ValueError):
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        err = self.proc.stderr.read().decode()
        self.proc.stderr.close()
        rep = self.snapshot()
        assert rep is not None, f"poller wrote no report: {err}"
        return rep


# ---- Nix (Debian's nix-bin): busybox as the builder of test derivations, and the store
# left as the tests found it ----

def nix_busybox(d):
    """d/bb/bin/{busybox,sh}: what test derivations take as builtins.path { path = ./bb; }."""
    b = d / "bb" / "bin"
    b.mkdir(parents=True, exist_ok=True)
    if not (b / "busybox").exists():
        shutil.copy(BUSYBOX, b / "busybox")
        (b / "sh").symlink_to("busybox")


def nix_store_paths():
    """The names in /nix/store now (empty when there is no store)."""
    store = pathlib.Path("/nix/store")
    return set(os.listdir(store)) if store.is_dir() else set()


def nix_store_forget(before):
    """Delete the store paths added since `before` (nix_store_paths()), one at a time:
    nix-store --delete refuses a whole set when one path is still needed, and a path a
    running process uses stays until it ends."""
    left = {f"/nix/store/{p}" for p in nix_store_paths() - before if p != ".links"}
    while left:
        gone = {p for p in sorted(left)
                if subprocess.run(["nix-store", "--delete", p], capture_output=True).returncode == 0}
        if not gone:
            break
        left -= gone
