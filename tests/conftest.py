"""Shared fixtures: a real KB database (SQLite, or PostgreSQL when
KBOPS_TEST_DATABASE_URL is set), a copy of the sample store, the real
embedding model (loaded once), and factories named for states."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from kbops.config import Settings
from kbops.db import init_db
from kbops.index.embedder import Embedder

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "sample_store"
PG_URL = os.environ.get("KBOPS_TEST_DATABASE_URL")
# The ONNX export of the bundled model is built once (atomically) and shared by
# every test, every subprocess they start, and `make demo`.
MODELS_DIR = os.environ.setdefault("KBOPS_MODELS_DIR", str(ROOT / "var" / "models"))


def datasets_dir() -> Path | None:
    """Real public datasets: $KBOPS_DATASETS, else ../shared/datasets next to the checkout."""
    candidates = [os.environ.get("KBOPS_DATASETS"), str(ROOT.parent / "shared" / "datasets")]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return None


def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite"] + (["postgresql"] if PG_URL else []))
def database_url(request, tmp_path) -> str:
    """Every database test runs on SQLite, and on PostgreSQL when configured."""
    if request.param == "postgresql":
        _reset_postgres(PG_URL)
        return PG_URL
    return f"sqlite:///{tmp_path / 'kb.sqlite'}"


@pytest.fixture(scope="session")
def embed_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache") / "embeddings.sqlite"


@pytest.fixture
def store(tmp_path) -> Path:
    """A private copy of the bundled sample store (tests may edit it)."""
    dest = tmp_path / "store"
    shutil.copytree(SAMPLE, dest)
    return dest


@pytest.fixture
def settings(tmp_path, database_url, store, embed_cache) -> Settings:
    """Settings for an initialised, empty KB."""
    s = Settings.load(
        env={
            "KBOPS_HOME": str(tmp_path / "home"),
            "KBOPS_DATABASE_URL": database_url,
            "KBOPS_SOURCES": str(store / "sources.toml"),
            "KBOPS_EMBED_CACHE": str(embed_cache),
            "KBOPS_MODELS_DIR": MODELS_DIR,
        },
        config_file=None,
    )
    init_db(s)
    return s


@pytest.fixture(scope="session")
def embedder(embed_cache):
    """The real bundled model through the default backend (loaded once for the session),
    with the session's vector cache."""
    defaults = Settings.load(env={"KBOPS_MODELS_DIR": MODELS_DIR}, config_file=None)
    e = Embedder(defaults.embedding_model, embed_cache, backend=defaults.embed_backend, models_dir=defaults.models_dir,
                 zh_reader=defaults.embed_model_zh)
    _ = e.dim
    return e
