"""ONNX Runtime backends for the embedder: the bundled model exported locally, run without torch.

Why: sentence-transformers' plain ``encode()`` runs the model through eager
PyTorch; the same network exported to ONNX and run by ONNX Runtime (fused
attention, GELU and layer-norm kernels) is faster on this 2-core CPU, and its
int8 variant (dynamic quantisation of the weight matrices) faster still.

Two variants, both built on first use from the LOCAL model directory (never
from the network) and cached under ``<models_dir>/<digest>-<variant>/``:

* ``onnx``: the float32 graph; vectors equal sentence-transformers' to ~1e-7.
* ``onnx-int8``: weights of the projection MatMuls quantised per channel to
  int8 (``onnxruntime.quantization.quantize_dynamic``), activations quantised
  per batch at run time. The feed-forward output projections stay float32:
  quantised, they cost the most agreement with the reference vectors for the
  least speed (agreement and speed of both variants: bench/README.md).

A build writes into a private temporary directory next to the target and
renames it into place only when complete (with a ``build.json`` recording the
file's sha256), so a build killed half-way leaves nothing that is ever used,
and two processes building at once both end with the same complete model.

Pooling and normalisation follow the model's own sentence-transformers
pipeline (``modules.json``: Transformer → mean Pooling → Normalize); a model
with any other pipeline is refused with a clear error naming the torch
backend, which runs any sentence-transformers directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from kbops.config import usable_cores
from kbops.errors import ConfigError

#: Backends the ONNX runtime serves; the recipe number goes into the model id
#: and the directory name, so a changed export or quantisation never mixes vectors.
ONNX_BACKENDS = ("onnx", "onnx-int8")
RECIPE = "r1"
_INSTALL = "pip install onnxruntime==1.31.1 onnx==1.23.2"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _require_runtime():
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(
            f"embed_backend needs onnxruntime, which is not installed; run `{_INSTALL}` "
            "or set KBOPS_EMBED_BACKEND=torch"
        ) from None
    return onnxruntime


class PipelineSpec:
    """What the sentence-transformers pipeline of a model directory does, read from its files."""

    def __init__(self, model_dir: Path):
        modules_file = model_dir / "modules.json"
        if not modules_file.is_file():
            raise ConfigError(
                f"embedding model {model_dir} has no modules.json (not a sentence-transformers directory); "
                "the ONNX backends need one — set KBOPS_EMBED_BACKEND=torch"
            )
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
        if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
            raise ConfigError(
                f"embedding model {model_dir} has pipeline {kinds}; the ONNX backends run Transformer → Pooling "
                "(→ Normalize) only — set KBOPS_EMBED_BACKEND=torch"
            )
        self.transformer_dir = model_dir / modules[0].get("path", "")
        pooling = json.loads((model_dir / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
        modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
        if modes != ["pooling_mode_mean_tokens"]:
            raise ConfigError(
                f"embedding model {model_dir} pools with {modes}; the ONNX backends implement mean pooling only "
                "— set KBOPS_EMBED_BACKEND=torch"
            )
        self.dim = int(pooling["word_embedding_dimension"])
        st_config = {}
        for name in ("sentence_bert_config.json", "sentence_xlnet_config.json"):
            f = self.transformer_dir / name
            if f.is_file():
                st_config = json.loads(f.read_text(encoding="utf-8"))
                break
        self.max_seq_length = int(st_config.get("max_seq_length") or 512)
        self.do_lower_case = bool(st_config.get("do_lower_case", False))
        self.tokenizer_file = self.transformer_dir / "tokenizer.json"
        if not self.tokenizer_file.is_file():
            raise ConfigError(
                f"embedding model {model_dir} has no tokenizer.json (fast tokenizer); "
                "the ONNX backends need one — set KBOPS_EMBED_BACKEND=torch"
            )


def ensure_model(model_dir: Path, digest: str, backend: str, models_dir: Path) -> Path:
    """Path of the ONNX file for ``backend``, building it atomically on first use.

    The directory is ``<models_dir>/<digest>-<backend>-<recipe>``; it only ever
    appears complete (temporary directory + rename). A directory that exists
    but fails its recorded checksum (copied half-way, edited) is moved aside
    and rebuilt rather than used.
    """
    _require_runtime()
    target = models_dir / f"{digest}-{backend}-{RECIPE}"
    if _verified(target):
        return target / "model.onnx"
    models_dir.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.move(str(target), str(models_dir / f".broken-{target.name}-{int(time.time())}-{os.getpid()}"))
    _sweep_stale(models_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=models_dir))
    try:
        _build(model_dir, backend, tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; the server and the DAGs may run as other users
        try:
            os.rename(tmp, target)
        except OSError:
            if not _verified(target):  # another process's rename won only if its build is whole
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not _verified(target):
        raise ConfigError(f"ONNX model build in {target} did not verify; remove the directory and retry")
    return target / "model.onnx"


def _verified(target: Path) -> bool:
    meta, model = target / "build.json", target / "model.onnx"
    if not (meta.is_file() and model.is_file()):
        return False
    try:
        recorded = json.loads(meta.read_text(encoding="utf-8"))["sha256"]
    except (ValueError, KeyError):
        return False
    return recorded == _sha256(model)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sweep_stale(models_dir: Path, older_than_s: float = 3600.0) -> None:
    """Remove temporary build directories left by killed builds (an hour old: no live build is that slow)."""
    now = time.time()
    for p in models_dir.glob(".tmp-*"):
        try:
            if now - p.stat().st_mtime > older_than_s:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def _build(model_dir: Path, backend: str, out: Path) -> None:
    """Export the transformer to ONNX (float32) in ``out``; quantise it for ``onnx-int8``."""
    try:
        import onnx  # noqa: F401  (quantisation and the exporter's checker need it)
    except ImportError:
        raise ConfigError(f"building the ONNX model needs the onnx package; run `{_INSTALL}` or set KBOPS_EMBED_BACKEND=torch") from None
    import torch
    from transformers import AutoModel

    spec = PipelineSpec(model_dir)
    model = AutoModel.from_pretrained(str(spec.transformer_dir), local_files_only=True).eval()

    class LastHidden(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    sample = tuple(torch.ones(2, 8, dtype=torch.long) if n != "token_type_ids" else torch.zeros(2, 8, dtype=torch.long) for n in _INPUTS)
    fp32 = out / ("model.onnx" if backend == "onnx" else "model-fp32.onnx")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHidden(model),
            sample,
            str(fp32),
            dynamo=False,  # the TorchScript exporter: no onnxscript needed, dynamic batch and length axes
            input_names=list(_INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in (*_INPUTS, "last_hidden_state")},
            opset_version=17,
            do_constant_folding=True,
        )
    if backend == "onnx-int8":
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        graph = onnx.load(str(fp32)).graph
        weights = {i.name for i in graph.initializer}
        matmuls = [n for n in graph.node if n.op_type == "MatMul" and any(i in weights for i in n.input)]
        keep_fp32 = [n.name for n in matmuls if "/output/dense/" in n.name and "/attention/" not in n.name]
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantiser logs advice on the root logger
        try:
            quantize_dynamic(
                str(fp32),
                str(out / "model.onnx"),
                op_types_to_quantize=["MatMul"],
                per_channel=True,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=keep_fp32,
            )
        finally:
            root.setLevel(level)
        fp32.unlink()
    (out / "build.json").write_text(
        json.dumps(
            {
                "backend": backend,
                "recipe": RECIPE,
                "source": str(model_dir),
                "sha256": _sha256(out / "model.onnx"),
                "torch": torch.__version__,
                "onnxruntime": _require_runtime().__version__,
            },
            indent=1,
        ),
        encoding="utf-8",
    )


class OnnxEncoder:
    """Tokenise with the model's fast tokenizer, run the ONNX graph, mean-pool and normalise.

    Texts are sorted by token count and batched with their neighbours so a
    batch pads to similar lengths (length bucketing); rows come back in the
    caller's order. A session is safe to call from several threads.
    """

    def __init__(self, model_dir: Path, onnx_path: Path, threads: int | None = None):
        ort = _require_runtime()
        from tokenizers import Tokenizer

        self.spec = PipelineSpec(model_dir)
        self.dim = self.spec.dim
        self.tokenizer = Tokenizer.from_file(str(self.spec.tokenizer_file))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.spec.max_seq_length)
        self.reader = Tokenizer.from_file(str(self.spec.tokenizer_file))  # untruncated, for unk_share
        self.reader.no_padding()
        self.reader.no_truncation()
        self.unk_id = self.reader.token_to_id(getattr(self.reader.model, "unk_token", "[UNK]") or "[UNK]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or usable_cores()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # no busy-waiting between runs: on a 2-core machine shared with FAISS, the lexical
        # scorer and torch, spinning threads steal the cores the next step needs
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.session.get_inputs()}

    def _prepare(self, texts: list[str]) -> list[str]:
        # sentence-transformers strips (and lower-cases when its config says so) before tokenising
        return [t.strip().lower() if self.spec.do_lower_case else t.strip() for t in texts]

    def _run(self, ids_list: list[list[int]]) -> np.ndarray:
        width = max(1, max(len(ids) for ids in ids_list))
        ids = np.zeros((len(ids_list), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, seq in enumerate(ids_list):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self.session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(self._prepare(texts))
        seqs = [e.ids for e in encodings]
        order = np.argsort([len(s) for s in seqs], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = self._run([seqs[i] for i in rows])
        return out

    def encode_one(self, text: str) -> np.ndarray:
        return self._run([self.tokenizer.encode(self._prepare([text])[0]).ids])

    def unk_share(self, text: str) -> float:
        ids = self.reader.encode(text, add_special_tokens=False).ids
        if not ids:
            return 1.0
        return sum(1 for i in ids if i == self.unk_id) / len(ids)
