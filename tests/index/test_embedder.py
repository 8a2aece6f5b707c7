"""The embedder's backends: ONNX Runtime vectors agree with sentence-transformers' on real
English and Chinese text, the backend is part of the model id (cache and releases never mix
backends), the exported model is built atomically, and a missing runtime is a clear error."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kbops.config import Settings
from kbops.errors import ConfigError, ReleaseError
from kbops.index import onnx_backend
from kbops.index import release as rel
from kbops.index.embedder import Embedder
from kbops.pipeline import activate_release, build_release, decide, ingest
from tests.conftest import MODELS_DIR, datasets_dir
from tests.helpers import list_items

pytest.importorskip("onnxruntime", reason="the ONNX backends need onnxruntime (pyproject dependency)")

MODEL = Settings.load(env={}, config_file=None).embedding_model


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def onnx_embedders(models_dir) -> dict[str, Embedder]:
    """Both ONNX backends, built once for the session from the bundled model."""
    out = {}
    for backend in onnx_backend.ONNX_BACKENDS:
        e = Embedder(MODEL, None, backend=backend, models_dir=models_dir)
        _ = e.dim
        out[backend] = e
    return out


@pytest.fixture(scope="session")
def real_texts() -> tuple[list[str], list[str]]:
    """150 Bitext utterances (English) and 150 JDDC customer turns (Chinese)."""
    d = datasets_dir()
    if d is None:
        pytest.skip("real datasets not found: set KBOPS_DATASETS to the shared datasets folder")
    with (d / "bitext" / "bitext_customer_support_4514.csv").open(encoding="utf-8") as fh:
        en = [r["instruction"] for r in csv.DictReader(fh)][::30][:150]
    zh = []
    with (d / "jddc" / "chat_0.1per.txt").open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 7 and parts[2] == "0" and parts[6].strip():
                zh.append(parts[6])
    return en, list(dict.fromkeys(zh))[::25][:150]


@pytest.mark.slow
def test_onnx_backends_agree_with_sentence_transformers_on_real_text(onnx_embedders, real_texts):
    en, zh = real_texts
    assert len(en) == 150 and len(zh) == 150
    reference = Embedder(MODEL, None, backend="torch")
    ref = reference.encode(en + zh)
    fp32 = (onnx_embedders["onnx"].encode(en + zh) * ref).sum(axis=1)
    assert fp32.min() >= 0.9999, f"float32 ONNX disagrees: min cosine {fp32.min():.5f}"
    int8 = (onnx_embedders["onnx-int8"].encode(en + zh) * ref).sum(axis=1)
    for lang, cos in (("en", int8[:150]), ("zh", int8[150:])):
        assert np.median(cos) >= 0.99, f"int8 {lang}: median cosine {np.median(cos):.4f}"
        assert np.percentile(cos, 1) >= 0.97, f"int8 {lang}: 1st-percentile cosine {np.percentile(cos, 1):.4f}"
    # the [UNK] share comes from the same tokenizer either way
    for text in en[:20] + zh[:20]:
        assert onnx_embedders["onnx"].unk_share(text) == pytest.approx(reference.unk_share(text))
    assert onnx_embedders["onnx"].dim == reference.dim == 384


def test_query_vector_matches_the_batch_vector_and_rows_keep_their_order(onnx_embedders):
    e = onnx_embedders["onnx"]
    texts = ["How do I get a refund?", "退货运费谁出", "a much longer question about delivery times to the islands " * 3, "ok"]
    batch = e.encode(texts)
    for i, t in enumerate(texts):  # length-sorted batching must put every row back in place
        assert float(e.encode_query(t)[0] @ batch[i]) > 0.9999
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    assert e.encode([]).shape == (0, 384)


def test_backend_is_part_of_the_model_id_and_the_cache_key(tmp_path, models_dir, onnx_embedders):
    cache = tmp_path / "embeddings.sqlite"
    texts = ["Where is my parcel?", "发票怎么开"]
    torch_e = Embedder(MODEL, cache, backend="torch")
    onnx_e = Embedder(MODEL, cache, backend="onnx", models_dir=models_dir)
    assert torch_e.model_id != onnx_e.model_id and "onnx" in onnx_e.model_id
    torch_e.encode(texts)
    onnx_e.encode(texts)
    assert onnx_e.stats.misses == 2 and onnx_e.stats.hits == 0, "switching backend must not reuse vectors"
    onnx_e.encode(texts)
    assert onnx_e.stats.hits == 2
    with sqlite3.connect(cache) as conn:
        models = {m for (m,) in conn.execute("SELECT DISTINCT model FROM vectors")}
    assert models == {torch_e.model_id, onnx_e.model_id}


@pytest.mark.slow
def test_release_built_with_another_backend_is_refused_and_publish_rebuilds(settings, models_dir, tmp_path):
    ingest(settings)
    decide(settings, [i.id for i in list_items(settings)], "approve", by="lin")
    cache = tmp_path / "private-cache.sqlite"  # holds the torch vectors only
    first = build_release(settings, embedder=Embedder(settings.embedding_model, cache, backend="torch"))
    activate_release(settings, first.release_id)
    onnx_e = Embedder(settings.embedding_model, cache, backend="onnx", models_dir=models_dir)
    with pytest.raises(ReleaseError, match="built with model"):
        rel.load_release(settings.index_dir, first.release_id, expect_model=onnx_e.model_id, expect_dim=384)
    # --full: publish's no-change shortcut compares the KB digest only, not the model (see report)
    second = build_release(settings, full=True, embedder=onnx_e)
    assert second.mode == "full" and second.cache_misses == second.vectors  # no torch vector reused
    assert rel.read_manifest(settings.index_dir, second.release_id)["model"] == onnx_e.model_id
    rel.load_release(settings.index_dir, second.release_id, expect_model=onnx_e.model_id, expect_dim=384)


@pytest.mark.slow
def test_a_killed_build_leaves_nothing_that_is_used(tmp_path):
    models = tmp_path / "models"
    code = (
        "from pathlib import Path; from kbops.index import onnx_backend as o; "
        f"o.ensure_model(Path({MODEL!r}), 'killed', 'onnx', Path({str(models)!r}))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2])
    deadline = time.monotonic() + 120
    try:  # kill it once the export has started writing into its temporary directory
        while time.monotonic() < deadline and not any(p.is_file() for p in models.glob(".tmp-*/*")):
            assert proc.poll() is None, "the build finished before it could be killed"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert list(models.glob(".tmp-*")), "the killed build left its temporary directory behind"
    target = models / f"killed-onnx-{onnx_backend.RECIPE}"
    assert not target.exists()
    # the next build does not pick up the half-written files and produces a verified model
    path = onnx_backend.ensure_model(Path(MODEL), "killed", "onnx", models)
    assert path == target / "model.onnx"
    assert json.loads((target / "build.json").read_text())["sha256"] == onnx_backend._sha256(path)


@pytest.mark.slow
def test_a_damaged_model_directory_is_moved_aside_and_rebuilt(tmp_path):
    models = tmp_path / "models"
    target = models / f"damaged-onnx-{onnx_backend.RECIPE}"
    target.mkdir(parents=True)
    (target / "model.onnx").write_bytes(b"\x08\x07truncated")
    (target / "build.json").write_text(json.dumps({"sha256": "0" * 64}))
    path = onnx_backend.ensure_model(Path(MODEL), "damaged", "onnx", models)
    assert path.stat().st_size > 1_000_000
    assert list(models.glob(".broken-damaged-onnx-*"))
    e = onnx_backend.OnnxEncoder(Path(MODEL), path)
    assert e.encode(["hello"]).shape == (1, 384)


def test_missing_onnxruntime_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(ConfigError, match=r"onnxruntime.*pip install onnxruntime==.*KBOPS_EMBED_BACKEND=torch"):
        Embedder(MODEL, None, backend="onnx-int8", models_dir=tmp_path)
    Embedder(MODEL, None, backend="torch")  # the fallback does not need it


def test_unknown_backend_is_refused_in_settings_and_embedder(tmp_path):
    with pytest.raises(ConfigError, match="embed_backend='fast'.*KBOPS_EMBED_BACKEND"):
        Settings.load(env={"KBOPS_HOME": str(tmp_path), "KBOPS_EMBED_BACKEND": "fast"}, config_file=None)
    assert Settings.load(env={"KBOPS_HOME": str(tmp_path), "KBOPS_EMBED_BACKEND": "ONNX-INT8"}, config_file=None).embed_backend == "onnx-int8"
    with pytest.raises(ConfigError, match="embed_backend='gpu'"):
        Embedder(MODEL, None, backend="gpu")


def test_unknown_backend_is_one_line_on_the_command_line(tmp_path):
    env = {**os.environ, "KBOPS_HOME": str(tmp_path), "KBOPS_EMBED_BACKEND": "fast"}
    out = subprocess.run([sys.executable, "-m", "kbops.cli", "releases"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: embed_backend='fast'") and "Traceback" not in out.stderr


def test_a_pipeline_the_onnx_path_cannot_reproduce_is_refused(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    for f in Path(MODEL).iterdir():
        (model / f.name).symlink_to(f)
    (model / "modules.json").unlink()
    modules = json.loads((Path(MODEL) / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (model / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ConfigError, match=r"pipeline \['Transformer', 'Pooling', 'Dense', 'Normalize'\].*KBOPS_EMBED_BACKEND=torch"):
        Embedder(str(model), None, backend="onnx", models_dir=tmp_path / "models")


def test_from_settings_uses_the_configured_backend_and_the_kb_home(tmp_path):
    s = Settings.load(env={"KBOPS_HOME": str(tmp_path), "KBOPS_EMBED_BACKEND": "onnx-int8"}, config_file=None)
    e = Embedder.from_settings(s)
    assert e.backend == "onnx-int8" and e.models_dir == s.home / "models"
    assert Settings.load(env={"KBOPS_HOME": str(tmp_path)}, config_file=None).embed_backend == "onnx"


def test_from_settings_shares_one_instance_per_model_backend_and_cache(tmp_path):
    """Loading a model costs seconds: the gate, mining, publish and the retriever share one embedder."""
    s = Settings.load(env={"KBOPS_HOME": str(tmp_path)}, config_file=None)
    assert Embedder.from_settings(s) is Embedder.from_settings(Settings.load(env={"KBOPS_HOME": str(tmp_path)}, config_file=None))
    other_cache = Settings.load(env={"KBOPS_HOME": str(tmp_path), "KBOPS_EMBED_CACHE": str(tmp_path / "other.sqlite")}, config_file=None)
    other_backend = Settings.load(env={"KBOPS_HOME": str(tmp_path), "KBOPS_EMBED_BACKEND": "torch"}, config_file=None)
    assert Embedder.from_settings(other_cache) is not Embedder.from_settings(s)
    assert Embedder.from_settings(other_backend) is not Embedder.from_settings(s)
    assert Embedder.from_settings(s, batch_size=8) is not Embedder.from_settings(s)
    assert Embedder(s.embedding_model, s.embed_cache) is not Embedder(s.embedding_model, s.embed_cache)  # the constructor: private


def test_a_model_that_cannot_be_loaded_is_not_remembered(tmp_path):
    broken = Settings.load(env={"KBOPS_HOME": str(tmp_path), "KBOPS_EMBEDDING_MODEL": str(tmp_path / "missing")}, config_file=None)
    for _ in range(2):
        with pytest.raises(ConfigError, match="no model files"):
            Embedder.from_settings(broken)


def test_query_and_passage_prefixes_are_applied_and_part_of_the_model_id(tmp_path):
    """e5-style models need "query: " / "passage: " prefixes; a release built without them is another model."""
    base = Settings.load(env={"KBOPS_HOME": str(tmp_path), "KBOPS_MODELS_DIR": MODELS_DIR}, config_file=None)
    prefixed = Settings.load(env={"KBOPS_HOME": str(tmp_path), "KBOPS_MODELS_DIR": MODELS_DIR,
                                  "KBOPS_EMBED_QUERY_PREFIX": "query: ", "KBOPS_EMBED_PASSAGE_PREFIX": "passage: "}, config_file=None)
    plain, e5 = Embedder.from_settings(base), Embedder.from_settings(prefixed)
    assert e5.model_id != plain.model_id and e5.main_model_id.startswith(plain.main_model_id)
    assert np.allclose(e5.encode(["return policy"])[0], plain.encode(["passage: return policy"])[0], atol=1e-5)
    assert np.allclose(e5.encode_query("return policy").ravel(), plain.encode_query("query: return policy").ravel(), atol=1e-5)
    assert np.allclose(e5.encode_queries(["return policy"])[0], plain.encode_query("query: return policy").ravel(), atol=1e-4)


def test_embed_threads_sets_the_onnx_runtime_threads(tmp_path):
    """`kbops serve --workers N` gives each worker cores / N threads (KBOPS_EMBED_THREADS), so workers do not fight."""
    one = Embedder.from_settings(Settings.load(env={"KBOPS_HOME": str(tmp_path), "KBOPS_MODELS_DIR": MODELS_DIR, "KBOPS_EMBED_THREADS": "1"}, config_file=None))
    assert one.onnx.session.get_session_options().intra_op_num_threads == 1
    with pytest.raises(ConfigError, match="KBOPS_EMBED_THREADS"):
        Settings.load(env={"KBOPS_EMBED_THREADS": "-1"}, config_file=None)
