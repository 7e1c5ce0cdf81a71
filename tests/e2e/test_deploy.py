"""The deploy loop end to end: a `seedd` in a network namespace of its own
(seedtest.Daemon), sources that are local bare git repositories (pushed from a work
tree) or directories, `seed apply`/`source`/`history`/`rollback`/`events`, push
webhooks sent with curl inside the namespace, and busybox httpd instances with
`root: "host"` whose answers are polled every 10 ms (tests/e2e/http_poll.py).
Every instance publishes its own port on the daemon's 127.0.0.1."""
import hashlib
import hmac
import json
import os
import signal
import subprocess
import time
import uuid

import pytest

from seedtest import Daemon, Node, make_project, workdir

ENV = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1")
SECRET = "s3cret-for-tests"


def git(*args, cwd=None):
    r = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main",
                        *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"git {args}: {r.stderr}"
    return r.stdout.strip()


def httpd(port, version, rollout=None, storage=False, listen=None, delay=0, **extra):
    """A busybox httpd answering "v<version>" on `port` (published on the node); it
    listens on `listen` (default `port`) after `delay` seconds. Its page lives in
    /tmp (its own), or on the volume with storage=True."""
    www = "/seed/storage/data/www" if storage else "/tmp/www"
    script = (f"mkdir -p {www}; echo v$V > {www}/index.html; "
              + (f"sleep {delay}; " if delay else "")
              + f"exec busybox httpd -f -p {listen or port} -h {www}")
    inst = {"size": "xs", "root": "host", "expose": {"http": port}, "env": {"V": str(version)},
            "processes": {"httpd": {"command": ["/bin/sh", "-c", script]}}}
    if storage:
        inst["storage"] = {"data": "16Mi"}
    if rollout:
        inst["rollout"] = rollout
    inst.update(extra)
    return inst


