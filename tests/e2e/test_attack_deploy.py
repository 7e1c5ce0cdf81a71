"""Attacks on the deploy loop (issue 8): seedd, its keeper, the control socket's new
ops, push webhooks, git sources (whose content anyone who can push controls), the
namespace's shared /etc/hosts, rolling successors, and instances that outlive the
daemon. Each test is one attack; a test that passes means the attack failed. Attacks
from inside are made by seed-probe (tests/probe/seed-probe.c, `tamper`) or busybox in
an instance; attacks from the host by an unprivileged user (setpriv to nobody)."""
import json
import os
import pathlib
import random
import re
import signal
import subprocess
import time

import pytest

from seedtest import PROBE, SEED, last_probe, make_project, make_rootfs, run, workdir
from test_deploy import (SECRET, Repo, add_dir, add_git, apply, daemons, git, github_push,  # noqa: F401
                         httpd, wait_content, write_spec)

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def probe_instance(cmd, root="rootfs", **extra):
    inst = {"size": "xs", "root": root, "processes": {"main": {"command": ["/bin/sh", "-c", cmd]}}}
    inst.update(extra)
    return inst


def probe_line(d, name, kind, timeout=30):
    def find():
        r = d.cli("logs", name)
        return last_probe(r.stdout, kind) if r.returncode == 0 else None
    try:
        return d.wait(find, timeout, f"{kind} probe output of {name}")
    except AssertionError as e:
        raise AssertionError(f"{e}\nlogs of {name}:\n{d.cli('logs', name).stdout}") from None


def state_paths(d, source):
    """What a tenant or a local user would go after in the state directory."""
    st = pathlib.Path(d.state)
    src = d.sources()[source]
    paths = [st / "seed.db", st / "seed.sock", st / "node.lock", st / "run" / "keeper.sock",
             st / "run" / "hosts" / src["namespace"]]
    repo = st / "sources" / source / "repo.git"
    if repo.exists():
        paths += [repo / "config", repo / "HEAD", repo / "packed-refs"]
        trees = st / "sources" / source / "trees"
        for t in trees.iterdir():
            paths.append(t / "seeds.json")
    return [str(p) for p in paths]


# 1. From inside an instance -----------------------------------------------------------
def test_an_instance_cannot_change_the_namespaces_hosts_or_reach_the_state(daemons):
    """Two instances of one namespace: `evil` tries to write /etc/hosts (directly,
    through /proc/self/root, after remounting it read-write, after unmounting it, by
    renaming or binding a file over it); its sibling's /etc/hosts and the file on the
    host stay as the node wrote them. It also goes after the keeper socket, the control
    socket, seed.db, another namespace's hosts file and another source's repository and
    trees: none is in its root (root: host shows only the host's /usr)."""
    d = daemons()
    repo = Repo()
    repo.commit_push({"other": httpd(8301, 1)}, "other")
    add_git(d, "other", repo)
    wait_content(d, 8301, "v1")
    paths = state_paths(d, "other")
    assert any("repo.git" in p for p in paths) and any("trees" in p for p in paths), paths

    proj = make_project({
        "evil": probe_instance(f"seed-probe tamper {' '.join(paths)}; cat /etc/hosts | sed 's/^/hosts: /'; "
                               "exec seed-probe sleep"),
        "sib": probe_instance("exec seed-probe sleep"),
    })
    r = d.cli("source", "add", "mine", str(proj))
    assert r.returncode == 0, r.stdout + r.stderr
    d.wait_running("evil", "sib", timeout=40)

    t = probe_line(d, "evil", "tamper")
    for k in ("hosts_write", "hosts_proc_root_write", "hosts_write_after_remount", "hosts_rename",
              "hosts_write_after_umount"):
        assert t[k] != "ok", (k, t)
    hosts_file = pathlib.Path(d.state) / "run" / "hosts" / d.sources()["mine"]["namespace"]
    d.wait(lambda: "seed-sib" in hosts_file.read_text(), 10, "sib in the hosts file")
    text = hosts_file.read_text()
    assert "6.6.6.6" not in text, text
    r = d.cli("exec", "mine/sib", "cat", "/etc/hosts")
    assert r.returncode == 0 and "6.6.6.6" not in r.stdout and "seed-evil" in r.stdout, r.stdout + r.stderr

    for p, res in t["paths"].items():
        assert res["stat"] == "ENOENT", (p, res)   # the state directory is not in its root
        assert res["read"] != "ok" and res["write"] != "ok" and res["connect"] != "ok", (p, res)


