"""Fetching git sources (src/source/fetch.c) through tests/unit/fetch-tool: a local
bare repository is the remote, commits are pushed from a work tree, and the tool
prints the fetch's result as JSON. Nothing here leaves loopback: the "ssh" remote is
a script given as GIT_SSH_COMMAND, the unreachable one is 127.0.0.1:1."""
import json
import os
import pathlib
import subprocess
import time

import pytest

from seedtest import BUILD, GIT_ENV, GitRepo, git, workdir

TOOL = str(BUILD / "tests" / "unit" / "fetch-tool")
ENV = GIT_ENV



def fetch(url, ref=None, cache=None, timeout=None, env=None, limit=60):
    cmd = [TOOL] + (["--timeout", str(timeout)] if timeout else []) + [str(url), ref or "-", str(cache)]
    r = subprocess.run(cmd, env=env or ENV, capture_output=True, text=True, timeout=limit)
    assert r.returncode in (0, 1), r.stderr
    out = json.loads(r.stdout)
    assert (r.returncode == 0) == ("commit" in out), out
    return out


class Repo(GitRepo):
    """A bare repository and a work tree that pushes to it."""

    def commit(self, files, msg="change", branch="main"):
        return self.commit_files(files, msg)


@pytest.fixture
def repo():
    r = Repo()
    r.first = r.commit({"seeds.json": '{"web": {}}\n', "bin/start.sh": ("#!/bin/sh\necho hi\n", 0o755),
                        "README": "plain\n"}, "first")
    r.push("main")
    return r


def test_branch_head_and_tree_content(repo):
    cache = workdir() / "src"
    out = fetch(repo.bare, None, cache)
    assert out["commit"] == repo.first
    assert out["uri"] == f"git+file://{repo.bare}"
    tree = pathlib.Path(out["tree"])
    assert tree == cache / "trees" / repo.first
    assert (tree / "seeds.json").read_text() == '{"web": {}}\n'
    assert os.stat(tree / "bin/start.sh").st_mode & 0o111 == 0o111
    assert os.stat(tree / "README").st_mode & 0o111 == 0
    assert not (tree / ".git").exists()
    assert out["warning"] is None
    # By branch name, and again: the tree is reused, not rewritten.
    mtime = os.stat(tree / "seeds.json").st_mtime_ns
    out = fetch(repo.bare, "main", cache)
    assert out["commit"] == repo.first and out["uri"].endswith("?ref=main")
    assert os.stat(tree / "seeds.json").st_mtime_ns == mtime
    # No temporary tree or index is left behind.
    assert sorted(p.name for p in (cache / "trees").iterdir()) == [repo.first]
    assert not (cache / "index.tmp").exists()


def test_tag_lightweight_and_annotated(repo):
    git("tag", "v1", cwd=repo.work)
    second = repo.commit({"seeds.json": '{"web": {"v": 2}}\n'})
    git("tag", "-a", "-m", "release 2", "v2", cwd=repo.work)
    repo.commit({"seeds.json": '{"web": {"v": 3}}\n'})
    repo.push("main", "v1", "v2")
    cache = workdir() / "src"
    assert fetch(repo.bare, "v1", cache)["commit"] == repo.first
    out = fetch(repo.bare, "refs/tags/v2", cache)
    assert out["commit"] == second  # peeled from the tag object
    assert json.loads((pathlib.Path(out["tree"]) / "seeds.json").read_text()) == {"web": {"v": 2}}


def test_file_url_and_work_tree(repo):
    cache = workdir() / "src"
    assert fetch(f"file://{repo.bare}", "main", cache)["commit"] == repo.first
    # A work tree is fetched as a repository: what is committed, not what is on disk.
    (repo.work / "seeds.json").write_text("uncommitted")
    out = fetch(repo.work, None, workdir() / "src")
    assert out["kind"] == "git" and out["commit"] == repo.first
    assert (pathlib.Path(out["tree"]) / "seeds.json").read_text() == '{"web": {}}\n'


def test_force_push_moves_the_tree(repo):
    cache = workdir() / "src"
    second = repo.commit({"seeds.json": '{"web": {"v": 2}}\n'})
    repo.push("main")
    assert fetch(repo.bare, "main", cache)["commit"] == second
    git("reset", "-q", "--hard", repo.first, cwd=repo.work)
    forced = repo.commit({"seeds.json": '{"web": {"forced": true}}\n'}, "forced")
    repo.push("main", force=True)
    out = fetch(repo.bare, "main", cache)
    assert out["commit"] == forced
    assert json.loads((pathlib.Path(out["tree"]) / "seeds.json").read_text()) == {"web": {"forced": True}}


def test_missing_ref_lists_branches(repo):
    repo.commit({"x": "1"}, branch="main")
    git("branch", "dev", cwd=repo.work)
    repo.push("main", "dev")
    out = fetch(repo.bare, "nope", workdir() / "src")
    assert out["error"] == 2
    assert out["message"] == f"ref 'nope' does not exist in {repo.bare} (branches: dev, main)"


def test_head_naming_a_missing_branch(repo):
    (repo.bare / "HEAD").write_text("ref: refs/heads/master\n")
    out = fetch(repo.bare, None, workdir() / "src")
    # git's ls-remote does not show where an unborn HEAD points; either way it says so.
    assert out["error"] == 2
    assert out["message"] == (f"the HEAD of {repo.bare} names no existing branch (branches: main); "
                              "give the branch with --ref")


