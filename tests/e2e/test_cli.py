"""The `seed` command line as docker, podman and systemd users type it: options after
arguments, SEED_STATE_DIR, --help for every verb, --tail 0, several names and -t for
stop/start/restart, timestamped node log lines, "seed needs root" for other users, a
warning for tiers larger than the machine, --json listings, --version, the bash
completion and `make install`. Nodes run in network namespaces these tests create."""
import datetime
import json
import os
import re
import shlex
import shutil
import subprocess
import time

import pytest

from seedtest import BUILD, ROOT, SEED, Node, make_project, run, workdir

pytestmark = pytest.mark.timeout(180)

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
COMPLETION = ROOT / "completions" / "seed.bash"
VERBS = ["eval", "up", "ps", "logs", "stop", "start", "restart", "volume", "shoot",
         "exec", "apply", "source", "history", "rollback", "events", "down", "image"]


def idle(script="", **extra):
    """An instance (the host's /usr as root) that runs script, then idles."""
    inst = {"root": "host", "processes": {"p": {"command": ["sh", "-c", script + "\nexec sleep 100000"]}}}
    inst.update(extra)
    return inst


def stubborn():
    """An instance whose process ignores SIGTERM: only SIGKILL ends it."""
    return {"root": "host",
            "processes": {"p": {"command": ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]}}}


def seed_cli(*args, env=None, timeout=60):
    e = dict(os.environ)
    e.pop("SEED_STATE_DIR", None)
    e.update(env or {})
    return run([SEED, *args], env=e, timeout=timeout)


# ---- options anywhere ----

