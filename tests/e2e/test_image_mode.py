"""seed-init in image mode (issue 10): PID 1 of an image made by `seed image build`, run
by podman as a GPU cloud or Fly.io would run it. The spec's users get their accounts at
boot, daemons start first, the foreground process's exit code becomes the container's,
podman stop ends the daemons gracefully.

podman runs as in test_image_build.py: a private mount namespace with a tmpfs over
/sys/fs/cgroup/unified, its own storage in a temporary directory (vfs), cgroupfs, and
ulimits no higher than ours.
"""
import os
import pathlib
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


def podman(script, image, timeout=300, w=None, **env):
    """Run script (after the prelude: $P is podman, $R the run options, $IMAGE the
    image, $W a work directory) in a mount namespace of its own; the CompletedProcess."""
    w = w or workdir()
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
    container's, and the daemon is stopped with SIGTERM, gracefully. Without
    ROOT_PASSWORD an empty root password is removed."""
    need_podman()
    proj = make_project({"box": {"root": "rootfs", "users": USERS, "processes": {
        "daemon": {"command": ["sh", "-c", DAEMON]},
        "main": {"foreground": True, "user": "carol", "command": ["sh", "-c",
                 "id -u; id -g; echo home=$HOME; grep ^carol: /etc/passwd; grep ^dave: /etc/passwd; "
                 "grep ^carol: /etc/group; ls -ld $HOME /srv/dave; sleep 0.5; "
                 "test -e /tmp/daemon-up && echo daemon-first; grep ^root: /etc/passwd; echo platform=$PLATFORM_VAR; "
                 "exit 7"]}}}})
    passwd = proj / "rootfs" / "etc" / "passwd"  # an image whose root has an empty password
    passwd.write_text(passwd.read_text().replace("root:x:", "root::"))
    image = build_image(proj, "box")
    r = podman('set +e; $P run --name t --network none $R -e PLATFORM_VAR=given $IMAGE; echo "rc=$?" >&2', image)
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
    assert "main: platform=given" in out, out  # the container's environment reaches the processes
    # without ROOT_PASSWORD, root has no password: the empty one is gone
    assert "main: root:*:0:0:root:/root:/bin/sh" in out, out
    assert "seed-init: password: ROOT_PASSWORD not set: root has no password (its empty one was removed)" in err
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



# ---- environment-driven setup: ROOT_PASSWORD, SSH_PUBLIC_KEYS, sshd ----

def copy_with_libs(root, *programs):
    """Copy programs into root at their paths, with the shared libraries ldd names."""
    for prog in programs:
        paths = {prog: os.path.realpath(prog)}
        r = run(["ldd", prog])
        assert r.returncode == 0, r.stderr
        for line in r.stdout.splitlines():
            parts = line.split()
            lib = parts[2] if "=>" in parts and len(parts) > 2 else (parts[0] if parts else "")
            if lib.startswith("/"):
                paths[lib] = os.path.realpath(lib)
        for where, real in paths.items():
            dest = root / where.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists():
                shutil.copy2(real, dest)
                dest.chmod(0o755)


def ssh_project():
    for tool in ("/usr/sbin/sshd", "/usr/bin/ssh-keygen", "/usr/bin/ssh", "/usr/bin/ssh-keyscan"):
        if not os.path.exists(tool):
            pytest.skip(f"{tool} is not installed (scripts/deps.sh installs openssh-server)")
    proj = make_project({"box": {"root": "rootfs", "users": {"carol": {"uid": 2000}}, "expose": {"ssh": 22},
                                 "storage": {"data": "64Mi"},
                                 "processes": {"idle": {"command": ["sleep", "100000"]}}}})
    root = proj / "rootfs"
    copy_with_libs(root, "/usr/sbin/sshd", "/usr/bin/ssh-keygen")
    for d in root.rglob("*"):
        if d.is_dir() and not d.is_symlink():
            d.chmod(0o755)
    return proj


SSH_SCRIPT = r"""
run_box() {
    $P run -d --name t --network ns:/run/netns/$NETNS -v $W/vol:/seed/storage/data $R \
        -e ROOT_PASSWORD="$ROOT_PW" -e SSH_PUBLIC_KEYS="$KEYS" \
        -e SSH_PUBLIC_KEYS_FILE=/seed/storage/data/more.pub $IMAGE >/dev/null
    for i in $(seq 1 150); do
        if nsenter --net=/run/netns/$NETNS ssh-keyscan -t ed25519 -p 22 127.0.0.1 > $W/hostkey.$1 2>/dev/null \
            && [ -s $W/hostkey.$1 ]; then break; fi
        sleep 0.2
    done
}
SSH="nsenter --net=/run/netns/$NETNS ssh -F /dev/null -o StrictHostKeyChecking=no
     -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o ConnectTimeout=10 -o IdentitiesOnly=yes -p 22"