class Repo:
    """A bare repository (HEAD -> refs/heads/main) and a work tree pushing to it."""

    def __init__(self):
        self.top = workdir()
        self.bare = self.top / "remote.git"
        self.work = self.top / "work"
        git("init", "-q", "--bare", str(self.bare))
        git("symbolic-ref", "HEAD", "refs/heads/main", cwd=self.bare)
        git("init", "-q", str(self.work))
        git("remote", "add", "origin", str(self.bare), cwd=self.work)

    def commit(self, spec, msg="change"):
        """Commit seeds.json (a dict, a raw string, or None to delete it)."""
        p = self.work / "seeds.json"
        if spec is None:
            git("rm", "-q", "seeds.json", cwd=self.work)
        else:
            p.write_text(spec if isinstance(spec, str) else json.dumps(spec, indent=1))
            git("add", "-A", cwd=self.work)
        git("commit", "-q", "--allow-empty", "-m", msg, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def push(self, force=False):
        git("push", "-q", *(["--force"] if force else []), "origin", "HEAD:main", cwd=self.work)

    def commit_push(self, spec, msg="change"):
        c = self.commit(spec, msg)
        self.push()
        return c


def github_push(d, source, commit, delivery=None, secret=SECRET, ref="refs/heads/main"):
    body = json.dumps({"ref": ref, "before": "0" * 40, "after": commit,
                       "repository": {"full_name": "t/t", "default_branch": "main"}})
    sig = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    return d.webhook(source, body, {"X-GitHub-Event": "push",
                                    "X-GitHub-Delivery": delivery or uuid.uuid4().hex,
                                    "X-Hub-Signature-256": f"sha256={sig}"})


@pytest.fixture
def daemons():
    made = []

    def start(*args, **kw):
        d = Daemon(*args, **kw)
        made.append(d)
        return d
    yield start
    for d in made:
        d.close()


def secret_file():
    f = workdir() / "secret"
    f.write_text(SECRET + "\n")
    f.chmod(0o600)
    return f


def add_git(d, name, repo, *extra, secret=True):
    args = ["source", "add", name, str(repo.bare), *extra]
    if secret:
        args += ["--webhook-secret-file", str(secret_file())]
    r = d.cli(*args)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def pids(d, *names):
    ps = d.ps()
    return {n: ps[n]["pid"] for n in names}


def generations(d, source):
    return [g["generation"] for g in d.history(source)]


def wait_content(d, port, text, timeout=20):
    return d.wait(lambda: d.http(port) == text + "\n", timeout, f"port {port} answering {text!r}")


def apply(d, *args, ok=True):
    r = d.cli("apply", *args)
    if ok is not None:
        assert (r.returncode == 0) == ok, f"seed apply {args} exited {r.returncode}:\n{r.stdout}{r.stderr}"
    return r


# 1 ---------------------------------------------------------------------------------
def test_signed_webhook_replaces_only_the_changed_instance(daemons):
    d = daemons()
    repo = Repo()
    spec = {"a": httpd(8081, 1), "b": httpd(8082, 1), "c": httpd(8083, 1)}
    repo.commit_push(spec, "one")
    add_git(d, "app", repo)
    for port in (8081, 8082, 8083):
        wait_content(d, port, "v1")
    before = pids(d, "a", "b", "c")

    spec["b"] = httpd(8082, 2)
    commit = repo.commit_push(spec, "two")
    code, text, took = github_push(d, "app", commit)
    assert code == 202, text
    assert json.loads(text)["status"] == "accepted"
    assert took < 1.0, f"the webhook took {took} s to answer"

    wait_content(d, 8082, "v2")
    d.wait(lambda: len(d.history("app")) == 2 and d.history("app")[-1]["result"] == "ok", 20, "generation 2")
    after = d.wait_running("a", "b", "c")
    assert after["a"]["pid"] == before["a"] and after["c"]["pid"] == before["c"], (before, after)
    assert after["b"]["pid"] != before["b"]
    assert d.http(8081) == "v1\n" and d.http(8083) == "v1\n"
    gen = d.history("app")[-1]
    assert gen["generation"] == 2 and gen["trigger"] == "webhook" and gen["revision"] == commit, gen
    actions = {a["name"]: a["action"] for a in gen["actions"]}
    assert actions == {"a": "unchanged", "b": "replace", "c": "unchanged"}, gen


# 2 ---------------------------------------------------------------------------------
def replace_under_load(d, repo, spec, name, port, version):
    """Poll `port` every 10 ms while `name` is replaced by `version`: the report."""
    poll = d.poller(port)
    time.sleep(0.5)
    spec[name] = dict(spec[name], env={"V": str(version)})
    repo.commit_push(spec, f"v{version}")
    apply(d, "app")
    wait_content(d, port, f"v{version}")
    time.sleep(0.5)
    return poll.stop()


def test_rolling_replacement_loses_no_request_and_recreate_shows_the_gap(daemons):
    d = daemons()
    repo = Repo()
    spec = {"roll": httpd(8091, 1, rollout="rolling"), "rec": httpd(8092, 1, rollout="recreate")}
    repo.commit_push(spec, "one")
    add_git(d, "app", repo, secret=False)
    wait_content(d, 8091, "v1")
    wait_content(d, 8092, "v1")

    rolling = replace_under_load(d, repo, spec, "roll", 8091, 2)
    recreate = replace_under_load(d, repo, spec, "rec", 8092, 2)
    print(f"\nrolling: {rolling['ok']} ok, {rolling['failed']} failed {rolling['errors'][:3]}; "
          f"recreate: {recreate['ok']} ok, {recreate['failed']} failed {recreate['errors'][:3]}")
    assert rolling["bodies"] == ["v1", "v2"], rolling
    assert rolling["failed"] == 0, rolling
    assert rolling["ok"] > 50, rolling
    assert recreate["bodies"][0] == "v1" and recreate["bodies"][-1] == "v2", recreate
    assert recreate["failed"] > 0, recreate
    ps = d.ps()
    assert "rollout" not in ps["roll"] or not ps["roll"]["rollout"], ps["roll"]


# 3 ---------------------------------------------------------------------------------
def test_a_version_that_never_becomes_ready_leaves_the_old_one_serving(daemons):
    d = daemons()
    repo = Repo()
    spec = {"web": httpd(8101, 1, rollout="rolling", rolloutTimeout="3s")}
    repo.commit_push(spec, "one")
    add_git(d, "app", repo, secret=False)
    wait_content(d, 8101, "v1")
    old_pid = d.ps()["web"]["pid"]

    poll = d.poller(8101)
    spec["web"] = httpd(8101, 2, rollout="rolling", rolloutTimeout="3s", listen=8999)  # the wrong port
    repo.commit_push(spec, "broken")
    t0 = time.time()
    r = apply(d, "app", ok=False)
    took = time.time() - t0
    time.sleep(0.3)
    rep = poll.stop()
    assert r.returncode == 1, r.stdout + r.stderr
    assert 2.5 < took < 20, took
    assert "web" in r.stdout + r.stderr and "ready" in r.stdout + r.stderr, r.stdout + r.stderr
    assert rep["failed"] == 0 and rep["bodies"] == ["v1"], rep
    assert d.http(8101) == "v1\n"
    ps = d.ps_list()
    assert [i["pid"] for i in ps if i["name"] == "web"] == [old_pid], ps
    web = ps[0]
    assert web["state"] == "running"
    shown = json.dumps(web)
    assert "3.0 s" in (web.get("rolloutError") or ""), f"seed ps does not show the failed rollout: {web}"
    assert "rollout failed" in d.cli("ps").stdout
    failed = [e for e in d.events() if e["kind"] == "rollout-failed"]
    assert failed and failed[-1]["instance"] == "web" and "3.0 s" in failed[-1]["message"], failed
    src = d.sources()["app"]
    assert src["lastResult"] != "ok" and src["lastError"], src
    assert d.history("app")[-1]["result"] != "ok"

    # back to the running version: unchanged, and the failure is no longer shown
    spec["web"] = httpd(8101, 1, rollout="rolling", rolloutTimeout="3s")
    repo.commit_push(spec, "revert")
    apply(d, "app")
    web = d.ps()["web"]
    assert web["pid"] == old_pid and web["rolloutError"] is None, web


# 4 ---------------------------------------------------------------------------------
@pytest.mark.parametrize("broken", ["invalid", "missing"])
def test_a_broken_push_changes_nothing_and_says_why(daemons, broken):
    d = daemons()
    repo = Repo()
    spec = {"a": httpd(8111, 1), "b": httpd(8112, 1)}
    first = repo.commit_push(spec, "one")
    add_git(d, "app", repo, secret=False)
    wait_content(d, 8111, "v1")
    before = pids(d, "a", "b")
    gens = generations(d, "app")

    if broken == "invalid":
        bad = dict(spec, b=dict(httpd(8112, 2), size="huge"))
        repo.commit_push(json.dumps(bad)[:-1] + ', "c": {"expose": {"http": 99999}}}', "broken")
    else:
        repo.commit_push(None, "seeds.json removed")
    r = apply(d, "app", ok=False)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    if broken == "invalid":
        assert "huge" in out and "99999" in out, out
    else:
        assert "seeds.json" in out, out
    assert pids(d, "a", "b") == before
    assert d.http(8111) == "v1\n" and d.http(8112) == "v1\n"
    src = d.sources()["app"]
    assert src["lastError"] and src["lastResult"] != "ok", src
    assert src["revision"] == first, "the deployed revision moved to the broken commit"
    assert ("huge" if broken == "invalid" else "seeds.json") in src["lastError"], src
    ev = [e for e in d.events() if e["kind"] == "apply-failed"]
    assert ev and ev[-1]["source"] == "app", d.events()[-5:]
    hist = d.history("app")
    assert [g["generation"] for g in hist if g["result"] == "ok"] == gens, hist


# 5 ---------------------------------------------------------------------------------
def test_webhook_faults_change_nothing(daemons):
    d = daemons()
    repo = Repo()
    spec = {"web": httpd(8121, 1)}
    c1 = repo.commit_push(spec, "one")
    add_git(d, "app", repo)
    nosecret = make_project({"other": httpd(8122, 1)}, rootfs=False)
    assert d.cli("source", "add", "plain", str(nosecret)).returncode == 0
    wait_content(d, 8121, "v1")
    pid = d.ps()["web"]["pid"]
    spec["web"] = httpd(8121, 2)
    c2 = repo.commit_push(spec, "two")

    def unchanged():
        assert generations(d, "app") == [1]
        assert d.ps()["web"]["pid"] == pid
        assert d.http(8121) == "v1\n"

    # a wrong signature, a signature made with another secret, none at all
    code, text, _ = github_push(d, "app", c2, secret="wrong")
    assert code == 401, text
    body = json.dumps({"ref": "refs/heads/main", "after": c2})
    code, text, _ = d.webhook("app", body, {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert code == 401, text
    code, text, _ = d.webhook("app", body, {"X-GitHub-Event": "push"})
    assert code == 401, text
    code, text, _ = github_push(d, "nosuch", c2)
    assert code == 404, text
    code, text, _ = github_push(d, "plain", c2)
    assert code == 403, text
    big = '{"ref": "refs/heads/main", "after": "' + c2 + '", "pad": "' + "x" * (2 << 20) + '"}'
    sig = hmac.new(SECRET.encode(), big.encode(), hashlib.sha256).hexdigest()
    code, text, _ = d.webhook("app", big, {"X-GitHub-Event": "push", "X-Hub-Signature-256": f"sha256={sig}"})
    assert code == 413, text
    time.sleep(1)
    unchanged()
    kinds = [e["kind"] for e in d.events()]
    assert kinds.count("webhook-rejected") >= 6, kinds

    # a good delivery is applied once; redelivered (same id, same body) it is not again,
    # even though the branch has moved on meanwhile
    code, text, _ = github_push(d, "app", c2, delivery="delivery-1")
    assert code == 202, text
    d.wait(lambda: generations(d, "app") == [1, 2], 20, "generation 2")
    wait_content(d, 8121, "v2")
    spec["web"] = httpd(8121, 3)
    repo.commit_push(spec, "three")
    code, text, _ = github_push(d, "app", c2, delivery="delivery-1")
    assert code in (200, 202), text
    time.sleep(1.5)
    hist = d.history("app")
    assert [g["generation"] for g in hist] == [1, 2], hist
    assert [g["revision"] for g in hist] == [c1, c2]
    assert d.http(8121) == "v2\n"
