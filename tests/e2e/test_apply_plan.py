"""The plan `seed apply --json` answers with, once the apply is done, still names what
ran before it: an unchanged instance moves to the new project and a replaced one goes
away during the apply, and the old identities must outlive both (they were read from
freed memory: empty or missing oldIdentity, and now and then no answer at all)."""
import json

from seedtest import make_project


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