mkdir -p $W/vol
cp $W/key2.pub $W/vol/more.pub
run_box one
$SSH -i $W/key root@127.0.0.1 "id -u; cat /proc/[0-9]*/environ | tr '\0' '\n' | grep -c -e $ROOT_PW -e $KEYS_WORD" \
    > $W/root.out 2> $W/root.err || true
$SSH -i $W/key2 carol@127.0.0.1 'id -u; stat -c "%a %U" ~/.ssh ~/.ssh/authorized_keys' > $W/carol.out 2> $W/carol.err || true
set +e
$SSH -o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive root@127.0.0.1 true \
    2> $W/pwlogin
echo "pwlogin=$?"
set -e
$P exec t cat /etc/shadow > $W/shadow
$P logs t > $W/logs 2>&1
$P rm -f -t 0 t >/dev/null
run_box two
$P logs t > $W/logs2 2>&1
"""


def test_ssh_keys_password_and_host_keys():
    """The real OpenSSH client logs in with a key from SSH_PUBLIC_KEYS (root) and from
    SSH_PUBLIC_KEYS_FILE (a spec user); a password login is refused; ROOT_PASSWORD is a
    shadow hash crypt() verifies; no process sees the values in its environment; the
    host key stays the same in a new container on the same volume."""
    need_podman()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # the system's libcrypt (deprecated in Python 3.11, still there)
    image = build_image(ssh_project(), "box")
    w = workdir()
    for k in ("key", "key2"):
        assert run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", k, "-f", str(w / k)]).returncode == 0
    key1 = (w / "key.pub").read_text().strip()
    password = "pw-" + os.urandom(6).hex()
    keys_word = key1.split()[1][-24:]  # a piece of the key, to look for
    spare = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNwYXJlc3BhcmVzcGFyZXNwYXJlc3BhcmVzcGFyZXM= spare"
    netns = "seedssh-" + os.urandom(4).hex()
    assert run(["ip", "netns", "add", netns]).returncode == 0
    try:
        assert run(["ip", "-n", netns, "link", "set", "lo", "up"]).returncode == 0
        r = podman(SSH_SCRIPT, image, w=w, NETNS=netns, ROOT_PW=password, KEYS_WORD=keys_word,
                   KEYS=f"{key1},\n {spare}\n")
    finally:
        run(["ip", "netns", "del", netns])
    logs = (w / "logs").read_text() if (w / "logs").exists() else ""
    assert r.returncode == 0, (r.stdout, r.stderr, logs)
    # root logs in with the key; no process it can see has the values in its environment
    assert (w / "root.out").read_text().split() == ["0", "0"], ((w / "root.out").read_text(),
                                                                (w / "root.err").read_text(), logs)
    # carol, with the key of the file: the modes sshd wants
    assert (w / "carol.out").read_text().split("\n")[:3] == ["2000", "700 carol", "600 carol"], \
        ((w / "carol.out").read_text(), (w / "carol.err").read_text(), logs)
    # no password login: sshd does not even offer it
    assert "pwlogin=255" in r.stdout, r.stdout
    assert "Permission denied (publickey)" in (w / "pwlogin").read_text()
    root = [l for l in (w / "shadow").read_text().splitlines() if l.startswith("root:")][0]
    h = root.split(":")[1]
    assert h.startswith("$y$") and crypt.crypt(password, h) == h and crypt.crypt("wrong", h) != h, root
    # two keys from SSH_PUBLIC_KEYS (a comma, a newline, blanks), one from the file
    assert "seed-init: ssh: 3 keys installed for root\n" in logs, logs
    assert "seed-init: ssh: 3 keys installed for carol\n" in logs, logs
    assert "seed-init: password: root's password set from ROOT_PASSWORD (yescrypt)" in logs, logs
    assert "seed-init: ssh: sshd on port 22" in logs and "/seed/storage/data/.seed/ssh" in logs, logs
    assert password not in logs and keys_word not in logs
    # a new container on the same volume: the same host key
    one, two = (w / "hostkey.one").read_text(), (w / "hostkey.two").read_text()
    assert one and one.split()[1:] == two.split()[1:], (one, two, (w / "logs2").read_text())
    assert "ssh-keygen" not in (w / "logs2").read_text()


def test_boot_only():
    """seed-init --boot, as vast.ai's onstart script runs it after replacing the
    entrypoint: the boot tasks run, each logged, no process is started, exit 0; the
    keys reach root; an unknown argument is refused."""
    need_podman()
    proj = make_project({"box": {"root": "rootfs", "users": USERS, "processes": {
        "daemon": {"command": ["sh", "-c", "echo should not run"]}}}})
    image = build_image(proj, "box")
    script = r"""