def test_an_instance_cannot_signal_or_trace_the_keeper_or_its_successor(daemons):
    """The keeper is a root process in the host's namespaces; a rolling successor runs
    with the same uid range as its predecessor. From the old instance: kill and ptrace
    the keeper (its pid comes from the host side); the successor is the same tenant,
    so only check that the old one's death costs the successor nothing (port, volume)."""
    d = daemons()
    spec = {"web": httpd(8311, 1, rollout="rolling", storage=True)}
    proj = add_dir(d, "src", spec)
    wait_content(d, 8311, "v1")
    kpid = keeper_pid(d)
    assert kpid, "no keeper found"
    r = d.cli("exec", "src/web", "/bin/sh", "-c", f"kill -9 {kpid}; echo rc=$?")
    assert "rc=0" not in r.stdout, r.stdout + r.stderr
    assert pathlib.Path(f"/proc/{kpid}").exists()
    out = exec_probe(d, "src/web", "ptrace", str(kpid))
    j = json.loads(out.strip().splitlines()[-1])
    assert all(j[k] != "ok" for k in ("attach", "seize", "mem_rdwr", "mem_read", "vm_readv", "environ")), j

    # a rolling replacement; then the old instance's processes are all killed
    old = d.ps()["web"]["pid"]
    write_spec(proj, {"web": httpd(8311, 2, rollout="rolling", storage=True)})
    apply(d, "src")
    wait_content(d, 8311, "v2")
    assert d.ps()["web"]["pid"] != old
    try:
        os.kill(old, signal.SIGKILL)
    except ProcessLookupError:
        pass
    time.sleep(1)
    assert d.http(8311) == "v2\n"
    r = d.cli("exec", "src/web", "cat", "/seed/storage/data/www/index.html")
    assert r.returncode == 0 and r.stdout == "v2\n", r.stdout + r.stderr


def exec_probe(d, name, *args):
    """Run seed-probe in instance `name` (any root: it is copied in through stdin)."""
    r = subprocess.run([SEED, "--state-dir", str(d.state), "exec", "-i", name, "/bin/sh", "-c",
                        'cat > /tmp/p && chmod +x /tmp/p && exec /tmp/p "$@"', "sh", *args],
                       input=pathlib.Path(PROBE).read_bytes(), capture_output=True, timeout=60)
    assert r.stdout.strip(), r.stderr
    return r.stdout.decode()


def _comm(p):
    try:
        return (p / "comm").read_text().strip()
    except OSError:
        return ""


def keeper_pid(d):
    """The keeper of daemon d: the seed-keeper holding d's <state>/run/keeper.sock."""
    path = os.path.realpath(pathlib.Path(d.state) / "run" / "keeper.sock")
    for p in pathlib.Path("/proc").iterdir():
        if not p.name.isdigit() or _comm(p) != "seed-keeper":
            continue
        try:
            inodes = {line.split()[6] for line in (p / "net" / "unix").read_text().splitlines()[1:]
                      if line.split()[-1] == path}
            fds = {os.readlink(f) for f in (p / "fd").iterdir()}
        except (OSError, IndexError):
            continue
        if any(f"socket:[{i}]" in fds for i in inodes):
            return int(p.name)
    return None


# 2. An unprivileged user on the host -------------------------------------------------
def as_nobody(*cmd, **kw):
    return run([*NOBODY, *cmd], **kw)