def test_not_a_repository():
    plain = workdir()
    out = fetch(f"file://{plain}", None, workdir() / "src")
    assert out["error"] == 2
    assert out["message"] == f"fetching file://{plain}: '{plain}' does not appear to be a git repository"
    # An absolute path to a plain directory is a directory source: nothing to fetch.
    out = fetch(plain, None, workdir() / "src")
    assert out["kind"] == "dir" and out["tree"] == str(plain) and out["commit"] == ""
    out = fetch(f"path:{plain}/gone", None, workdir() / "src")
    assert out["message"] == f"source directory or repository {plain}/gone: No such file or directory"


def test_empty_repository():
    top = workdir()
    git("init", "-q", "--bare", str(top / "empty.git"))
    out = fetch(top / "empty.git", None, top / "src")
    assert out["message"] == (f"the HEAD of {top / 'empty.git'} names no existing branch "
                              "(it has no branches or tags); give the branch with --ref")


def test_unreachable_https_fails_fast():
    start = time.monotonic()
    out = fetch("https://127.0.0.1:1/x.git", None, workdir() / "src")
    assert time.monotonic() - start < 30
    assert out["message"].startswith("fetching https://127.0.0.1:1/x.git: unable to access")
    assert "Failed to connect" in out["message"] or "Connection refused" in out["message"]


def fake_ssh(top, body):
    script = top / "fake-ssh"
    script.write_text(f"#!/bin/sh\necho $$ > {top}/ssh.pid\n{body}\n")
    script.chmod(0o755)
    return dict(ENV, GIT_SSH_COMMAND=str(script))


def wait_gone(pid, seconds=10):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie is gone for our purposes (its parent, init here, reaps it).
        try:
            if pathlib.Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_timeout_kills_the_fetch():
    top = workdir()
    env = fake_ssh(top, "exec sleep 1000")
    start = time.monotonic()
    out = fetch("ssh://git@example.invalid/x.git", None, top / "src", timeout=2, env=env)
    took = time.monotonic() - start
    assert out["error"] == 110  # ETIMEDOUT
    assert out["message"] == "fetching ssh://git@example.invalid/x.git: timed out after 2 s"
    assert took < 30
    assert wait_gone(int((top / "ssh.pid").read_text()))


def test_ssh_errors_quote_git_and_ssh(tmp_path):
    top = workdir()
    env = fake_ssh(top, 'echo "Permission denied (publickey)." >&2; exit 255')
    out = fetch("git@example.invalid:o/r.git", "main", top / "src", env=env)
    assert out["uri"] == "git+ssh://git@example.invalid/o/r.git?ref=main"
    assert out["message"] == "fetching git@example.invalid:o/r.git: Permission denied (publickey)."


def test_password_is_hidden():
    out = fetch("https://bot:hunter2@127.0.0.1:1/x.git", None, workdir() / "src")
    assert "hunter2" not in out["message"] and "hunter2" not in out["uri"]
    assert "bot:***@127.0.0.1:1" in out["message"]


def test_parent_death_kills_the_fetch():
    """kill -9 of the process that started a fetch: the worker and its git go too."""
    top = workdir()
    env = fake_ssh(top, "exec sleep 1000")
    p = subprocess.Popen([TOOL, "ssh://example.invalid/x.git", "-", str(top / "src")], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pidfile = top / "ssh.pid"
    end = time.monotonic() + 20
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < end:
        time.sleep(0.05)
    ssh = int(pidfile.read_text())
    p.kill()
    p.wait()
    assert wait_gone(ssh)


def test_cancel_kills_the_fetch():
    top = workdir()
    env = fake_ssh(top, "exec sleep 1000")
    # Cancelled at once: whatever the worker had started is gone with it.
    r = subprocess.run([TOOL, "--cancel", "ssh://example.invalid/x.git", "-", str(top / "src")], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == "cancelled"
    time.sleep(0.5)
    if (top / "ssh.pid").exists():
        assert wait_gone(int((top / "ssh.pid").read_text()))


def test_environment_is_sanitized(repo):
    """The caller's GIT_DIR and friends do not leak into the fetch; hooks do not run."""
    env = dict(ENV, GIT_DIR="/nonexistent", GIT_WORK_TREE="/nonexistent", GIT_INDEX_FILE="/nonexistent/i")
    cache = workdir() / "src"
    assert fetch(repo.bare, None, cache, env=env)["commit"] == repo.first
    marker = cache / "hook-ran"
    hook = cache / "repo.git" / "hooks" / "reference-transaction"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    repo.commit({"x": "2"})
    repo.push("main")
    fetch(repo.bare, None, cache)
    assert not marker.exists()


def test_submodules_warn(repo):
    repo.commit({".gitmodules": '[submodule "lib"]\n\tpath = lib\n\turl = https://example.invalid/lib\n'})
    repo.push("main")
    out = fetch(repo.bare, None, workdir() / "src")
    assert "submodules" in out["warning"]


def test_prune_keeps_listed_trees(repo):
    cache = workdir() / "src"
    commits = [repo.first]
    assert fetch(repo.bare, None, cache)["commit"] == repo.first
    for i in range(2):
        commits.append(repo.commit({"seeds.json": f'{{"v": {i}}}\n'}))
        repo.push("main")
        assert fetch(repo.bare, None, cache)["commit"] == commits[-1]
    trees = cache / "trees"
    (trees / ".tmp-stale").mkdir()  # what a killed fetch leaves: pruned too
    r = subprocess.run([TOOL, "--prune", str(cache), commits[0], commits[2]], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "2", r.stdout
    assert sorted(p.name for p in trees.iterdir()) == sorted([commits[0], commits[2]])
    # A pruned commit comes back on the next fetch of it.
    git("push", "-q", "--force", "origin", f"{commits[1]}:refs/heads/main", cwd=repo.work)
    out = fetch(repo.bare, None, cache)
    assert out["commit"] == commits[1] and pathlib.Path(out["tree"]).is_dir()