set +e
$P run --rm --network none $R --entrypoint /bin/sh -e SSH_PUBLIC_KEYS="ssh-ed25519 AAAA one" $IMAGE -c \
  '/seed/bin/seed-init --boot; echo "rc=$?"; grep ^carol: /etc/passwd; cat /root/.ssh/authorized_keys; ps -o comm'
$P run --rm --network none $R --entrypoint /seed/bin/seed-init $IMAGE --bogus
echo "bogus=$?"
"""
    r = podman(script, image)
    assert "rc=0" in r.stdout, (r.stdout, r.stderr)
    assert "carol:x:2000:2000::/home/carol:/bin/sh" in r.stdout
    assert "ssh-ed25519 AAAA one\n" in r.stdout
    assert "seed-init: users: 2 of 2 accounts added to /etc/passwd (carol, dave)" in r.stderr, r.stderr
    assert "seed-init: ssh: 1 key installed for root" in r.stderr, r.stderr
    assert "should not run" not in r.stdout and "sleep" not in r.stdout
    assert "bogus=2" in r.stdout and 'unknown argument "--bogus"' in r.stderr, (r.stdout, r.stderr)


def test_required_boot_tasks_stop_the_container():
    """boot.required: a required task that fails (or has nothing to do) stops the
    container with exit 1 before any process starts, saying which and why; when it
    succeeds the container runs as usual. Tasks not required still fail soft."""
    need_podman()
    proj = make_project({"box": {"root": "rootfs", "boot": {"required": ["ssh", "tailscale"]}, "processes": {
        "main": {"command": ["sh", "-c", "echo main ran"], "foreground": True}}}})
    image = build_image(proj, "box")
    script = r"""
set +e
$P run --rm --network none $R $IMAGE > $W/none.out 2> $W/none.err
echo "none=$?"
$P run --rm --network none $R -e SSH_PUBLIC_KEYS="ssh-ed25519 AAAA one" -e TAILSCALE_AUTHKEY=tskey-x $IMAGE > $W/nots.out 2> $W/nots.err
echo "nots=$?"
"""
    w = workdir()
    r = podman(script, image, w=w)
    out = {k: ((w / f"{k}.out").read_text(), (w / f"{k}.err").read_text()) for k in ("none", "nots")}
    # Neither key: ssh had nothing to do, tailscale neither; nothing ran.
    assert "none=1" in r.stdout, (r.stdout, out)
    assert "boot task ssh is required (boot.required) but did not succeed" in out["none"][1], out
    assert "boot task tailscale is required" in out["none"][1] and "main ran" not in out["none"][0], out
    # Keys given, but the image has no tailscaled: that one warning now stops it.
    assert "nots=1" in r.stdout, (r.stdout, out)
    assert "seed-init: ssh: 1 key installed for root" in out["nots"][1], out
    assert "boot task tailscale is required" in out["nots"][1] and "boot task ssh" not in out["nots"][1], out
    assert "main ran" not in out["nots"][0]

    # Only ssh required, keys given: the container runs; tailscale fails soft.
    proj2 = make_project({"box": {"root": "rootfs", "boot": {"required": ["ssh"]}, "processes": {
        "main": {"command": ["sh", "-c", "echo main ran"], "foreground": True}}}})
    image2 = build_image(proj2, "box")
    r = podman('set +e\n$P run --rm --network none $R -e SSH_PUBLIC_KEYS="ssh-ed25519 AAAA one" '
               '-e TAILSCALE_AUTHKEY=tskey-x $IMAGE; echo "rc=$?"\n', image2)
    assert "rc=0" in r.stdout and "main: main ran" in r.stdout, (r.stdout, r.stderr)
    assert "seed-init: tailscale: warning:" in r.stderr, r.stderr


FAKE_TAILSCALED = """#!/bin/sh
mkdir -p /seed/storage/data/ts /run/tailscale
echo "$@" > /seed/storage/data/ts/tailscaled.args
sleep 0.5
touch /run/tailscale/tailscaled.sock
exec sleep 100000
"""

FAKE_TAILSCALE = """#!/bin/sh
[ -e /run/tailscale/tailscaled.sock ] || { echo "failed to connect to local tailscaled" >&2; exit 1; }
for a in "$@"; do
    case "$a" in --authkey=file:*) cat "${a#--authkey=file:}" > /seed/storage/data/ts/key;; esac