def nobody_can_read(path):
    return as_nobody("head", "-c", "1", str(path)).returncode == 0


def test_an_unprivileged_user_cannot_read_the_state_directory(daemons):
    """nobody on the host, knowing the layout (it is in the README) and guessing a
    source's name: seed.db (source URLs, secret-file paths, history), the sockets,
    a private repository's mirror (its whole history) and the list of its exported
    trees; the webhook secret is copied nowhere and shown nowhere.

    Hole (fixed in src/source/fetch.c): sources/<name>/ and trees/ were 0755 and
    repo.git as git makes it, so under the 0711 state directory any local user who
    guessed a source's name read the whole mirror of a private repository."""
    d = daemons()
    repo = Repo()
    (repo.work / "creds.txt").write_text("password=hunter2\n")
    repo.commit_push({"web": httpd(8321, 1)}, "private")
    add_git(d, "web", repo)
    wait_content(d, 8321, "v1")
    st = pathlib.Path(d.state)
    # The secret's file is the user's to protect; the node must not copy it anywhere.
    r = run(["grep", "-rl", SECRET, str(st)])
    assert r.stdout.strip() == "", f"the webhook secret was copied into {r.stdout}"
    for text in (d.output(), json.dumps(d.sources()), json.dumps(d.history("web")),
                 json.dumps(d.events())):
        assert SECRET not in text
    leaks = []
    targets = [st / "seed.db", st / "node.lock", st / "sources" / "web" / "repo.git" / "config",
               st / "sources" / "web" / "repo.git" / "HEAD",
]
    targets += [p for p in (st / "sources" / "web" / "repo.git" / "objects").rglob("*") if p.is_file()][:3]
    for p in targets:
        assert p.exists(), p
        if nobody_can_read(p):
            leaks.append(str(p.relative_to(st)))
    for sock in (st / "seed.sock", st / "run" / "keeper.sock"):
        r = as_nobody("/usr/bin/python3", "-c", f"""
import socket, sys
for t in (socket.SOCK_SEQPACKET, socket.SOCK_STREAM):
    try:
        socket.socket(socket.AF_UNIX, t).connect({str(sock)!r}); sys.exit(0)
    except OSError as e:
        if e.errno != 91: break
sys.exit(1)""")
        if r.returncode == 0:
            leaks.append(str(sock.relative_to(st)))
    for dirpath in (st, st / "sources" / "web", st / "sources" / "web" / "trees"):
        if as_nobody("ls", str(dirpath)).returncode == 0:
            leaks.append(f"listing {dirpath.relative_to(st)}")
    r = as_nobody(SEED, "--state-dir", str(st), "source", "ls", "--json")
    assert r.returncode != 0, r.stdout
    assert not leaks, f"nobody can read or connect to: {leaks}"


@pytest.mark.xfail(strict=True, reason="a git source's exported tree must be readable by the sandbox's "
                   "uids (the overlay is mounted inside the user namespace), so it is readable by every "
                   "local user who learns its path, and /proc/<pid>/mountinfo of any instance process "
                   "(world-readable) names it; a fix needs trees readable only by the source's uid range "
                   "(a group per range, or an idmapped mount), not a local change")
def test_an_unprivileged_user_cannot_read_a_private_project_through_an_instances_mountinfo(daemons):
    d = daemons()
    repo = Repo()
    make_rootfs(repo.work / "rootfs")
    (repo.work / "creds.txt").write_text("password=hunter2\n")
    repo.commit_push({"web": probe_instance("exec seed-probe sleep")}, "private")
    add_git(d, "web", repo)
    d.wait_running("web", timeout=30)
    pid = d.ps()["web"]["pid"]
    r = as_nobody("cat", f"/proc/{pid}/mountinfo")
    m = re.search(r"lowerdir=[^ ]*?(/[^ ,:]*/trees/[0-9a-f]{40})", r.stdout)
    creds = as_nobody("cat", m.group(1) + "/creds.txt").stdout if r.returncode == 0 and m else ""
    assert "hunter2" not in creds, f"nobody read {m.group(1)}/creds.txt, named by /proc/{pid}/mountinfo"


