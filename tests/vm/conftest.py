"""The check-vm smoke suite runs on a cgroup v2-only host: the guest `make check-vm`
boots (scripts/vm/), or any stock Debian 12 / Ubuntu 22.04+ machine. It reuses the
end-to-end helpers of tests/e2e/seedtest.py."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "e2e"))