done
echo "$@" > /seed/storage/data/ts/up.args
"""

# The key is looked for with grep -f (from the file the fake wrote), so that no
# checker's own arguments hold it.
CHECKER = ("while [ ! -e /seed/storage/data/ts/up.args ]; do sleep 0.1; done; sleep 0.3; "
           "echo environ=$(cat /proc/[0-9]*/environ | tr '\\0' '\\n' | grep -c -F -f /seed/storage/data/ts/key); "
           "echo cmdline=$(cat /proc/[0-9]*/cmdline | tr '\\0' '\\n' | grep -c -F -f /seed/storage/data/ts/key); "
           "echo keyfile=$(test -e /run/seed/tailscale-authkey && echo there || echo gone)")


def test_tailscale_authkey():
    """A fake tailscaled/tailscale pair in the image: tailscaled runs with its state on
    the volume, `tailscale up` gets the key (from a root-only file) and the instance's
    name; the key is in no process's environment or arguments and never logged."""
    need_podman()
    proj = make_project({"box": {"root": "rootfs", "storage": {"data": "64Mi"}, "processes": {
        "idle": {"command": ["sleep", "100000"]},
        "checker": {"restart": "no", "command": ["sh", "-c", CHECKER]}}}})
    for name, text in (("tailscaled", FAKE_TAILSCALED), ("tailscale", FAKE_TAILSCALE)):
        (proj / "rootfs" / "bin" / name).write_text(text)
        (proj / "rootfs" / "bin" / name).chmod(0o755)
    image = build_image(proj, "box")
    key = "tskey-auth-" + os.urandom(8).hex()
    script = r"""
mkdir -p $W/vol
$P run -d --name t --network none $R -v $W/vol:/seed/storage/data -e TAILSCALE_AUTHKEY=$KEY $IMAGE >/dev/null
for i in $(seq 1 100); do $P logs t 2>&1 | grep -q 'checker: keyfile=' && break; sleep 0.1; done
$P stop -t 10 t >/dev/null
$P logs t > $W/logs 2>&1
"""
    w = workdir()
    r = podman(script, image, w=w, KEY=key)
    logs = (w / "logs").read_text()
    assert r.returncode == 0, (r.stdout, r.stderr, logs)
    ts = w / "vol" / "ts"
    assert (ts / "key").read_text() == key, logs
    up = (ts / "up.args").read_text().split()
    assert up == ["--socket=/run/tailscale/tailscaled.sock", "up",
                  "--authkey=file:/run/seed/tailscale-authkey", "--hostname=box"], up
    daemon = (ts / "tailscaled.args").read_text()
    assert "--state=/seed/storage/data/.seed/tailscale/tailscaled.state" in daemon, daemon
    assert (w / "vol" / ".seed" / "tailscale").is_dir()
    assert "checker: environ=0" in logs and "checker: cmdline=0" in logs, logs
    assert "checker: keyfile=gone" in logs, logs  # removed once tailscale up succeeded
    assert "seed-init: tailscale: starting tailscaled" in logs and "joining as box" in logs, logs
    assert key not in logs