# 3. Through the webhook endpoint -------------------------------------------------------
RAW_CLIENT = r'''
import json, socket, sys, time
port, reqs = int(sys.argv[1]), json.load(open(sys.argv[2]))
out = []
for raw in reqs:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(raw.encode("latin-1"))
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except OSError as e:
        data = repr(e).encode()
    s.close()
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    out.append(line)
print(json.dumps(out))
'''


def raw_requests(d, reqs):
    """Send each raw HTTP request on its own connection; the status line of each answer."""
    f = d.work / "raw-requests.json"
    f.write_text(json.dumps(reqs))
    r = d.netns_run("/usr/bin/python3", "-c", RAW_CLIENT, str(d.webhook_port), str(f), timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def signed(body, secret=SECRET):
    import hashlib
    import hmac
    return "sha256=" + hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()


def test_webhook_attacks_change_nothing_and_crash_nothing(daemons):
    """Unsigned and forged pushes, ../ and encoded traversal in /webhook/<source>, huge
    and numerous headers, a source without a secret (a directory source), a push for a
    source while it is removed: every one is refused, seedd lives, nothing that runs
    changes, no generation is recorded."""
    d = daemons()
    repo = Repo()
    c1 = repo.commit_push({"web": httpd(8331, 1)}, "one")
    add_git(d, "web", repo)
    add_dir(d, "plain", {"p": httpd(8332, 1)})
    wait_content(d, 8331, "v1")
    wait_content(d, 8332, "v1")
    before = {n: i["pid"] for n, i in d.ps().items()}
    gens = {s: [g["generation"] for g in d.history(s)] for s in ("web", "plain")}
    c2 = repo.commit_push({"web": httpd(8331, 2)}, "two")   # pushed, never announced validly
    body = json.dumps({"ref": "refs/heads/main", "after": c2, "repository": {"full_name": "t/t"}})

    def req(path, headers, payload=body):
        h = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{h}"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n{payload}")
    gh = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d1"}
    cases = {
        "unsigned": req("/webhook/web", gh),
        "forged": req("/webhook/web", {**gh, "X-Hub-Signature-256": signed(body, "wrong-secret")}),
        "short sig": req("/webhook/web", {**gh, "X-Hub-Signature-256": "sha256=00"}),
        "gitlab forged": req("/webhook/web", {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "guess"}),
        "dotdot": req("/webhook/../webhook/web", gh),
        "dotdot2": req("/webhook/x/../web", gh),
        "encoded": req("/webhook/%2e%2e%2fwebhook%2fweb", gh),
        "encoded slash": req("/webhook/web%2F..", gh),
        "nul": req("/webhook/web%00", gh),
        "no secret": req("/webhook/plain", {**gh, "X-Hub-Signature-256": signed(body)}),
        "no secret unsigned": req("/webhook/plain", gh),
        "huge header": req("/webhook/web", {**gh, "X-Hub-Signature-256": "sha256=" + "a" * 200000}),
        "many headers": req("/webhook/web", {**gh, **{f"X-H{i}": "v" * 100 for i in range(3000)}}),
        "long path": req("/webhook/" + "a" * 100000, gh),
        "lying length": req("/webhook/web", {**gh, "X-Hub-Signature-256": signed(body)}, payload=body[:10]),
    }
    answers = dict(zip(cases, raw_requests(d, list(cases.values()))))
    for k, status in answers.items():
        assert not re.match(r"HTTP/1\.[01] 2\d\d", status), (k, status, answers)
    assert d.alive(), d.output()

    # 600 idle connections from one address (slowloris): another client still gets an answer
    # (one address has at most 16 open, SEED_WEBHOOK_MAX_PER_PEER)
    r = d.netns_run("/usr/bin/python3", "-c", f"""
import socket, time
socks = []
for i in range(600):
    try:
        s = socket.create_connection(("127.0.0.1", {d.webhook_port}), timeout=5)
        s.sendall(b"POST /webhook/web HTTP/1.1\\r\\nHost: x\\r\\n")
        socks.append(s)
    except OSError:
        break
import subprocess
t = time.time()
c = subprocess.run(["curl", "--interface", "127.0.0.2", "-s", "-o", "/dev/null", "-w", "%{{http_code}}", "-m", "10", "-X", "POST",
                    "-H", "X-GitHub-Event: ping", "--data-binary", "{{}}",
                    "http://127.0.0.1:{d.webhook_port}/webhook/web"], capture_output=True, text=True)
print(len(socks), c.stdout, round(time.time() - t, 2))
""", timeout=60)
    assert r.returncode == 0, r.stderr
    held, status, took = r.stdout.split()
    assert status == "401", f"with {held} idle connections open, a request got {status} after {took} s"
    assert d.alive(), d.output()

    # the source is removed while pushes for it arrive
    for i in range(5):
        d.netns_run("curl", "-s", "-o", "/dev/null", "-m", "5", "-X", "POST", "--data-binary", body,
                    "-H", "X-GitHub-Event: push", "-H", f"X-GitHub-Delivery: rm{i}",
                    "-H", f"X-Hub-Signature-256: {signed(body)}",
                    f"http://127.0.0.1:{d.webhook_port}/webhook/plain")
    time.sleep(0.5)
    assert d.alive(), d.output()
    after = {n: i["pid"] for n, i in d.ps().items()}
    assert after == before, (before, after)
    assert d.http(8331) == "v1\n"
    assert {s: [g["generation"] for g in d.history(s)] for s in ("web", "plain")} == gens
    assert d.sources()["web"]["revision"] == c1

    # and a legitimate push still works afterwards
    code, text, _ = github_push(d, "web", c2)
    assert code == 202, text
    wait_content(d, 8331, "v2")


