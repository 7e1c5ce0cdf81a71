"""A corpus of broken projects (tests/e2e/broken/<case>/): `seed eval` must exit 1,
start nothing, and report exactly the expected errors — each at its file and full
option path, with the expected words in the message — all in one run."""
import json
import pathlib

import pytest

from conftest import run

CORPUS = pathlib.Path(__file__).parent / "broken"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expect.json").exists())


@pytest.mark.parametrize("case", CASES)
def test_broken_project(seed, case):
    expect = json.loads((CORPUS / case / "expect.json").read_text())
    r = run([seed, "eval", str(CORPUS / case), "--json"])
    assert r.returncode == expect["exit"], r.stderr
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    got = json.loads(r.stdout)["errors"]
    got_at = {(e["file"], e["path"]): e["message"] for e in got}
    want_at = {(e["file"], e["path"]): e["contains"] for e in expect["errors"]}
    assert sorted(got_at) == sorted(want_at), json.dumps(got, indent=1)
    for key, words in want_at.items():
        assert words in got_at[key], f"{key}: {got_at[key]!r} lacks {words!r}"


@pytest.mark.parametrize("case", CASES)
def test_broken_project_text_output(seed_plain, case):
    """The human form lists the same errors as `file: path: message` lines."""
    expect = json.loads((CORPUS / case / "expect.json").read_text())
    r = run([seed_plain, "eval", str(CORPUS / case)])
    assert r.returncode == 1
    assert r.stdout == ""
    n = len(expect["errors"])
    assert f"has {n} error{'s' if n != 1 else ''}:" in r.stderr
    for e in expect["errors"]:
        prefix = f"  {e['file']}: {e['path']}: " if e["path"] else f"  {e['file']}: "
        assert any(line.startswith(prefix) and e["contains"] in line
                   for line in r.stderr.splitlines()), (prefix, r.stderr)


def test_too_many_instances(seed, tmp_path):
    (tmp_path / "seeds.json").write_text(json.dumps({f"i{n}": {} for n in range(10001)}))
    r = run([seed, "eval", str(tmp_path), "--json"], timeout=20)
    assert r.returncode == 1
    assert "at most 10000" in r.stdout
