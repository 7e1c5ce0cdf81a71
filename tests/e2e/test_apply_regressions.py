"""Applies, as bench/deploy found them wanting.

- The plan `seed apply --json` answers with, once the apply is done, still names what ran
  before it: an unchanged instance moves to the new project and a replaced one goes away
  during the apply, and the old identities must outlive both (they were read from freed
  memory: empty or missing oldIdentity, and now and then no answer at all).
- A rolling rollout starts the new instance beside the old one, which keeps serving until
  the switch (the new one's start took the old one's host-side veth, by name, and cut it
  off the network: requests in flight stalled until the switch).
"""
import json
import subprocess
import time

from seedtest import SEED, make_project


def spec(version):
    return {name: {"root": "rootfs", "size": "xs", "rollout": "recreate",
                   "env": {"V": version if name == "c" else "1"},
                   "processes": {"main": {"command": ["sleep", "100000"]}}}
            for name in ("a", "b", "c")}


def apply_json(node):
    r = node.cli("apply", "--json")
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)
    assert len(results) == 1, results
    return {st["name"]: st for st in results[0]["plan"]}


def test_noop_and_replace_answer_old_identities(nodes):
    project = make_project(spec("1"))
    node = nodes(project)
    before = node.wait_running("a", "b", "c")
    identity = {k: v["identity"] for k, v in before.items()}
    for _ in range(3):
        plan = apply_json(node)
        for name in ("a", "b", "c"):
            assert plan[name]["action"] == "unchanged", plan[name]
            assert plan[name].get("oldIdentity") == identity[name], plan[name]
            assert plan[name]["identity"] == identity[name], plan[name]
    after = node.ps()
    assert {k: v["pid"] for k, v in after.items()} == {k: v["pid"] for k, v in before.items()}

    (project / "seeds.json").write_text(json.dumps(spec("2"), indent=1))
    plan = apply_json(node)
    assert plan["c"]["action"] == "replace", plan["c"]
    assert plan["c"].get("oldIdentity") == identity["c"], plan["c"]
    assert plan["c"]["identity"] != identity["c"], plan["c"]
    for name in ("a", "b"):
        assert plan[name].get("oldIdentity") == identity[name], plan[name]


def web(version, delay):
    return {"web": {"root": "rootfs", "size": "xs", "rollout": "rolling", "expose": {"http": 8080},
                    "env": {"V": version, "D": str(delay)},
                    "processes": {"httpd": {"command": [
                        "/bin/sh", "-c", "echo $V > /tmp/i.html; sleep $D; exec httpd -f -p 8080 -h /tmp"]}}}}


def test_rolling_old_instance_serves_until_the_switch(nodes):
    project = make_project(web("one", 0))
    node = nodes(project)
    node.wait_running("web")
    node.wait(lambda: (node.http(8080, "/i.html") or "").strip() == "one", what="v1 serving")
    # The new version takes 4 s to listen: the old one must answer all that time.
    (project / "seeds.json").write_text(json.dumps(web("two", 4), indent=1))
    apply = subprocess.Popen([SEED, "--state-dir", str(node.state), "apply"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        node.wait(lambda: ((node.ps() or {}).get("web", {}).get("rollout") or {}).get("state") == "running",
                  what="the new instance running beside the old")
        answers = []
        for _ in range(5):
            answers.append((node.http(8080, "/i.html", timeout=2) or "").strip())
            time.sleep(0.2)
        assert answers == ["one"] * 5, answers
        out, _ = apply.communicate(timeout=60)
        assert apply.returncode == 0, out
    finally:
        if apply.poll() is None:
            apply.kill()
            apply.wait()
    assert (node.http(8080, "/i.html") or "").strip() == "two"
