"""seed-init in image mode (issue 10): PID 1 of an image made by `seed image build`, run
by podman as a GPU cloud or Fly.io would run it. The spec's users get their accounts at
boot, daemons start first, the foreground process's exit code becomes the container's,
podman stop ends the daemons gracefully.

podman runs as in test_image_build.py: a private mount namespace with a tmpfs over
/sys/fs/cgroup/unified, its own storage in a temporary directory (vfs), cgroupfs, and
ulimits no higher than ours.
"""
import json
import os
import resource
import shutil
import time

import pytest

from seedtest import SEED, make_project, run, workdir

PODMAN_PRELUDE = r"""
set -e
mount --make-rprivate /
mount -t tmpfs tmpfs /sys/fs/cgroup/unified
P="podman --root $W/root --runroot $W/runroot --storage-driver vfs --cgroup-manager cgroupfs --events-backend none"
R="--ulimit nofile=$NOFILE:$NOFILE --ulimit nproc=$NPROC:$NPROC"
trap '$P rm -f -t 0 t >/dev/null 2>&1 || true' EXIT
"""


def need_podman():
    if not shutil.which("podman"):
        pytest.skip("podman is not installed (scripts/deps.sh installs it)")
    if not os.path.isdir("/sys/fs/cgroup/unified"):
        pytest.skip("no /sys/fs/cgroup/unified to hide from crun")


def build_image(proj, name):
    tmp = proj / "rootfs" / "tmp"
    tmp.mkdir(exist_ok=True)
    tmp.chmod(0o1777)
    out = workdir() / "img"
    r = run([SEED, "image", "build", name, str(proj), "-o", str(out)], timeout=300)
    assert r.returncode == 0, r.stderr
    return f"oci:{out}:latest"


def podman(script, image, timeout=300, **env):
    """Run script (after the prelude: $P is podman, $R the run options, $IMAGE the
    image) in a mount namespace of its own; the CompletedProcess."""
    w = workdir()
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 4096)
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[0], 4096)
    e = dict(os.environ, W=str(w), IMAGE=image, NOFILE=str(nofile), NPROC=str(nproc), **env)
    try:
        return run(["unshare", "-m", "sh", "-c", PODMAN_PRELUDE + script], timeout=timeout, env=e)
    finally:
        shutil.rmtree(w / "root", ignore_errors=True)


DAEMON = ("trap 'echo daemon got TERM; exit 0' TERM; touch /tmp/daemon-up; grep ^carol: /etc/shadow; "
          "echo daemon up; while true; do sleep 0.1; done")
USERS = {"carol": {"uid": 2000}, "dave": {"uid": 2001, "gid": 50, "home": "/srv/dave", "shell": "/bin/ash"}}


def test_users_daemons_first_and_foreground_exit_code():
    """The spec's users are in passwd/group/shadow with their homes; the daemon runs
    before the foreground process, which runs as its user; its exit code (7) is the
    container's, and the daemon is stopped with SIGTERM, gracefully."""
    need_podman()
    proj = make_project({"box": {"root": "rootfs", "users": USERS, "processes": {
        "daemon": {"command": ["sh", "-c", DAEMON]},
        "main": {"foreground": True, "user": "carol", "command": ["sh", "-c",
                 "id -u; id -g; echo home=$HOME; grep ^carol: /etc/passwd; grep ^dave: /etc/passwd; "
                 "grep ^carol: /etc/group; ls -ld $HOME /srv/dave; sleep 0.5; "
                 "test -e /tmp/daemon-up && echo daemon-first; exit 7"]}}}})
    image = build_image(proj, "box")
    r = podman('set +e; $P run --name t --network none $R $IMAGE; echo "rc=$?" >&2', image)
    out, err = r.stdout, r.stderr
    assert "rc=7" in err, (out, err)
    lines = [l.split(": ", 1)[1] for l in out.splitlines() if l.startswith("main: ")]
    assert lines[:5] == ["2000", "2000", "home=/home/carol", "carol:x:2000:2000::/home/carol:/bin/sh",
                         "dave:x:2001:50::/srv/dave:/bin/ash"], (out, err)
    assert "carol:x:2000:" in lines[5]
    homes = [l for l in lines if l.startswith("drwx")]
    assert homes[0].startswith("drwx------") and " carol " in homes[0] and homes[0].endswith("/home/carol"), homes
    assert homes[1].startswith("drwx------") and " dave " in homes[1], homes
    assert "main: daemon-first" in out, out
    assert "daemon: carol:*:" in out, out  # a shadow entry: no password, not locked
    assert "seed-init: users: 2 of 2 accounts added to /etc/passwd (carol, dave)" in err, err
    assert "daemon: daemon got TERM" in out, (out, err)
    assert "main (seed): exited with status 7; the foreground process ended: stopping the others" in err


def test_podman_stop_stops_daemons_gracefully():
    """podman stop: SIGTERM reaches the daemon, which ends on its own well within the
    grace period; the container exits 0."""
    need_podman()
    proj = make_project({"box": {"root": "rootfs", "users": USERS, "processes": {
        "daemon": {"command": ["sh", "-c", DAEMON]},
        "main": {"foreground": True, "user": "carol", "command": ["sleep", "1000"]}}}})
    image = build_image(proj, "box")
    script = r"""
$P run -d --name t --network none $R $IMAGE >/dev/null
for i in $(seq 1 100); do $P logs t 2>&1 | grep -q 'daemon up' && break; sleep 0.1; done
start=$(date +%s)
$P stop -t 30 t >/dev/null
echo "took=$(( $(date +%s) - start ))"
echo "exit=$($P inspect t --format '{{.State.ExitCode}}')"
$P logs t > $W/logs 2>&1
cat $W/logs
"""
    r = podman(script, image)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "exit=0" in r.stdout, r.stdout
    took = int(r.stdout.split("took=")[1].split()[0])
    assert took < 20, r.stdout  # well within the 30 s grace: nothing waited for SIGKILL
    assert "daemon: daemon got TERM" in r.stdout, r.stdout
    assert "grace period over" not in r.stdout


def test_node_runs_users_and_foreground(nodes):
    """On a node (seed up) the same spec runs: the process runs with the uid, gid and
    home of its spec user (which the root's /etc/passwd lacks), and when the foreground
    process ends the daemon is stopped and the instance is done."""
    proj = make_project({"box": {"root": "rootfs", "users": USERS, "processes": {
        "daemon": {"command": ["sh", "-c", DAEMON]},
        "main": {"foreground": True, "user": "dave", "command": ["sh", "-c",
                 "sleep 0.5; id -u; id -g; echo home=$HOME; exit 3"]}}}})
    node = nodes(proj)
    node.wait(lambda: (p := node.ps()) and p["box"]["state"] == "exited", what="box exited")
    logs = node.logs("box")
    lines = [l.split(" main: ", 1)[1] for l in logs.splitlines() if " main: " in l]
    assert lines[:3] == ["2001", "50", "home=/srv/dave"], logs
    assert "daemon: daemon got TERM" in logs, logs
    assert "main (seed): exited with status 3; the foreground process ended" in logs, logs
