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

from seedtest import SEED, Daemon, GitRepo, git, make_project, workdir

SECRET = "s3cret-for-tests"




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


class Repo(GitRepo):
    """A bare repository (HEAD -> refs/heads/main) and a work tree pushing to it."""

    def commit(self, spec, msg="change"):
        """Commit seeds.json (a dict, a raw string, or None to delete it)."""
        if spec is None:
            git("rm", "-q", "seeds.json", cwd=self.work)
            return self.commit_files({}, msg)
        return self.commit_files({"seeds.json": spec if isinstance(spec, str) else json.dumps(spec, indent=1)}, msg)

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


def add_dir(d, name, spec):
    proj = make_project(spec, rootfs=False)
    r = d.cli("source", "add", name, str(proj))
    assert r.returncode == 0, r.stdout + r.stderr
    return proj


def write_spec(proj, spec):
    (proj / "seeds.json").write_text(json.dumps(spec, indent=1))


def volumes(d):
    r = d.cli("volume", "ls", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


# 6 ---------------------------------------------------------------------------------
def test_a_removed_then_restored_instance_finds_its_volume(daemons):
    d = daemons()
    spec = {"keep": httpd(8131, 1), "vol": httpd(8132, 1, storage=True)}
    proj = add_dir(d, "app", spec)
    wait_content(d, 8132, "v1")
    r = d.cli("exec", "vol", "--", "sh", "-c", "echo precious > /seed/storage/data/f")
    assert r.returncode == 0, r.stdout + r.stderr

    write_spec(proj, {"keep": spec["keep"]})
    r = apply(d, "app")
    assert "- vol" in r.stdout and "remove" in r.stdout, r.stdout
    assert "vol" not in d.ps()
    assert d.http(8132) is None
    vols = volumes(d)
    assert [(v["instance"], v["name"], v["inUse"]) for v in vols] == [("vol", "data", False)], vols

    write_spec(proj, spec)
    r = apply(d, "app")
    assert "+ vol" in r.stdout, r.stdout
    d.wait_running("vol")
    r = d.cli("exec", "vol", "--", "cat", "/seed/storage/data/f")
    assert r.returncode == 0 and r.stdout == "precious\n", r.stdout + r.stderr


# 7 ---------------------------------------------------------------------------------
def test_two_sources_with_an_instance_of_the_same_name(daemons):
    d = daemons()
    add_dir(d, "a", {"web": httpd(8141, "a")})
    add_dir(d, "b", {"web": httpd(8142, "b")})
    wait_content(d, 8141, "va")
    wait_content(d, 8142, "vb")
    ps = d.ps_list()
    assert sorted((i["source"], i["name"]) for i in ps) == [("a", "web"), ("b", "web")], ps
    assert len({i["namespace"] for i in ps}) == 2 and all(i["state"] == "running" for i in ps), ps
    text = d.cli("ps").stdout
    assert text.count("web") >= 2, text

    r = d.cli("exec", "web", "--", "true")
    assert r.returncode != 0
    assert r.returncode == 125, r.returncode
    assert "SOURCE/NAME" in r.stderr and "sources a and b" in r.stderr, r.stderr
    r = d.cli("exec", "a/web", "--", "cat", "/tmp/www/index.html")
    assert r.returncode == 0 and r.stdout == "va\n", r.stdout + r.stderr
    r = d.cli("exec", "b/web", "--", "hostname")
    assert r.returncode == 0 and r.stdout.strip() == "web", r.stdout + r.stderr
    r = d.cli("logs", "web")
    assert r.returncode != 0 and "SOURCE/NAME" in r.stderr, r.stderr
    r = d.cli("restart", "b/web")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_content(d, 8142, "vb")
    assert {i["source"]: i["pid"] for i in d.ps_list()}["a"] == {i["source"]: i["pid"] for i in ps}["a"]


# 8 ---------------------------------------------------------------------------------
def test_sighup_reapplies_every_source_and_stops_nothing(daemons):
    d = daemons()
    spec = {"a": httpd(8151, 1), "b": httpd(8152, 1)}
    proj = add_dir(d, "app", spec)
    wait_content(d, 8151, "v1")
    before = pids(d, "a", "b")
    spec["a"] = httpd(8151, 2)
    write_spec(proj, spec)
    os.kill(d.pid, signal.SIGHUP)   # nsenter execs seedd: the same process
    d.wait(lambda: len(d.history("app")) == 2 and d.history("app")[-1]["result"] != "running", 20,
           "an apply after SIGHUP")
    wait_content(d, 8151, "v2")
    gen = d.history("app")[-1]
    assert gen["trigger"] == "sighup" and gen["result"] == "ok", gen
    assert d.ps()["b"]["pid"] == before["b"]
    assert d.alive()
    # a second SIGHUP with nothing changed touches nothing
    now = pids(d, "a", "b")
    os.kill(d.pid, signal.SIGHUP)
    time.sleep(1)
    assert d.alive() and pids(d, "a", "b") == now


# 9 ---------------------------------------------------------------------------------
def test_history_and_rollback(daemons):
    d = daemons()
    repo = Repo()
    spec = {"web": httpd(8161, 1), "other": httpd(8162, 1)}
    c1 = repo.commit_push(spec, "one")
    add_git(d, "app", repo, secret=False)
    wait_content(d, 8161, "v1")
    spec["web"] = httpd(8161, 2)
    c2 = repo.commit_push(spec, "two")
    apply(d, "app")
    wait_content(d, 8161, "v2")
    other = d.ps()["other"]["pid"]
    hist = d.history("app")
    assert [(g["generation"], g["revision"], g["result"]) for g in hist] == [(1, c1, "ok"), (2, c2, "ok")], hist
    text = d.cli("history", "app").stdout
    assert c1[:12] in text and c2[:12] in text, text

    r = d.cli("rollback", "app", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_content(d, 8161, "v1")
    assert d.ps()["other"]["pid"] == other
    src = d.sources()["app"]
    assert src["pinnedGeneration"] == 1, src
    assert d.history("app")[-1]["trigger"] == "rollback", d.history("app")[-1]
    # pinned: a poll/SIGHUP does not move it
    os.kill(d.pid, signal.SIGHUP)
    time.sleep(1)
    assert d.http(8161) == "v1\n"

    apply(d, "app")
    wait_content(d, 8161, "v2")
    src = d.sources()["app"]
    assert src["pinnedGeneration"] is None and src["revision"] == c2, src
    r = d.cli("rollback", "app")      # default: the last good one before the current
    assert r.returncode == 0, r.stdout + r.stderr
    wait_content(d, 8161, "v1")
    r = d.cli("rollback", "app", "99")
    assert r.returncode == 1 and "99" in r.stderr, r.stdout + r.stderr


# 10 --------------------------------------------------------------------------------
def test_dry_run_changes_nothing_and_apply_name_only_that_instance(daemons):
    d = daemons()
    spec = {"a": httpd(8171, 1), "b": httpd(8172, 1), "c": httpd(8173, 1)}
    proj = add_dir(d, "app", spec)
    wait_content(d, 8171, "v1")
    before = pids(d, "a", "b", "c")
    write_spec(proj, {"a": httpd(8171, 2), "b": httpd(8172, 2), "d": httpd(8174, 1)})

    r = d.cli("apply", "app", "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout
    assert "~ a" in lines and "~ b" in lines and "- c" in lines and "+ d" in lines, lines
    r = d.cli("apply", "--dry-run", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    json.loads(r.stdout)
    time.sleep(0.3)
    assert pids(d, "a", "b", "c") == before and "d" not in d.ps()
    assert generations(d, "app") == [1]

    r = apply(d, "a")
    assert "~ a" in r.stdout and "~ b" not in r.stdout, r.stdout
    wait_content(d, 8171, "v2")
    ps = d.ps()
    assert ps["b"]["pid"] == before["b"] and ps["c"]["pid"] == before["c"] and "d" not in ps, ps
    assert d.http(8172) == "v1\n"
    apply(d, "app/b")
    wait_content(d, 8172, "v2")
    assert "c" in d.ps() and "d" not in d.ps()
    apply(d, "app")
    d.wait_running("d")
    assert "c" not in d.ps()


# 11 --------------------------------------------------------------------------------
def test_bad_input_gets_a_clear_error_and_changes_nothing(daemons, nodes):
    d = daemons(webhook=False)
    repo = Repo()
    repo.commit_push({"w": httpd(8181, 1)}, "one")
    add_dir(d, "good", {"g": httpd(8182, 1)})
    wait_content(d, 8182, "v1")
    pid = d.ps()["g"]["pid"]
    empty = workdir()

    def refused(args, *needles, kept=False):
        r = d.cli("source", "add", *args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        for n in needles:
            assert n in r.stderr, (args, r.stderr)
        srcs = d.sources()
        if kept:
            # the source stays registered (report it); its error says why
            assert srcs["x"]["lastError"] and srcs["x"]["instances"] == 0, srcs["x"]
            assert d.cli("source", "rm", "x").returncode == 0
        else:
            assert list(srcs) == ["good"], (args, srcs)
        assert [i["name"] for i in d.ps_list()] == ["g"] and d.ps()["g"]["pid"] == pid

    refused(["x", "ext::sh -c touch% /tmp/seed-pwned"], "ext::", "not accepted")
    refused(["x", "git://127.0.0.1/x"], "git://")
    refused(["x", "/nonexistent/dir"], "/nonexistent/dir", "No such file")
    refused(["bad/name", str(repo.bare)], "bad/name", "DNS label")
    refused(["good", str(repo.bare)], "good")                       # the name is taken
    refused(["x", str(repo.bare), "--ref", "nosuch"], "'nosuch' does not exist", "main",
            kept=_keeps_broken(d, ["x", str(repo.bare), "--ref", "nosuch"]))
    refused(["x", str(empty)], "seeds.json", kept=_keeps_broken(d, ["x", str(empty)]))
    assert not os.path.exists("/tmp/seed-pwned")

    for args, needle in ((["apply", "nosuch"], "nosuch"), (["rollback", "nosuch"], "no source"),
                         (["rollback", "nosuch", "1"], "no source"), (["history", "nosuch"], "no source"),
                         (["source", "rm", "nosuch"], "no source"), (["rollback", "good", "x"], "x"),
                         (["apply", "good/nosuch"], "nosuch")):
        r = d.cli(*args)
        assert r.returncode in (1, 2) and needle in r.stderr, (args, r.returncode, r.stderr)
    assert d.ps()["g"]["pid"] == pid

    # a `seed up` node serves its one project: no sources added to it
    node = nodes(make_project({"u": httpd(8183, 1)}, rootfs=False))
    node.wait_running("u")
    r = node.cli("source", "add", "x", str(repo.bare))
    assert r.returncode == 1 and "seed up" in r.stderr and "seedd" in r.stderr, r.stdout + r.stderr


def _keeps_broken(d, args):
    """Whether `seed source add` keeps a source whose first apply failed (it does
    today for a missing ref and a missing seeds.json); the probe is undone."""
    d.cli("source", "add", *args)
    kept = "x" in d.sources()
    d.cli("source", "rm", "x")
    return kept


# 12 --------------------------------------------------------------------------------
def test_source_rm_stops_its_instances_and_keeps_their_volumes(daemons):
    d = daemons(webhook=False)
    spec = {"v": httpd(8191, 1, storage=True)}
    add_dir(d, "other", {"o": httpd(8192, 1)})
    proj = add_dir(d, "app", spec)
    wait_content(d, 8191, "v1")
    other = d.ps()["o"]["pid"]
    assert d.cli("exec", "v", "--", "sh", "-c", "echo kept > /seed/storage/data/f").returncode == 0
    r = d.cli("source", "rm", "app")
    assert r.returncode == 0, r.stdout + r.stderr
    assert list(d.ps()) == ["o"] and d.ps()["o"]["pid"] == other
    assert d.http(8191) is None
    assert list(d.sources()) == ["other"]
    vols = volumes(d)
    assert [(v["instance"], v["name"], v["inUse"]) for v in vols] == [("v", "data", False)], vols
    # added again under the same name and URL: the same namespace, the same volume
    r = d.cli("source", "add", "app", str(proj))
    assert r.returncode == 0, r.stdout + r.stderr
    d.wait_running("v")
    r = d.cli("exec", "v", "--", "cat", "/seed/storage/data/f")
    assert r.stdout == "kept\n", r.stdout + r.stderr


# 13 --------------------------------------------------------------------------------
def test_a_force_push_deploys_the_forced_commit(daemons):
    d = daemons(webhook=False)
    repo = Repo()
    base = repo.commit_push({"web": httpd(8201, 1)}, "one")
    add_git(d, "app", repo, secret=False)
    wait_content(d, 8201, "v1")
    c2 = repo.commit_push({"web": httpd(8201, 2)}, "two")
    apply(d, "app")
    wait_content(d, 8201, "v2")
    git("reset", "-q", "--hard", base, cwd=repo.work)
    forced = repo.commit({"web": httpd(8201, 3)}, "rewritten")
    repo.push(force=True)
    assert forced != c2
    apply(d, "app")
    wait_content(d, 8201, "v3")
    src = d.sources()["app"]
    assert src["revision"] == forced, src
    assert d.history("app")[-1]["revision"] == forced


# 14 --------------------------------------------------------------------------------
def test_a_restarted_seedd_serves_its_sources_again(daemons):
    """Sources are kept in the state database: a new seedd on the same state directory
    serves every one (a directory, a git repository without --ref and with a webhook
    secret), at their last generation, and takes webhooks for them."""
    d = daemons()
    repo = Repo()
    repo.commit_push({"g": httpd(8231, 1)}, "one")
    add_git(d, "git", repo)
    add_dir(d, "dir", {"p": httpd(8232, 1)})
    wait_content(d, 8231, "v1")
    wait_content(d, 8232, "v1")
    srcs = d.sources()
    d.stop(signal.SIGTERM)
    d.start()
    d.wait(lambda: set(d.sources()) == {"git", "dir"} and not any(x["applying"] for x in d.sources().values()),
           20, "both sources back")
    d.wait_running("g", "p")
    wait_content(d, 8231, "v1")
    wait_content(d, 8232, "v1")
    again = d.sources()
    for name in ("git", "dir"):
        for k in ("url", "ref", "revision", "webhook", "namespace"):
            assert again[name][k] == srcs[name][k], (name, k, srcs[name], again[name])
    c2 = repo.commit_push({"g": httpd(8231, 2)}, "two")
    code, text, _ = github_push(d, "git", c2)
    assert code == 202, text
    wait_content(d, 8231, "v2")


# Instances outlive the daemon (issue 8, item 8) ------------------------------------
def httpd_pids(d):
    """Host PIDs of the busybox httpd servers in the daemon's cgroups: not the children a
    server forks for each connection (the poller keeps one busy now and then)."""
    procs = {}
    for p in d.cgroup_procs():
        try:
            cmd = open(f"/proc/{p}/cmdline", "rb").read()
            ppid = int(open(f"/proc/{p}/status").read().split("PPid:")[1].split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if b"httpd" in cmd:
            procs[p] = ppid
    return [p for p, ppid in procs.items() if ppid not in procs]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_seedd_restarted_while_a_client_polls_interrupts_nothing(daemons, sig):
    d = daemons(webhook=False)
    spec = {"a": httpd(8211, 1, storage=True), "b": httpd(8212, 1)}
    add_dir(d, "app", spec)
    wait_content(d, 8211, "v1")
    wait_content(d, 8212, "v1")
    before = pids(d, "a", "b")
    poll = d.poller(8211)
    time.sleep(0.5)
    d.stop(sig)
    time.sleep(1)                       # no daemon at all for a while
    assert d.http(8212) == "v1\n", "an instance stopped answering while no seedd ran"
    d.start()
    d.wait_running("a", "b")
    time.sleep(1)
    rep = poll.stop()
    print(f"\n{sig.name}: {rep['ok']} ok, {rep['failed']} failed {rep['errors'][:3]}")
    assert rep["failed"] == 0 and rep["bodies"] == ["v1"], rep
    assert pids(d, "a", "b") == before
    assert len(httpd_pids(d)) == 2
    # adopted, not merely left alone: the daemon still manages them
    r = d.cli("exec", "a", "--", "true")
    assert r.returncode == 0, r.stderr
    assert generations(d, "app")[-1] >= 1


def test_kill_9_in_the_middle_of_a_rolling_rollout(daemons):
    d = daemons(webhook=False)
    spec = {"web": httpd(8221, 1, rollout="rolling", storage=True, delay=2)}
    proj = add_dir(d, "app", spec)
    d.wait(lambda: d.http(8221) == "v1\n", 20, "v1")
    assert d.cli("exec", "web", "--", "sh", "-c", "echo intact > /seed/storage/data/f").returncode == 0
    old = d.ps()["web"]["pid"]
    poll = d.poller(8221)

    write_spec(proj, {"web": httpd(8221, 2, rollout="rolling", storage=True, delay=2)})
    applying = subprocess.Popen([SEED, "--state-dir", str(d.state), "apply", "app"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    d.wait(lambda: (d.ps() or {}).get("web", {}).get("rollout"), 10, "the rollout under way")
    d.stop(signal.SIGKILL)
    applying.wait(30)
    d.start()
    # The new daemon applies the source at start, which may roll out again: wait for the
    # source to converge (seed apply returns once it has), then for the instance.
    r = d.cli("apply", "app")
    assert r.returncode == 0, r.stdout + r.stderr
    # converged: the old generation or the new one, one copy only
    def converged():
        web = (d.ps() or {}).get("web", {})
        return web.get("state") == "running" and not web.get("rollout")
    d.wait(converged, 30, "converged")
    time.sleep(3)                       # a second copy would be listening by now
    assert len([i for i in d.ps_list() if i["name"] == "web"]) == 1
    assert len(httpd_pids(d)) == 1, httpd_pids(d)
    body = d.http(8221)
    assert body in ("v1\n", "v2\n"), body
    rep = poll.stop()
    print(f"\nkill -9 mid-rollout: {rep['ok']} ok, {rep['failed']} failed {rep['errors'][:3]}; "
          f"old pid {old}, now {d.ps()['web']['pid']}")
    assert rep["failed"] == 0, rep
    r = d.cli("exec", "web", "--", "cat", "/seed/storage/data/f")
    assert r.stdout == "intact\n", r.stdout + r.stderr

    # seed down: every instance stops; nothing is left behind
    r = d.cli("down")
    assert r.returncode == 0, r.stdout + r.stderr
    d.proc.wait(30)
    assert not d.cgroup_procs()
    assert d.loop_devices() == []
    assert d.host_mounts() == []
    leftover = [p for c in d.cgroup_dirs() for p in c.iterdir() if p.is_dir()]
    assert leftover == [], leftover


def test_adopted_instance_gets_its_shoots_back(daemons):
    """The shoot templates of an instance end with the daemon that made them; the next
    seedd gives the adopted instance new ones, on the same volumes."""
    d = daemons(webhook=False)
    add_dir(d, "app", {"s": {"root": "host", "shoot": {"enable": True}, "storage": {"data": "8Mi"},
                             "processes": {"t": {"command": ["sh", "-c",
                                                             "echo kept > /seed/storage/data/m; exec sleep 100000"]}}}})
    d.wait_running("s")

    def shoot():
        r = d.cli("exec", "s", "--", "seed-shoot", "cat", "/seed/storage/data/m", timeout=60)
        return r.stdout if r.returncode == 0 else None
    assert d.wait(shoot, 30, "a shoot") == "kept\n"
    before = pids(d, "s")
    d.stop(signal.SIGTERM)
    d.start()
    d.wait_running("s")
    assert pids(d, "s") == before
    assert d.wait(shoot, 30, "a shoot after the restart") == "kept\n"


def test_poll_applies_a_pushed_commit_without_a_webhook(daemons):
    d = daemons(webhook=False)
    repo = Repo()
    repo.commit_push({"p": httpd(8241, 1)}, "one")
    r = d.cli("source", "add", "polled", str(repo.bare), "--poll", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_content(d, 8241, "v1")
    repo.commit_push({"p": httpd(8241, 2)}, "two")
    wait_content(d, 8241, "v2", timeout=30)
    hist = json.loads(d.cli("history", "polled", "--json").stdout)
    assert [h["trigger"] for h in hist] == ["source-add", "poll"], hist


def test_a_burst_of_pushes_coalesces(daemons):
    """Five webhooks in a burst: each is answered 202 at once, the newest commit ends up
    served, and at most two applies run (the first; the others, arriving while it runs,
    coalesce into one)."""
    d = daemons()
    repo = Repo()
    repo.commit_push({"p": httpd(8251, 0)}, "zero")
    add_git(d, "b", repo)
    wait_content(d, 8251, "v0")
    # five commits, one push, then their five webhooks at once (as a provider sends
    # them after a push of several commits by several people)
    commits = [repo.commit({"p": httpd(8251, v, rollout="rolling")}, f"v{v}") for v in range(1, 6)]
    repo.push()
    for c in commits:
        status, _, took = github_push(d, "b", c)
        assert status == 202 and took < 1.0, (status, took)
    wait_content(d, 8251, "v5", timeout=60)
    d.wait(lambda: not d.sources()["b"]["applying"], 30, "the applies to end")
    hist = json.loads(d.cli("history", "b", "--json").stdout)
    pushed = [h for h in hist if h["trigger"] == "webhook"]
    assert pushed and pushed[-1]["revision"] == commits[-1], hist
    assert len(pushed) <= 2, [h["revision"] for h in pushed]



def keeper_of(d):
    """The PIDs of the keepers in the daemon's mount namespace (the node's)."""
    ns = os.readlink(f"/proc/{d.pid}/ns/mnt")
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if open(f"/proc/{p}/comm").read().strip() == "seed-keeper" and os.readlink(f"/proc/{p}/ns/mnt") == ns:
                found.append(int(p))
        except OSError:
            pass
    return found


def test_a_killed_keeper_is_replaced(daemons):
    """kill -9 of the keeper while seedd runs: the daemon starts a new one, the published
    ports answer again, the instance keeps its PID, and seed down still cleans up."""
    d = daemons(webhook=False)
    add_dir(d, "app", {"w": httpd(8261, 1)})
    wait_content(d, 8261, "v1")
    before = pids(d, "w")
    keepers = keeper_of(d)
    assert len(keepers) == 1, keepers
    os.kill(keepers[0], signal.SIGKILL)
    wait_content(d, 8261, "v1")
    assert pids(d, "w") == before
    assert "keeper-died" in d.cli("events").stdout
    new = keeper_of(d)
    assert len(new) == 1 and new != keepers, (keepers, new)
    r = d.cli("down")
    assert r.returncode == 0, r.stdout + r.stderr
    d.proc.wait(30)
    assert not d.cgroup_procs()


def test_sighup_reads_a_rotated_webhook_secret(daemons):
    d = daemons()
    repo = Repo()
    c1 = repo.commit_push({"r": httpd(8271, 1)}, "one")
    f = workdir() / "secret"
    f.write_text(SECRET + "\n")
    r = d.cli("source", "add", "rot", str(repo.bare), "--webhook-secret-file", str(f))
    assert r.returncode == 0, r.stdout + r.stderr
    f.write_text("a-new-secret-after-rotation\n")
    assert github_push(d, "rot", c1)[0] == 202            # not re-read yet
    d.proc.send_signal(signal.SIGHUP)
    d.wait(lambda: github_push(d, "rot", c1)[0] == 401, 10, "the old secret refused")
    assert github_push(d, "rot", c1, secret="a-new-secret-after-rotation")[0] == 202