def test_tailscale_missing_is_one_warning():
    """Without tailscaled in the image: one warning, the processes run."""
    need_podman()
    proj = make_project({"box": {"root": "rootfs", "processes": {
        "job": {"restart": "no", "command": ["sh", "-c", "echo ran"]}}}})
    image = build_image(proj, "box")
    r = podman('set +e; $P run --rm --network none $R -e TAILSCALE_AUTHKEY=tskey-x $IMAGE; echo "rc=$?"', image)
    assert "rc=0" in r.stdout and "job: ran" in r.stdout, (r.stdout, r.stderr)
    warn = [l for l in r.stderr.splitlines() if "tailscale" in l]
    assert warn == ["seed-init: tailscale: warning: TAILSCALE_AUTHKEY is set but the image has no tailscaled: "
                    "not joining"], r.stderr


# ---- GPU driver libraries injected by the host ----

FAKE_CUDA = "int cuInit(unsigned flags) { return (int)flags + 42; }\n"
CUDA_APP = r"""
#include <stdio.h>
int cuInit(unsigned flags);
int main(void) { printf("cuInit=%d\n", cuInit(0)); return 0; }
"""
NIX_GLIBC = "/nix/store/" + "0" * 32 + "-glibc-2.36"


def gpu_project(nix):
    """An image with a program that links libcuda.so.1 but no libcuda.so.1: an FHS one
    (the loader in /lib64, ldconfig) or a /nix/store-style one (its glibc in the store,
    RUNPATH with /run/opengl-driver/lib, the default search path ignored)."""
    if not shutil.which("gcc"):
        pytest.skip("no C compiler")
    proj = make_project({"gpu": {"root": "rootfs", "processes": {
        "idle": {"command": ["sleep", "100000"]},
        "app": {"foreground": True, "command": ["sh", "-c",
                "/app && (/sbin/ldconfig -p 2>/dev/null | grep -q libcuda.so.1 && echo cached; "
                "readlink /run/opengl-driver/lib/libcuda.so.1 || true)"]}}}})
    root = proj / "rootfs"
    build = workdir()
    (build / "cuda.c").write_text(FAKE_CUDA)
    (build / "app.c").write_text(CUDA_APP)
    r = run(["gcc", "-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o", str(build / "libcuda.so.1"),
             str(build / "cuda.c")])
    assert r.returncode == 0, r.stderr
    (build / "libcuda.so").symlink_to("libcuda.so.1")
    libc, loader = "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"
    args = ["gcc", "-o", str(root / "app"), str(build / "app.c"), "-L", str(build), "-lcuda"]
    if nix:
        store = root / NIX_GLIBC.lstrip("/") / "lib"
        store.mkdir(parents=True)
        shutil.copy2(os.path.realpath(libc), store / "libc.so.6")
        shutil.copy2(os.path.realpath(loader), store / "ld-linux-x86-64.so.2")
        args += [f"-Wl,--dynamic-linker={NIX_GLIBC}/lib/ld-linux-x86-64.so.2",
                 f"-Wl,-rpath,{NIX_GLIBC}/lib:/run/opengl-driver/lib", "-Wl,-z,nodefaultlib"]
    else:
        for f in (libc, loader):
            (root / f.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(f), root / f.lstrip("/"))
        (root / "sbin").mkdir()
        shutil.copy2("/sbin/ldconfig", root / "sbin" / "ldconfig")
        (root / "etc" / "ld.so.conf.d").mkdir()
        (root / "etc" / "ld.so.conf").write_text("include /etc/ld.so.conf.d/*.conf\n")
    r = run(args)
    assert r.returncode == 0, r.stderr
    (root / "usr" / "lib" / "x86_64-linux-gnu").mkdir(parents=True)  # where the runtime binds
    for d in root.rglob("*"):
        if d.is_dir() and not d.is_symlink():
            d.chmod(0o755)
    return proj, build


GPU_SCRIPT = r"""
$P run -d --name t --network none $R -e NVIDIA_VISIBLE_DEVICES=all -v $DRV:/seed/drv:ro $IMAGE >/dev/null
sleep 2
PID=$($P inspect t --format '{{.State.Pid}}')
# as nvidia-container-runtime does: a placeholder, and the host's library bound over it
nsenter -t $PID -m /bin/busybox sh -c \
  'touch /usr/lib/x86_64-linux-gnu/libcuda.so.1 && /bin/busybox mount --bind /seed/drv/libcuda.so.1 /usr/lib/x86_64-linux-gnu/libcuda.so.1'
echo "exit=$($P wait t)"
$P logs t > $W/logs 2>&1
"""