def test_a_push_for_a_source_being_removed(daemons):
    """Signed pushes keep arriving while `seed source rm` runs: seedd neither crashes
    nor brings the source's instances back."""
    d = daemons()
    repo = Repo()
    repo.commit_push({"web": httpd(8336, 1)}, "one")
    add_git(d, "web", repo)
    wait_content(d, 8336, "v1")
    c2 = repo.commit_push({"web": httpd(8336, 2)}, "two")
    body = json.dumps({"ref": "refs/heads/main", "after": c2, "repository": {"full_name": "t/t"}})
    script = (f"for i in $(seq 1 60); do curl -s -o /dev/null -m 5 -X POST --data-binary '{body}' "
              f"-H 'X-GitHub-Event: push' -H \"X-GitHub-Delivery: d$i\" "
              f"-H 'X-Hub-Signature-256: {signed(body)}' http://127.0.0.1:{d.webhook_port}/webhook/web; "
              "sleep 0.02; done")
    pusher = subprocess.Popen(["nsenter", f"--net=/run/netns/{d.netns}", "/bin/sh", "-c", script])
    try:
        time.sleep(0.3)
        r = d.cli("source", "rm", "web")
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        pusher.wait(60)
    time.sleep(1)
    assert d.alive(), d.output()
    assert "web" not in d.sources()
    assert not [i for i in (d.ps_list() or []) if i["name"] == "web"], d.ps_list()
    assert d.http(8336) is None


# 4. Through a malicious git repository (anyone who can push) --------------------------
def commit_tree(repo, files, msg):
    """Replace the work tree's content with `files` (path -> str, or ("link", target)),
    commit and push; the commit."""
    for p in list(repo.work.iterdir()):
        if p.name != ".git":
            git("rm", "-rqf", "--cached", "--ignore-unmatch", p.name, cwd=repo.work)
            subprocess.run(["rm", "-rf", str(p)])
    for path, content in files.items():
        p = repo.work / path
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, tuple):
            p.symlink_to(content[1])
        else:
            p.write_text(content)
    git("add", "-A", cwd=repo.work)
    git("commit", "-q", "--allow-empty", "-m", msg, cwd=repo.work)
    repo.push(force=True)
    return git("rev-parse", "HEAD", cwd=repo.work)


