"""The C sources follow .clang-format (clang-format 14 from Debian)."""
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_clang_format_clean():
    files = subprocess.run(["git", "ls-files", "*.c", "*.h"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    if not files:  # not a git checkout: format whatever is there
        files = [str(p.relative_to(ROOT)) for p in ROOT.glob("src/**/*.[ch]")]
    assert files
    r = subprocess.run(["clang-format", "--dry-run", "--Werror", *files], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, "run `make format`:\n" + r.stderr[:4000]