@pytest.mark.parametrize("nix", [False, True], ids=["fhs", "nix"])
def test_gpu_driver_libraries_injected_late(nix):
    """The driver library appears two seconds after start (a bind mount, as the NVIDIA
    runtime makes it): seed-init waits for it, then the program that links libcuda.so.1
    runs without LD_LIBRARY_PATH — through the loader cache in an FHS image, through
    /run/opengl-driver/lib in a /nix/store-style one."""
    need_podman()
    proj, build = gpu_project(nix)
    image = build_image(proj, "gpu")
    w = workdir()
    r = podman(GPU_SCRIPT, image, w=w, DRV=str(build))
    logs = (w / "logs").read_text() if (w / "logs").exists() else ""
    assert r.returncode == 0, (r.stdout, r.stderr, logs)
    assert "exit=0" in r.stdout, (r.stdout, logs)
    assert "app: cuInit=42" in logs, logs
    line = [l for l in logs.splitlines() if l.startswith("seed-init: gpu: ")]
    assert len(line) == 1, logs
    waited = float(line[0].split(" after ")[1].split(" s")[0])
    assert 1.5 <= waited < 30, line
    if nix:
        assert "app: /usr/lib/x86_64-linux-gnu/libcuda.so.1" in logs, logs
        assert "linked in /run/opengl-driver/lib" in line[0]
    else:
        assert "app: cached" in logs, logs
        assert "loader cache refreshed (ldconfig)" in line[0]


def test_gpu_wait_is_bounded():
    """No library comes: after $SEED_GPU_WAIT seconds one warning, and the processes
    start anyway (the program then cannot load libcuda.so.1: 127)."""
    need_podman()
    proj, _ = gpu_project(nix=False)
    image = build_image(proj, "gpu")
    r = podman('set +e; $P run --rm --network none $R -e NVIDIA_VISIBLE_DEVICES=0 -e SEED_GPU_WAIT=1 $IMAGE; '
               'echo "rc=$?"', image)
    assert "rc=127" in r.stdout, (r.stdout, r.stderr)
    assert ("seed-init: gpu: warning: an NVIDIA GPU is assigned but no libcuda.so.1 appeared within 1 s"
            in r.stderr), r.stderr


# ---- persistence of /nix and homes ----

STORE_PATH = "/nix/store/" + "1" * 32 + "-hello"
INSTALLED = "/nix/store/" + "2" * 32 + "-installed"
PERSIST_MAIN = f"""
if [ "$PHASE" = 1 ]; then
    mkdir -p {INSTALLED} && echo installed > {INSTALLED}/file
    echo note > /home/carol/note && chown carol /home/carol/note
    cat /etc/nix/nix.conf 2>/dev/null | grep '^sandbox'
else
    cat {INSTALLED}/file /home/carol/note /home/carol/.profile
    {STORE_PATH}/bin/hello
    ls -ln /home/carol/note
fi
sleep 0.5
"""
FAKE_NIX_DAEMON = "#!/bin/sh\necho \"$@\" > /seed/storage/data/nix-daemon.ran\nexec sleep 100000\n"


