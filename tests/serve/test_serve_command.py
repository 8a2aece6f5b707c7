"""``kbops serve``'s worker options: refused before anything starts when wrong, documented in --help, and what each worker gets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kbops.cli.bot import worker_environment
from kbops.config import Settings

KBOPS = Path(sys.executable).parent / "kbops"


def test_serve_refuses_a_worker_count_that_is_not_1_to_64_before_anything_starts(tmp_path):
    for bad in ("0", "-1", "two", "65"):
        proc = subprocess.run([str(KBOPS), "serve", "--workers", bad], capture_output=True, text=True, timeout=120,
                              env={"KBOPS_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
        assert proc.returncode == 2 and "is not a worker count" in proc.stderr, (bad, proc.stderr[-500:])


def test_serve_help_names_the_worker_and_access_log_options():
    out = subprocess.run([str(KBOPS), "serve", "--help"], capture_output=True, text=True, timeout=120).stdout
    assert "--workers" in out and "--no-access-log" in out


def test_workers_share_the_cores_for_embedding_threads_and_query_helpers():
    """N workers on C cores: C // N embedding threads each and one helper fewer; what the operator set is kept."""
    plain = Settings.load(env={}, config_file=None)
    assert worker_environment(plain, 2, 2) == {"KBOPS_EMBED_THREADS": "1", "KBOPS_QUERY_HELPERS": "0"}
    assert worker_environment(plain, 2, 16) == {"KBOPS_EMBED_THREADS": "8", "KBOPS_QUERY_HELPERS": "7"}
    assert worker_environment(plain, 4, 2) == {"KBOPS_EMBED_THREADS": "1", "KBOPS_QUERY_HELPERS": "0"}
    chosen = Settings.load(env={"KBOPS_EMBED_THREADS": "3", "KBOPS_QUERY_HELPERS": "2"}, config_file=None)
    assert worker_environment(chosen, 2, 16) == {}