def test_options_after_arguments_and_state_dir_anywhere(nodes):
    proj = make_project({"w": idle("echo ready", shoot={"enable": True})}, rootfs=False)
    node = nodes(proj)
    node.wait_running("w")
    st = str(node.state)

    r = seed_cli("ps", "--state-dir", st, "--json")
    assert r.returncode == 0, r.stderr
    assert [i["name"] for i in json.loads(r.stdout)] == ["w"]
    r = seed_cli("ps", f"--state-dir={st}")
    assert r.returncode == 0 and "NAME" in r.stdout, r.stderr
    r = seed_cli("volume", "ls", "--state-dir", st)
    assert r.returncode == 0 and "VOLUME" in r.stdout, r.stderr
    r = seed_cli("logs", "w", "--state-dir", st, "--tail", "1")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1, r.stderr

    node.wait_log("w", "ready")
    follower = subprocess.Popen([SEED, "logs", "w", "--state-dir", st, "-f"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        assert "ready" in "".join(follower.stdout.readline() for _ in range(2))
        time.sleep(0.5)
        assert follower.poll() is None, follower.stderr.read()   # following, not done
    finally:
        follower.kill()
        follower.wait()

    node.wait(lambda: seed_cli("shoot", "w", "--state-dir", st, "--", "true").returncode == 0,
              what="shoots ready")
    # Exactly as the help prints it: the timeout is an option, not the command.
    r = seed_cli("shoot", "w", "--timeout", "1000", "--state-dir", st, "--", "sleep", "5")
    assert r.returncode == 124, (r.returncode, r.stderr)
    # After "--" nothing is ours, not even --state-dir.
    r = seed_cli("shoot", "--state-dir", st, "w", "--", "echo", "--state-dir", "x", "--timeout", "5")
    assert (r.returncode, r.stdout) == (0, "--state-dir x --timeout 5\n"), r.stderr
    # Without "--" the command starts at the first word after NAME that is not an option.
    r = seed_cli("shoot", "w", "--timeout", "5000", "sh", "-c", "echo hi", "--state-dir", st)
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    r = seed_cli("ps", "--state-dir")
    assert r.returncode == 2 and "needs a directory" in r.stderr


class EnvNode(Node):
    """A node that learns its state directory from SEED_STATE_DIR alone."""

    def start(self):
        self.log = open(self.log_path, "a")
        env = dict(os.environ, SEED_STATE_DIR=str(self.state))
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.netns}", SEED, "up", str(self.project)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)


def test_seed_state_dir_is_honoured_by_every_verb():
    proj = make_project({"a": idle("echo hello", storage={"data": "8Mi"}),
                         "b": idle()}, rootfs=False)
    node = EnvNode(proj)
    try:
        env = {"SEED_STATE_DIR": str(node.state)}
        ps = node.wait(lambda: (lambda r: r.returncode == 0 and json.loads(r.stdout))(
            seed_cli("ps", "--json", env=env)), what="ps through SEED_STATE_DIR")
        assert sorted(i["name"] for i in ps) == ["a", "b"]
        assert "state in " + str(node.state) in node.output()
        node.wait(lambda: all(i["state"] == "running" for i in json.loads(
            seed_cli("ps", "--json", env=env).stdout)), what="running")
        node.wait(lambda: "hello" in seed_cli("logs", "a", env=env).stdout, what="logs")
        vols = json.loads(seed_cli("volume", "ls", "--json", env=env).stdout)
        assert [v["name"] for v in vols] == ["data"]
        r = seed_cli("stop", "b", env=env)
        assert (r.returncode, r.stdout) == (0, "b: stopped\n"), r.stderr
        r = seed_cli("start", "b", env=env)
        assert (r.returncode, r.stdout) == (0, "b: running\n"), r.stderr
        # --state-dir wins over the environment.
        r = seed_cli("ps", "--state-dir", str(node.state), env={"SEED_STATE_DIR": "/nonexistent"})
        assert r.returncode == 0, r.stderr
        r = seed_cli("ps", env={"SEED_STATE_DIR": "/nonexistent"})
        assert r.returncode == 1 and "/nonexistent" in r.stderr
    finally:
        node.close()


# ---- help ----

@pytest.mark.parametrize("args", [[v, "--help"] for v in VERBS] +
                         [["volume", "ls", "--help"], ["volume", "rm", "--help"], ["--help"], ["help"]],
                         ids=lambda a: " ".join(a))
def test_every_verb_prints_its_usage(args):
    r = seed_cli(*args)
    assert r.returncode == 0 and r.stdout.startswith("Usage: seed"), (r.returncode, r.stdout, r.stderr)


# ---- logs --tail ----

def test_tail_zero_prints_no_lines(nodes):
    proj = make_project({"t": idle("for i in 1 2 3 4 5; do echo line $i; done")}, rootfs=False)
    node = nodes(proj)
    node.wait_log("t", "line 5")
    everything = node.cli("logs", "t").stdout.splitlines()
    assert [l.split(": ", 1)[1] for l in everything if " p: " in l] == [f"line {i}" for i in range(1, 6)]
    r = node.cli("logs", "t", "--tail", "0")
    assert (r.returncode, r.stdout) == (0, ""), r.stderr
    assert node.cli("logs", "t", "--tail", "2").stdout.splitlines() == everything[-2:]

    # -f with --tail 0: only what comes after.
    follower = subprocess.Popen([SEED, "--state-dir", str(node.state), "logs", "-f", "--tail", "0", "t"],
                                stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        assert node.cli("restart", "t").returncode == 0
        first = follower.stdout.readline()
        assert first and first.rstrip("\n") not in everything
    finally:
        follower.kill()
        follower.wait()

    assert node.stop() == 0
    # Without a node, from the files it left.
    r = node.cli("logs", "t", "--tail", "0")
    assert (r.returncode, r.stdout) == (0, ""), r.stderr
    assert len(node.cli("logs", "t", "--tail", "1").stdout.splitlines()) == 1
    assert len(node.cli("logs", "t").stdout.splitlines()) > len(everything)


# ---- stop | start | restart ----

def test_stop_start_restart_take_several_names_and_a_grace_period(nodes):
    proj = make_project({"a": stubborn(), "b": stubborn(), "c": idle()}, rootfs=False)
    node = nodes(proj, "--grace", "120")
    node.wait_running("a", "b", "c")

    # Both ignore SIGTERM: with the node's 120 s they would take two minutes.
    t0 = time.monotonic()
    r = node.cli("stop", "-t", "1", "a", "b", timeout=100)
    assert (r.returncode, r.stdout) == (0, "a: stopped\nb: stopped\n"), r.stderr
    assert time.monotonic() - t0 < 60
    ps = node.ps()
    assert (ps["a"]["state"], ps["b"]["state"], ps["c"]["state"]) == ("stopped", "stopped", "running")

    # Each name gets its answer; one unknown name fails the call, not the others.
    r = node.cli("start", "a", "nope", "b")
    assert r.returncode == 1
    assert r.stdout == "a: running\nb: running\n"
    assert 'no instance named "nope"' in r.stderr

    t0 = time.monotonic()
    r = node.cli("restart", "a", "--time", "0", "b", timeout=100)
    assert (r.returncode, r.stdout) == (0, "a: running\nb: running\n"), r.stderr
    assert time.monotonic() - t0 < 60
    assert node.cli("start", "-t", "1", "a").returncode == 2
    assert node.cli("stop", "--time", "soon", "a").returncode == 2
    # Not 120 s for each when the node stops at the end of the test.
    assert node.cli("stop", "-t", "0", "a", "b").returncode == 0


# ---- the node's own log ----

def test_node_log_lines_carry_a_timestamp(nodes):
    proj = make_project({"a": idle()}, rootfs=False)
    node = nodes(proj)
    node.wait_running("a")
    assert node.stop() == 0
    lines = node.output().splitlines()
    assert any("node up:" in l for l in lines) and any("node stopped" in l for l in lines)
    now = datetime.datetime.now(datetime.timezone.utc)
    for line in lines:
        m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z seed up: ", line)
        assert m, line
        t = datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc)
        assert abs((now - t).total_seconds()) < 600, line


def machine():
    return os.cpu_count(), os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") >> 20


def test_node_warns_about_a_tier_larger_than_the_machine(nodes):
    cpus, mem_mib = machine()
    if cpus >= 8 and mem_mib >= 8192:
        pytest.skip("this machine has room for size xl (8 vCPUs, 8 GiB)")
    proj = make_project({"big": idle(size="xl"), "small": idle(size="xs")}, rootfs=False)
    node = nodes(proj)
    node.wait_running("big", "small")   # it still runs
    warnings = [l for l in node.output().splitlines() if "warning:" in l]
    assert len(warnings) == 1, warnings
    assert "big: size xl asks for 8 vCPUs and 8192 MiB" in warnings[0]
    assert f"this machine has {cpus} CPUs" in warnings[0]


# ---- root ----

def test_other_users_are_told_seed_needs_root(nodes):
    proj = make_project({"a": idle(storage={"data": "8Mi"}, shoot={"enable": True})}, rootfs=False)
    elsewhere = workdir()
    r = run([*NOBODY, SEED, "up", str(proj), "--state-dir", str(elsewhere / "state")])
    assert r.returncode == 1 and r.stderr.startswith("seed needs root ("), r.stderr
    assert "Permission denied" not in r.stderr and not (elsewhere / "state").exists()

    node = nodes(proj)
    node.wait_running("a")
    st = str(node.state)
    for args in (["ps"], ["ps", "--json"], ["logs", "a"], ["stop", "a"], ["restart", "a", "-t", "1"],
                 ["volume", "ls"], ["volume", "rm", "x/a/data"], ["shoot", "a", "--state-dir", st, "--", "true"]):
        r = run([*NOBODY, SEED, *args] + ([] if "--" in args else ["--state-dir", st]))
        assert r.returncode != 0 and "seed needs root (" in r.stderr, (args, r.stderr)
        assert "Permission denied" not in r.stderr, (args, r.stderr)
    assert node.ps()["a"]["state"] == "running"
    assert node.stop() == 0
    for args in (["logs", "a"], ["volume", "ls"], ["ps"]):
        r = run([*NOBODY, SEED, *args, "--state-dir", st])
        assert r.returncode != 0, (args, r.stdout)
        if args != ["ps"]:   # ps: no node runs, and that is what it says
            assert "seed needs root (" in r.stderr, (args, r.stderr)
    # What needs no node needs no root.
    assert run([*NOBODY, SEED, "--version"]).returncode == 0
    assert run([*NOBODY, SEED, "eval", str(proj)]).returncode == 0


# ---- listings, version ----

def test_every_listing_has_a_json_form(nodes):
    proj = make_project({"a": idle(storage={"data": "8Mi"})}, rootfs=False)
    ev = json.loads(seed_cli("eval", str(proj), "--json").stdout)
    assert list(ev) == ["a"]
    node = nodes(proj)
    node.wait_running("a")
    assert [i["name"] for i in json.loads(node.cli("ps", "--json").stdout)] == ["a"]
    assert [v["name"] for v in json.loads(node.cli("volume", "ls", "--json").stdout)] == ["data"]
    # Every command whose usage line lists something offers --json.
    usage = seed_cli("--help").stdout
    for line in usage.splitlines():
        if re.match(r"\s+(ps|volume ls|eval)\b", line):
            assert "--json" in line, line


def test_version():
    version = re.search(r"^\s*version: '([^']+)'", (ROOT / "meson.build").read_text(), re.M).group(1)
    for args in (["--version"], ["version"]):
        r = seed_cli(*args)
        assert (r.returncode, r.stdout) == (0, f"seed {version}\n")


# ---- bash completion ----

def complete(*words, env=None):
    """What _seed offers for the last word of `seed WORDS...`."""
    words = [SEED, *words]
    script = (f"source {shlex.quote(str(COMPLETION))}\n"
              f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\n"
              f"COMP_CWORD={len(words) - 1}\n"
              "_seed\n"
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    e = dict(os.environ)
    e.pop("SEED_STATE_DIR", None)
    e.update(env or {})
    r = run(["bash", "--norc", "-c", script], env=e)
    assert r.returncode == 0, r.stderr
    return [w for w in r.stdout.splitlines() if w]


def test_bash_completion(nodes):
    assert set(VERBS) <= set(complete(""))
    assert complete("lo") == ["logs"]
    assert complete("--ver") == ["--version"]
    assert complete("logs", "--t") == ["--tail"]
    assert "--time" in complete("stop", "-") and "--time" not in complete("start", "-")
    assert complete("volume", "") == ["ls", "rm"]
    assert "--json" in complete("volume", "ls", "--")
    assert "--timeout" in complete("shoot", "w", "--")
    assert "echo" in complete("shoot", "w", "--", "ech")
    d = workdir()
    (d / "statedir").mkdir()
    assert complete("ps", "--state-dir", str(d / "sta")) == [str(d / "statedir")]
    assert complete("logs", "--tail", "") == []
    # The deploy verbs.
    assert complete("apply", "--") == ["--dry-run", "--json", "--help", "--state-dir"]
    assert complete("source", "") == ["add", "ls", "rm"]
    assert complete("source", "add", "--") == ["--ref", "--webhook-secret-file", "--poll", "--help",
                                               "--state-dir"]
    assert complete("source", "ls", "--j") == ["--json"]
    assert complete("source", "add", "--poll", "") == []
    (d / "secret").write_text("s3cret\n")
    assert complete("source", "add", "x", "/y", "--webhook-secret-file", str(d / "sec")) == [str(d / "secret")]
    assert complete("source", "add", "x", str(d / "state")) == [str(d / "statedir")]
    assert complete("history", "--l") == ["--limit"]
    assert set(complete("events", "-")) == {"-f", "--follow", "--json", "--tail", "-n", "--help",
                                            "--state-dir"}
    assert complete("down", "--") == ["--help", "--state-dir"]
    # exec and the image verbs.
    assert complete("exec", "--u") == ["--user"]
    assert complete("image", "") == ["build", "push", "inspect"]
    assert "--max-layers" in complete("image", "build", "--") and "--creds" not in complete("image", "build", "--")
    assert "--creds" in complete("image", "push", "--") and "--max-layers" not in complete("image", "push", "--")
    assert complete("image", "build", "w", ".", "--format", "oci-") == ["oci-archive"]
    assert complete("image", "push", "--ca-cert", str(d / "sec")) == [str(d / "secret")]

    proj = make_project({"alpha": idle(storage={"data": "8Mi"}), "beta": idle()}, rootfs=False)
    node = nodes(proj)
    node.wait_running("alpha", "beta")
    st = str(node.state)
    assert complete("--state-dir", st, "stop", "") == ["alpha", "beta"]
    assert complete("restart", "--state-dir", st, "alpha", "b") == ["beta"]
    assert complete("logs", "--state-dir", "=", st, "al") == ["alpha"]   # --state-dir=DIR
    assert complete("start", "", env={"SEED_STATE_DIR": st}) == ["alpha", "beta"]
    assert complete("shoot", "--state-dir", st, "--timeout", "5", "") == ["alpha", "beta"]
    ids = complete("--state-dir", st, "volume", "rm", "")
    assert len(ids) == 1 and ids[0].endswith("/alpha/data")
    assert complete("logs", "--state-dir", st, "alpha", "") == []   # one name only
    # Sources (seed up serves one, named after the project's directory) and generations.
    src = json.loads(node.cli("source", "ls", "--json").stdout)[0]["name"]
    node.wait(lambda: node.cli("history", "--json").stdout.count('"generation"') == 1, what="history")
    assert complete("--state-dir", st, "source", "rm", "") == [src]
    assert complete("--state-dir", st, "history", "") == [src]
    assert complete("--state-dir", st, "rollback", "") == [src]
    assert complete("--state-dir", st, "rollback", src, "") == ["1"]
    assert complete("--state-dir", st, "rollback", src, "1", "") == []
    assert sorted(complete("--state-dir", st, "apply", "")) == sorted([src, "alpha", "beta"])
    # No node: nothing to offer, and no noise.
    assert complete("stop", "--state-dir", str(d / "none"), "") == []
    for verb in (["source", "rm"], ["apply"], ["history"], ["rollback"]):
        assert complete("--state-dir", str(d / "none"), *verb, "") == []


# ---- make install ----

def test_make_install_lays_out_binaries_and_completion():
    d = workdir()
    # make install sets the build's prefix; end with the one it had (default /usr/local).
    opts = json.loads(run(["meson", "introspect", str(BUILD), "--buildoptions"]).stdout)
    before = next(o["value"] for o in opts if o["name"] == "prefix")
    for prefix in ("/opt/seedtest", before):
        extra = [] if prefix == "/usr/local" else [f"PREFIX={prefix}"]
        dest = d / prefix.strip("/").replace("/", "-")
        rel = os.path.relpath(dest, ROOT)     # DESTDIR=tmp, relative as users type it
        r = run(["make", "-C", str(ROOT), "install", f"BUILD={BUILD}", f"DESTDIR={rel}", *extra],
                timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        root = dest / prefix.lstrip("/")
        for b in ("seed", "seed-init", "seed-shoot", "seedd"):
            assert os.access(root / "bin" / b, os.X_OK), b
        comp = root / "share" / "bash-completion" / "completions" / "seed"
        assert comp.read_text() == COMPLETION.read_text()
        for f in ("flake.nix", "lib.nix", "templates/instance/flake.nix", "templates/instance/web.nix"):
            assert (root / "share" / "seed" / "nix" / f).read_text() == (ROOT / "nix" / f).read_text(), f
        r = run([str(root / "bin" / "seed"), "--version"])
        assert r.returncode == 0 and r.stdout.startswith("seed ")
        check_units(root / "lib" / "systemd" / "system", prefix, dest)


def unit_values(text, key):
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(key + "=")]


def check_units(unitdir, prefix, dest):
    """seedd.service and seed-down.service, installed where systemd looks under the
    prefix, name the installed binaries, keep the instances when seedd stops, and stop
    them with `seed down` before seedd at shutdown."""
    seedd = (unitdir / "seedd.service").read_text()
    down = (unitdir / "seed-down.service").read_text()
    assert unit_values(seedd, "ExecStart") == [f"{prefix}/bin/seedd"]
    assert unit_values(seedd, "Type") == ["notify"]
    assert unit_values(seedd, "KillMode") == ["process"]
    assert unit_values(seedd, "ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert unit_values(seedd, "Delegate") == []
    assert unit_values(down, "ExecStop") == [f"{prefix}/bin/seed down"]
    assert unit_values(down, "After") == ["seedd.service"]
    assert unit_values(down, "Requires") == [] and unit_values(down, "BindsTo") == []
    assert unit_values(down, "RemainAfterExit") == ["yes"]
    for text in (seedd, down):
        assert "@" not in text.replace("$MAINPID", ""), text
        assert unit_values(text, "WantedBy") == ["multi-user.target"]
    analyze = shutil.which("systemd-analyze")
    if analyze:
        # Verified as installed: the paths they name point into DESTDIR.
        d = workdir()
        for name, text in (("seedd.service", seedd), ("seed-down.service", down)):
            (d / name).write_text(text.replace(f"={prefix}/bin/", f"={dest}{prefix}/bin/"))
        r = run([analyze, "verify", "seedd.service", "seed-down.service"], cwd=d)
        assert r.returncode == 0 and r.stderr == "", r.stdout + r.stderr
