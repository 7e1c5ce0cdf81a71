"""`seed exec` end to end: a command run inside a running instance gets the instance's
namespaces, cgroup, root, environment, capabilities and seccomp filter and nothing
more; stdio, terminals and exit codes pass through as with docker/podman exec; and a
process inside the instance cannot reach the node's helper or its memory."""
import fcntl
import json
import os
import pathlib
import pty
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

from seedtest import ID_BASE, SEED, make_project

pytestmark = pytest.mark.timeout(180)

EXTRA_APPLETS = ["tty", "stty", "readlink", "pwd", "wc", "seq"]


def box_project(processes=None, **extra):
    inst = {"root": "rootfs", "env": {"GREETING": "hello there"}, "storage": {"data": "8Mi"},
            "processes": processes or {"main": {"command": ["sleep", "1000"]}}}
    inst.update(extra)
    proj = make_project({"box": inst})
    for a in EXTRA_APPLETS:
        link = proj / "rootfs" / "bin" / a
        if not link.exists():
            link.symlink_to("busybox")
    return proj


def seed_exec(node, *args, timeout=60, **kw):
    """`seed exec ARGS`, output as bytes."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run([SEED, "--state-dir", str(node.state), "exec", *args], capture_output=True,
                          timeout=timeout, **kw)


def started_box(nodes, **kw):
    node = nodes(box_project(**kw))
    node.wait_running("box")
    return node


class Pty:
    """A program with a fresh pseudo-terminal as its controlling terminal (as a user's
    shell would run it), rows x cols."""

    def __init__(self, argv, rows=37, cols=91):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
                os.execv(argv[0], argv)
            finally:
                os._exit(127)
        self.out = b""
        self.status = None

    def _read(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:   # EIO: the program and everything holding the terminal ended
            return False
        self.out += data
        return bool(data)

    def expect(self, needle, timeout=20):
        end = time.time() + timeout
        while needle not in self.out:
            if time.time() > end or not self._read(0.2):
                raise AssertionError(f"{needle!r} not seen; got {self.out!r}")
        return self.out

    def send(self, data):
        os.write(self.fd, data)

    def resize(self, rows, cols):
        # The kernel sends SIGWINCH to the terminal's foreground process group: the CLI.
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def wait(self, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(st)
                while self._read(0.1):
                    pass
                return self.status
            self._read(0.1)
        raise AssertionError(f"still running; output so far {self.out!r}")

    def close(self):
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
        os.close(self.fd)


@pytest.fixture
def ptys():
    made = []

    def start(*a, **kw):
        p = Pty(*a, **kw)
        made.append(p)
        return p
    yield start
    for p in made:
        p.close()


def host_pid_of(cmdline, timeout=20):
    """The host PID of the process whose argv is cmdline."""
    want = b"\0".join(c.encode() for c in cmdline) + b"\0"
    end = time.time() + timeout
    while time.time() < end:
        for p in pathlib.Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                if (p / "cmdline").read_bytes() == want:
                    return int(p.name)
            except OSError:
                pass
        time.sleep(0.05)
    raise AssertionError(f"no process {cmdline}")


def gone(pid, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


# ---- stdio and exit codes ----

def test_output_and_exit_code_pass_through(nodes, tmp_path):
    node = started_box(nodes)
    r = seed_exec(node, "box", "--", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (r.returncode, r.stdout, r.stderr) == (7, b"out\n", b"err\n")
    # byte-exact, large, into a file (handed over as it is)
    out = tmp_path / "out.bin"
    with open(out, "wb") as f:
        r = subprocess.run([SEED, "--state-dir", str(node.state), "exec", "box", "--", "dd", "if=/dev/zero",
                            "bs=65536", "count=32"], stdout=f, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                           timeout=60)
    assert r.returncode == 0 and out.read_bytes() == b"\0" * (32 << 16)
    # killed by a signal: 128 + signal, as a shell reports it
    assert seed_exec(node, "box", "sh", "-c", "kill -9 $$").returncode == 137
    assert seed_exec(node, "box", "true").returncode == 0 and seed_exec(node, "box", "false").returncode == 1


def test_stdin_only_with_i(nodes):
    node = started_box(nodes)
    r = seed_exec(node, "-i", "box", "--", "sh", "-c", "cat; echo END", input=b"line one\nline two\n",
                  stdin=None)
    assert r.returncode == 0 and r.stdout == b"line one\nline two\nEND\n"
    # without -i stdin is /dev/null: cat ends at once though our stdin stays open
    rd, wr = os.pipe()
    try:
        r = seed_exec(node, "box", "--", "sh", "-c", "cat; echo END", stdin=rd, timeout=30)
    finally:
        os.close(rd)
        os.close(wr)
    assert r.returncode == 0 and r.stdout == b"END\n"


def test_host_terminal_never_enters_without_t(nodes, ptys):
    """Run from a terminal without -t, the command gets pipes, not the user's terminal
    (on which TIOCSTI would type into the user's shell)."""
    node = started_box(nodes)
    p = ptys([SEED, "--state-dir", str(node.state), "exec", "-i", "box", "--", "sh", "-c",
              "for fd in 0 1 2; do test -t $fd && echo fd$fd=tty || echo fd$fd=notty; done; "
              "for fd in 0 1 2; do readlink /proc/self/fd/$fd; done; read line; echo got=$line"])
    p.expect(b"fd2=")
    p.send(b"typed here\n")
    assert p.wait() == 0
    out = p.out.decode()
    assert "fd0=notty" in out and "fd1=notty" in out and "fd2=notty" in out, out
    assert out.count("pipe:") == 3 and "/dev/" not in out.replace("/dev/null", ""), out
    assert "got=typed here" in out


def test_tty_inside_with_window_size(nodes, ptys):
    node = started_box(nodes)
    p = ptys([SEED, "--state-dir", str(node.state), "exec", "-it", "box", "sh"], rows=37, cols=91)
    p.expect(b"# ")                               # the shell's prompt: the terminal is raw now
    # (the shell echoes what it reads: markers are computed so that only output matches)
    p.send(b"tty; stty size; echo TERM=$TERM; echo DONE$((0+1))\n")
    out = p.expect(b"DONE1\r\n").decode()
    assert "/dev/pts/0\r\n" in out, out           # a terminal of the instance's own devpts
    assert "37 91\r\n" in out and "TERM=xterm" in out, out
    p.resize(50, 120)                             # SIGWINCH to the CLI -> TIOCSWINSZ inside
    time.sleep(0.5)
    p.send(b"stty size; echo DONE$((1+1))\n")
    assert "50 120\r\n" in p.expect(b"DONE2\r\n").decode()
    p.send(b"exit 3\n")
    assert p.wait() == 3


def test_tty_restores_the_terminal(nodes, ptys):
    node = started_box(nodes)
    p = ptys(["/bin/sh", "-c", f"stty -g; {SEED} --state-dir {node.state} exec -it box -- sh -c 'exit 5'; "
              "echo rc=$?; stty -g"])
    assert p.wait() == 0
    lines = [line for line in p.out.decode().replace("\r", "").split("\n") if line]
    rc = [line for line in lines if line.startswith("rc=")]
    settings = [line for line in lines if line.count(":") > 10]
    assert rc == ["rc=5"], lines
    assert len(settings) == 2 and settings[0] == settings[1], lines


# ---- what the command sees ----

def test_sees_the_instance_and_nothing_more(nodes):
    node = started_box(nodes)
    ns = node.ps()["box"]["namespace"]
    r = seed_exec(node, "box", "sh", "-c", "echo $SEED_INSTANCE $SEED_NAMESPACE; echo $GREETING; hostname; "
                  "cat /etc/hostname; echo $HOME; pwd; ls /")
    lines = r.stdout.decode().splitlines()
    assert r.returncode == 0 and lines[:6] == [f"box {ns}", "hello there", "box", "box", "/root", "/"], lines
    assert set(lines[6:]) == {"bin", "dev", "etc", "proc", "run", "seed", "sys", "tmp"}, lines
    # the instance's volume, read-write
    assert seed_exec(node, "box", "sh", "-c", "echo kept > /seed/storage/data/f").returncode == 0
    assert seed_exec(node, "box", "cat", "/seed/storage/data/f").stdout == b"kept\n"
    # the probe's view: identity, capabilities, filter, processes, host files
    r = seed_exec(node, "box", "seed-probe", "report")
    rep = json.loads(r.stdout)
    a = rep["attempts"]
    assert rep["uid"] == 0 and rep["gid"] == 0 and rep["hostname"] == "box"
    assert int(rep["uid_map"].split()[1]) >= ID_BASE
    assert int(rep["CapEff"], 16) == int(rep["CapBnd"], 16) == int(rep["CapPrm"], 16) == 0x4fb
    assert int(rep["CapInh"], 16) == 0 and int(rep["CapAmb"], 16) == 0
    assert rep["NoNewPrivs"] == "1" and rep["Seccomp"] == "2"
    assert rep["pid1"].strip() == "seed-init"
    assert {p.split(":", 1)[1] for p in rep["processes"]} == {"seed-init", "sleep", "seed-probe"}
    for op in ("mount_tmpfs", "unshare_user", "setns", "bpf", "keyctl", "chroot", "raw_socket"):
        assert a[op] in ("EPERM", "ENOSYS"), (op, a[op])
    assert a["stat_root_home"] == "ENOENT" and a["stat_home"] == "ENOENT" and a["read_shadow"] == "ENOENT"
    assert a["write_root"] == "EROFS" and a["write_tmp"] == "ok"
    assert sorted(rep["interfaces"]) == ["eth0", "lo"]
    assert "HOSTNAME" in rep["env"] and rep["env"]["GREETING"] == "hello there"


def test_host_root_shows_no_host_files(nodes):
    node = nodes(make_project({"h": {"root": "host", "processes": {"main": {"command": ["sleep", "1000"]}}}},
                              rootfs=False))
    node.wait_running("h")
    r = seed_exec(node, "h", "sh", "-c", "ls /; for d in /root /home /var /work /etc/shadow; do "
                  "test -e $d && echo VISIBLE $d; done; true")
    out = r.stdout.decode().split()
    assert r.returncode == 0 and "usr" in out and "VISIBLE" not in out, out
    assert not {"root", "home", "var", "work", "srv", "boot"} & set(out), out


def test_pid_namespace_and_cgroup_from_outside(nodes):
    node = started_box(nodes)
    info = node.ps()["box"]
    init = info["pid"]
    cli = subprocess.Popen([SEED, "--state-dir", str(node.state), "exec", "box", "sleep", "4242"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        pid = host_pid_of(["sleep", "4242"])
        for ns in ("pid", "mnt", "net", "uts", "ipc", "user", "cgroup"):
            assert os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/{init}/ns/{ns}"), ns
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
        uid = int(status.split("Uid:")[1].split()[0])
        assert uid == int(pathlib.Path(f"/proc/{init}/status").read_text().split("Uid:")[1].split()[0])
        assert uid >= ID_BASE
        # in the instance's cgroup (every hierarchy that limits it)
        path = f"/seed/{node.cgroup_id()}/{info['namespace']}-box"
        cg = pathlib.Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        for ctrl in ("memory", "pids"):
            v1 = [line for line in cg if ctrl in line.split(":")[1].split(",")]
            lines = v1 or [line for line in cg if line.startswith("0::")]
            assert lines and all(line.endswith(path) for line in lines), (ctrl, cg)
        # `ps` inside shows the instance's processes, the exec'd ones among them
        ps = seed_exec(node, "box", "ps", "-o", "pid,comm").stdout.decode()
        assert "seed-init" in ps and "sleep" in ps
        # the client goes away: the command is killed (docker would leave it running)
        cli.kill()
        cli.wait()
        assert gone(pid), "the command outlived its seed exec"
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()


def test_user_workdir_and_env(nodes):
    node = started_box(nodes)
    r = seed_exec(node, "-u", "app", "-w", "/tmp", "-e", "GREETING=changed", "-e", "EXTRA=1", "box", "--",
                  "sh", "-c", "id -u; id -g; id -G; pwd; echo $HOME $GREETING $EXTRA")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().splitlines() == ["1000", "1000", "1000 50", "/tmp", "/home/app changed 1"]
    r = seed_exec(node, "-u", "4321:50", "box", "sh", "-c", "id -u; id -g; echo $HOME")
    assert r.stdout.decode().splitlines() == ["4321", "50", "/"]
    # a user's capabilities are the empty set, as for an instance process with `user`
    rep = json.loads(seed_exec(node, "-u", "app", "box", "seed-probe", "report").stdout)
    assert int(rep["CapEff"], 16) == 0 and int(rep["CapBnd"], 16) == 0x4fb and rep["Seccomp"] == "2"


# ---- failures ----

def test_failures_are_clear(nodes, tmp_path):
    node = started_box(nodes)
    r = seed_exec(node, "box", "no-such-command")
    assert r.returncode == 127 and b"no-such-command: command not found" in r.stderr, r.stderr
    r = seed_exec(node, "box", "/etc/passwd")
    assert r.returncode == 126 and b"cannot execute /etc/passwd: Permission denied" in r.stderr, r.stderr
    r = seed_exec(node, "-w", "/nonexistent", "box", "true")
    assert r.returncode == 126 and b"/nonexistent: No such file or directory" in r.stderr, r.stderr
    r = seed_exec(node, "-u", "nobody-here", "box", "true")
    assert r.returncode == 125 and b'user "nobody-here" does not exist' in r.stderr, r.stderr
    r = seed_exec(node, "nope", "true")
    assert r.returncode == 125 and b'no instance named "nope"' in r.stderr, r.stderr
    r = seed_exec(node, "box")
    assert r.returncode == 2 and b"expected an instance NAME and a command" in r.stderr
    r = subprocess.run([SEED, "--state-dir", str(tmp_path), "exec", "box", "true"], capture_output=True)
    assert r.returncode == 125 and b"no node is running" in r.stderr
    # a stopped instance
    assert node.cli("stop", "box").returncode == 0
    r = seed_exec(node, "box", "true")
    assert r.returncode == 125 and b"box is not running (it is stopped)" in r.stderr, r.stderr


def test_commands_end_with_the_instance(nodes):
    node = started_box(nodes)
    cli = subprocess.Popen([SEED, "--state-dir", str(node.state), "exec", "box", "sleep", "600"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        pid = host_pid_of(["sleep", "600"])
        assert node.cli("stop", "box").returncode == 0
        cli.wait(timeout=30)
        assert cli.returncode == 137, cli.stderr.read()
        assert gone(pid)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()


# ---- attacks from inside ----

def test_exec_helper_unreachable_from_inside(nodes):
    """While commands are exec'd over and over, a process of the instance tries to
    ptrace and to open /proc/PID/mem of every process it can see. The exec'd command
    carries a copy of the node's memory between its fork and its execve (its comm is
    then "seed-exec"): it must never be reached; the node and the helper itself are
    not even visible."""
    node = started_box(nodes, processes={
        "main": {"command": ["sleep", "1000"]},
        "scan": {"command": ["seed-probe", "ptrace-scan", "8"], "restart": "no"}})
    end = time.time() + 40
    result = None
    runs = 0
    while time.time() < end and result is None:
        for _ in range(10):
            assert seed_exec(node, "box", "true").returncode == 0
            runs += 1
        for line in node.logs("box").splitlines():
            i = line.find(": {")
            if i >= 0 and '"ptrace-scan"' in line:
                result = json.loads(line[i + 2:])
    assert result, node.logs("box")
    print(f"{runs} execs; probe: {result['rounds']} rounds, {result['tries']} tries, seen {result['seen']}, "
          f"reached {result['reached']}")
    reached = {r.split(":", 1)[1] for r in result["reached"]}
    assert "sleep" in reached, result        # the probe does reach what it may
    assert not {"seed-exec", "seed"} & reached, result
    assert "seed" not in result["seen"], result