def test_a_malicious_repository_never_leads_the_node_to_host_files(daemons):
    """Each push is evaluated by the node (as root): a root that is a symlink to / or
    climbs out with ../, a seeds.json and an instance file that are symlinks to
    /etc/shadow, a .gitmodules naming a local path and a command. Each is refused with
    a clear error that shows nothing of the file; what runs is unchanged."""
    d = daemons()
    repo = Repo()
    good = {"seeds.json": json.dumps({"web": httpd(8341, 1)})}
    c1 = commit_tree(repo, good, "good")
    add_git(d, "web", repo)
    wait_content(d, 8341, "v1")
    pid = d.ps()["web"]["pid"]
    shadow_line = pathlib.Path("/etc/shadow").read_text().splitlines()[0]
    inst = probe_instance("exec seed-probe sleep")
    bad = {
        "root symlink to /": ({"seeds.json": json.dumps({"web": inst}), "rootfs": ("link", "/")},
                              "leads outside"),
        "root climbing out": ({"seeds.json": json.dumps({"web": inst}), "rootfs": ("link", "../../../../..")},
                              "leads outside"),
        "root through a dir symlink": ({"seeds.json": json.dumps({"web": {**inst, "root": "a/rootfs"}}),
                                        "a": ("link", "/tmp")}, "leads outside"),
        "seeds.json to shadow": ({"seeds.json": ("link", "/etc/shadow")}, "seeds.json"),
        "seeds.json climbing": ({"seeds.json": ("link", "../../../../../../etc/shadow")}, "seeds.json"),
        "instance file to shadow": ({"seeds.json": json.dumps({"web": "web.json"}),
                                     "web.json": ("link", "/etc/shadow")}, "web.json"),
    }
    for what, (files, needle) in bad.items():
        commit_tree(repo, files, what)
        r = d.cli("apply", "web")
        out = r.stdout + r.stderr
        assert r.returncode == 1, (what, out)
        assert needle in out, (what, out)
        assert shadow_line not in out and ":99999:" not in out, (what, out)
        s = d.sources()["web"]
        assert shadow_line not in json.dumps(s), (what, s)
        assert d.ps()["web"]["pid"] == pid, what
        assert d.http(8341) == "v1\n", what
        assert s["revision"] == c1 and s["lastError"], (what, s)   # refused: c1 runs
    assert shadow_line not in json.dumps(d.events())
    assert shadow_line not in d.output()

    # A root of the project's own whose files link to host files: resolved inside the
    # sandbox's root, so they lead nowhere; a .gitmodules is not fetched.
    files = {"seeds.json": json.dumps({"web": probe_instance(
        "cat /etc/leak /etc/leakdir/shadow 2>&1 | sed 's/^/leak: /'; exec busybox httpd -f -p 8341 -h /www")
        | {"expose": {"http": 8341}}})}
    root = workdir() / "r"
    make_rootfs(root)
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if p.is_symlink():
            files[f"rootfs/{rel}"] = ("link", os.readlink(p))
    (repo.work / "rootfs").mkdir(exist_ok=True)
    files["rootfs/www/index.html"] = "v2\n"
    files["rootfs/etc/passwd"] = (root / "etc" / "passwd").read_text()
    files["rootfs/etc/group"] = (root / "etc" / "group").read_text()
    files["rootfs/etc/leak"] = ("link", "/etc/shadow")
    files["rootfs/etc/leakdir"] = ("link", "/etc")
    files[".gitmodules"] = ('[submodule "x"]\n\tpath = sub\n\turl = /etc\n'
                            '[submodule "y"]\n\tpath = sub2\n\turl = ext::sh -c touch% /tmp/seed-pwned\n')
    c3 = commit_tree(repo, files, "links")
    for b in ("busybox", "seed-probe"):
        (repo.work / "rootfs" / "bin" / b).write_bytes((root / "bin" / b).read_bytes())
        (repo.work / "rootfs" / "bin" / b).chmod(0o755)
    git("add", "-A", cwd=repo.work)
    git("commit", "-q", "-m", "binaries", cwd=repo.work)
    repo.push()
    r = d.cli("apply", "web")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_content(d, 8341, "v2")
    logs = d.cli("logs", "web").stdout
    assert "leak: " in logs and shadow_line not in logs and ":99999:" not in logs, logs
    assert not os.path.exists("/tmp/seed-pwned")
    assert c3