@pytest.mark.parametrize("caps", ["default", "sys_admin"])
def test_nix_and_homes_persist(caps):
    """A file installed under /nix and one in a home survive podman rm + podman run with
    the same volume: with the default capabilities through a copy of /nix made on first
    boot and links, with CAP_SYS_ADMIN through an overlay and bind mounts. The image's
    own store path stays; a home starts from /etc/skel; nix-daemon runs; where the Nix
    sandbox cannot work, nix.conf says sandbox = false."""
    need_podman()
    proj = make_project({"box": {"root": "rootfs", "storage": {"data": "64Mi"}, "users": {"carol": {"uid": 2000}},
                                 "processes": {"main": {"foreground": True,
                                                        "command": ["sh", "-c", PERSIST_MAIN]}}}})
    root = proj / "rootfs"
    (root / STORE_PATH.lstrip("/") / "bin").mkdir(parents=True)
    (root / STORE_PATH.lstrip("/") / "bin" / "hello").write_text("#!/bin/sh\necho hello from the image store\n")
    (root / STORE_PATH.lstrip("/") / "bin" / "hello").chmod(0o755)
    (root / "nix" / "var" / "nix" / "db").mkdir(parents=True)
    (root / "etc" / "skel").mkdir()
    (root / "etc" / "skel" / ".profile").write_text("# skeleton profile\n")
    (root / "bin" / "nix-daemon").write_text(FAKE_NIX_DAEMON)
    (root / "bin" / "nix-daemon").chmod(0o755)
    for d in root.rglob("*"):
        if d.is_dir() and not d.is_symlink():
            d.chmod(0o755)
    image = build_image(proj, "box")
    cap = "--cap-add SYS_ADMIN" if caps == "sys_admin" else ""
    script = f"""
mkdir -p $W/vol
for phase in 1 2; do
    $P run --rm --network none $R {cap} -v $W/vol:/seed/storage/data -e PHASE=$phase $IMAGE > $W/out.$phase 2>&1
done
"""
    w = workdir()
    r = podman(script, image, w=w)
    one, two = (w / "out.1").read_text(), (w / "out.2").read_text()
    assert r.returncode == 0, (r.stdout, r.stderr, one, two)
    assert f"main: installed\nmain: note\nmain: # skeleton profile\nmain: hello from the image store\n" in two, two
    assert [l for l in two.splitlines() if l.startswith("main: -rw")][0].split()[3:5] == ["2000", "0"], two
    assert (w / "vol" / "nix-daemon.ran").exists(), one
    assert "seed-init: nix: starting /bin/nix-daemon for multi-user Nix" in one, one
    if caps == "default":
        assert "seed-init: persist: /nix: no overlay (Operation not permitted): symlink " \
               "/seed/storage/data/.seed/nix/copy (copied on this first boot)" in one, one
        assert "(new store paths of the image added)" in two, two
        assert "seed-init: persist: home of carol: symlink /seed/storage/data/homes/carol " \
               "(made on this first boot)" in one, one
        assert "main: sandbox = false" in one, one
        assert (w / "vol" / ".seed" / "nix" / "copy" / INSTALLED.lstrip("/").split("/", 1)[1] / "file").exists()
    else:
        assert "seed-init: persist: /nix: an overlay, the image's below, " \
               "/seed/storage/data/.seed/nix/upper above" in one, one
        assert "seed-init: persist: home of carol: bind mount /seed/storage/data/homes/carol" in one, one
        assert (w / "vol" / ".seed" / "nix" / "upper" / INSTALLED.lstrip("/").split("/", 1)[1] / "file").exists()


@pytest.mark.parametrize("caps", ["default", "sys_admin"])
def test_users_on_a_read_only_root(caps):
    """podman run --read-only: /etc cannot be written. With CAP_SYS_ADMIN the new
    passwd/group/shadow are bind-mounted from /run/seed/etc; without it, one warning per
    file, and the process still runs with its spec user's ids and home."""
    need_podman()
    proj = make_project({"box": {"root": "rootfs", "users": {"carol": {"uid": 2000, "home": "/tmp/carol"}},
                                 "processes": {"main": {"foreground": True, "user": "carol", "command": [
                                     "sh", "-c", "id -u; echo home=$HOME; grep -c ^carol: /etc/passwd"]}}}})
    image = build_image(proj, "box")
    cap = "--cap-add SYS_ADMIN" if caps == "sys_admin" else ""
    r = podman(f'set +e; $P run --rm --read-only {cap} --network none $R $IMAGE; echo "rc=$?"', image)
    out = r.stdout
    if caps == "sys_admin":
        assert "main: 2000\nmain: home=/tmp/carol\nmain: 1\n" in out and "rc=0" in out, (out, r.stderr)
        assert "warning" not in r.stderr, r.stderr
        assert "seed-init: users: the image has no /etc/shadow and cannot get one (Read-only file system)" \
            in r.stderr, r.stderr
    else:
        assert "main: 2000\nmain: home=/tmp/carol\nmain: 0\n" in out and "rc=1" in out, (out, r.stderr)
        assert "seed-init: users: warning: cannot write /etc/passwd: Read-only file system" in r.stderr, r.stderr
