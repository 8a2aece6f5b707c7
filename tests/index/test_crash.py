"""A publish killed at any point leaves the previous release serving, and the
next publish succeeds. The real `kbops publish` runs in a child process that
SIGKILLs itself at a chosen point of the build (no clean-up code gets to run,
as with a power cut or the OOM killer)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from kbops.index import release as rel
from kbops.pipeline import activate_release, build_release, decide, ingest
from kbops.serve.retriever import Retriever
from tests.helpers import list_items

# Where the child dies: (function in kbops.index.release to wrap, when to die).
KILL_POINTS = {
    "while writing index files": ("_write", "after:entries.json"),
    "manifest written, directory not renamed": ("_write", "after:manifest.json"),
    "release renamed, pointer not moved": ("activate", "before"),
    "new pointer written, not yet renamed over ACTIVE": ("_write", "after:.ACTIVE"),
}

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from kbops.index import release
    target, when = sys.argv[1], sys.argv[2]
    original = getattr(release, target)

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def wrapped(*args, **kwargs):
        if when == "before":
            die()
        result = original(*args, **kwargs)
        name = os.path.basename(str(args[0]))
        if when.startswith("after:") and name.startswith(when[6:]):
            die()
        return result

    setattr(release, target, wrapped)
    from kbops.cli import main
    sys.exit(main(["publish", "--full"]))
    """
)


def _env(settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KBOPS_")}
    env.update(
        KBOPS_HOME=str(settings.home),
        KBOPS_DATABASE_URL=settings.database_url,
        KBOPS_SOURCES=str(settings.sources_file),
        KBOPS_EMBED_CACHE=str(settings.embed_cache),
        KBOPS_MODELS_DIR=str(settings.models_dir),
        HF_HUB_OFFLINE="1",
    )
    return env


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_publish_killed_mid_build_leaves_the_previous_release_serving(settings, embedder, point):
    ingest(settings)
    decide(settings, [i.id for i in list_items(settings)], "approve", by="lin")
    first = build_release(settings, embedder=embedder).release_id
    activate_release(settings, first, embedder=embedder)

    target, when = KILL_POINTS[point]
    proc = subprocess.run([sys.executable, "-c", CHILD, target, when], env=_env(settings), capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, f"the child was not killed at {point!r}: rc={proc.returncode} {proc.stderr[-500:]}"

    assert rel.active_release_id(settings.index_dir) == first, "the pointer never names a half-built release"
    answer = Retriever(settings, embedder=embedder).search("How much is the Lumi Smart Rice Cooker 3L?")
    assert answer.release_id == first and not answer.handoff and "299.00" in answer.top.answer

    again = build_release(settings, full=True, embedder=embedder)
    activate_release(settings, again.release_id, embedder=embedder)
    active = rel.active_release_id(settings.index_dir)
    assert active not in (None, first)
    rel.read_manifest(settings.index_dir, active, verify=True)
    assert not list(rel.releases_dir(settings.index_dir).glob(".tmp-*")), "leftovers of the killed build are cleaned up"
    assert not list(settings.index_dir.glob(".ACTIVE.*.tmp"))
    assert Retriever(settings, embedder=embedder).search("退款多久能到账").release_id == active