def test_refs_and_urls_crafted_as_options_are_refused(daemons):
    """`seed source add` with a --ref or a URL that git would take as an option
    (--upload-pack runs a command) or a remote helper: refused, nothing runs."""
    d = daemons()
    repo = Repo()
    repo.commit_push({"web": httpd(8346, 1)}, "one")
    marker = workdir() / "pwned"
    cmd = f"touch {marker}"
    attempts = [
        ["x1", str(repo.bare), "--ref", f"--upload-pack={cmd}"],
        ["x2", str(repo.bare), "--ref", "-oProxyCommand=" + cmd],
        ["x3", str(repo.bare), "--ref", "main --upload-pack=" + cmd],
        ["x4", str(repo.bare), "--ref", "../../HEAD"],
        ["x5", f"--upload-pack={cmd}"],
        ["x6", f"ext::sh -c {cmd.replace(' ', '% ')}"],
        ["x7", "ssh://-oProxyCommand=" + cmd.replace(" ", "%20") + "/x"],
        ["x8", f"file://{repo.bare}", "--ref", "-c"],
        ["x9", "fd::3"],
    ]
    for a in attempts:
        r = d.cli("source", "add", *a)
        assert r.returncode != 0, (a, r.stdout)
        assert r.stderr.strip(), a
    time.sleep(0.5)
    assert not marker.exists()
    assert d.sources() == {}
    assert d.alive()


def test_a_push_cannot_blow_up_into_a_huge_exported_tree(daemons):
    """git compresses a file of one repeated byte about 1000 to 1, and a commit's tree is
    written out whole: a push of a few hundred KiB could write hundreds of MiB into the
    state directory. The tree's size is summed before anything is written and held to
    seedd --max-tree (and half the free space): the apply fails, nothing is exported,
    the running version stays."""
    d = daemons("--max-tree", "64Mi")
    repo = Repo()
    repo.commit_push({"web": httpd(8351, 1)}, "one")
    add_git(d, "web", repo)
    wait_content(d, 8351, "v1")
    with open(repo.work / "zeros", "wb") as f:   # not zeros: those are written sparse
        for _ in range(256):
            f.write(b"A" * (1 << 20))
    c = repo.commit_push({"web": httpd(8351, 2)}, "zeros")
    pack = sum(p.stat().st_size for p in (repo.bare / "objects").rglob("*") if p.is_file())
    assert pack < (4 << 20), pack
    r = d.cli("apply", "web")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "more than the 67108864 a source may export" in r.stderr, r.stderr
    tree = pathlib.Path(d.state) / "sources" / "web" / "trees" / c
    assert not tree.exists()
    assert not list(tree.parent.glob(".tmp-*"))
    assert d.http(8351) == "v1\n"


