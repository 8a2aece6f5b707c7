"""``kbops serve``'s worker options: refused before anything starts when wrong, and documented in --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

KBOPS = Path(sys.executable).parent / "kbops"


def test_serve_refuses_a_worker_count_that_is_not_1_to_64_before_anything_starts(tmp_path):
    for bad in ("0", "-1", "two", "65"):
        proc = subprocess.run([str(KBOPS), "serve", "--workers", bad], capture_output=True, text=True, timeout=120,
                              env={"KBOPS_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
        assert proc.returncode == 2 and "is not a worker count" in proc.stderr, (bad, proc.stderr[-500:])


def test_serve_help_names_the_worker_and_access_log_options():
    out = subprocess.run([str(KBOPS), "serve", "--help"], capture_output=True, text=True, timeout=120).stdout
    assert "--workers" in out and "--no-access-log" in out