# 5. Crash consistency --------------------------------------------------------------------
def test_kill_9_of_the_keeper_is_reported_and_corrupts_nothing(daemons):
    """The keeper holds the published ports and the instances' channels. Killed, it took
    the ports with it and seedd noticed nothing (the next recreate stopped the old
    instance, then failed to start the new one: "expose.http: the keeper did not
    answer", leaving nothing running). Now seedd watches the keeper's socket and starts
    a new keeper, which gets the ports and channels again: the instance keeps its PID
    and its volume, says so in seed events, and deploys go on."""
    d = daemons()
    proj = add_dir(d, "src", {"web": httpd(8371, 1, storage=True)})
    wait_content(d, 8371, "v1")
    kpid = keeper_pid(d)
    assert kpid
    pid = d.ps()["web"]["pid"]
    d.cli("exec", "src/web", "/bin/sh", "-c", "echo kept > /seed/storage/data/mark")
    os.kill(kpid, signal.SIGKILL)
    d.wait(lambda: "keeper-died" in d.cli("events").stdout, 10, "seedd reporting the keeper's death")
    assert d.proc.poll() is None, d.output()
    wait_content(d, 8371, "v1")   # the new keeper publishes the port again
    assert d.ps()["web"]["pid"] == pid
    new = keeper_pid(d)
    assert new and new != kpid
    r = d.cli("exec", "src/web", "cat", "/seed/storage/data/mark")
    assert r.stdout == "kept\n", r.stdout + r.stderr
    write_spec(proj, {"web": httpd(8371, 2, storage=True)})
    apply(d, "src")
    wait_content(d, 8371, "v2")
    r = d.cli("exec", "src/web", "cat", "/seed/storage/data/mark")
    assert r.stdout == "kept\n", r.stdout + r.stderr


def httpd_ports(d):
    """port -> number of busybox httpd processes serving it, in the daemon's cgroups."""
    count = {}
    for p in d.cgroup_procs():
        try:
            argv = pathlib.Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) > 4 and argv[1] == b"httpd" and argv[3] == b"-p":
            port = int(argv[4])
            count[port] = count.get(port, 0) + 1
    return count


def test_kill_9_of_seedd_at_random_points_of_an_apply(daemons):
    """An apply of 10 instances (rolling and recreate, each with a volume) is cut by
    kill -9 of seedd at a random point, again and again; each time a new seedd then
    converges: one copy of each instance, each with its volume mounted, and at the end
    `seed down` leaves no process, mount, loop device or cgroup."""
    rnd = random.Random(8)
    d = daemons()
    names = [f"i{k}" for k in range(10)]

    def spec(v):
        return {n: httpd(8380 + k, v, rollout="rolling" if k % 2 else "recreate", storage=True)
                for k, n in enumerate(names)}
    proj = add_dir(d, "src", spec(0))
    for k in range(10):
        wait_content(d, 8380 + k, "v0")
    for it in range(1, 9):
        write_spec(proj, spec(it))
        client = subprocess.Popen([SEED, "--state-dir", str(d.state), "apply", "src"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        delay = rnd.uniform(0, 0.6)
        time.sleep(delay)
        d.proc.kill()
        d.proc.wait()
        client.wait(30)
        d.log.close()
        d.start()
        r = d.cli("apply", "src")
        assert r.returncode == 0, (it, delay, r.stdout + r.stderr, d.output()[-3000:])
        for k in range(10):
            wait_content(d, 8380 + k, f"v{it}")
        ps = d.ps_list()
        assert sorted(i["name"] for i in ps) == names, (it, delay, ps)
        d.wait(lambda: httpd_ports(d) == {8380 + k: 1 for k in range(10)}, 15,
               f"one copy of each instance (iteration {it}, killed after {delay:.2f} s)")
        for n in names:
            mi = pathlib.Path(f"/proc/{d.ps()[n]['pid']}/mountinfo").read_text()
            assert " /seed/storage/data " in mi, (it, n, mi)
    r = d.cli("down", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    d.proc.wait(30)
    assert d.cgroup_procs() == set()
    assert d.loop_devices() == []
    assert d.host_mounts() == [], d.host_mounts()
    left = [str(p) for c in d.cgroup_dirs() for p in c.rglob("*") if p.is_dir()]
    assert left == [], left
