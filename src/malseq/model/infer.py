"""Scoring behaviour-sequence texts with the shipped ONNX model: onnxruntime + tokenizers, no torch.

`SequenceScorer.load()` reads `malseq/model/data/` (or another folder holding `model.onnx`,
`tokenizer.json` and `model_card.json`) once per process and keeps it; `score()` tokenises with
truncation to the card's `max_len`, runs each text as its own batch of one (no padding, so a
score never depends on the other texts) and returns P(malicious) in [0, 1] per text, in input
order. The verdict threshold is the card's `threshold`, chosen on validation data (see `malseq_lab.model.threshold`);
a card may also hold `thresholds_by_ecosystem` (the "low-fpr" point chosen per ecosystem on validation),
which then decides for packages of those ecosystems.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from malseq.errors import ModelNotAvailableError
from malseq.model import BALANCED, CARD_FILE, DATA_DIR, LOW_FPR, MODEL_FILE, TOKENIZER_FILE
from malseq.model.text import model_text

MALICIOUS = "malicious"
BENIGN = "benign"


@dataclass(frozen=True)
class ModelCard:
    """The parts of `model_card.json` scanning needs; `raw` keeps the whole document."""

    name: str
    max_len: int
    threshold: float  # the "low-fpr" operating point (the default)
    created: str = ""
    threshold_balanced: float | None = None  # the "balanced" operating point (validation best F1)
    # the "low-fpr" point per ecosystem, when validation chose one for each (a 0.1% budget met by one
    # pooled threshold lets the ecosystem with the higher-scoring benign packages spend it all)
    thresholds_by_ecosystem: tuple[tuple[str, float], ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def read(cls, path: Path, ecosystems: Sequence[str] | None = None) -> ModelCard:
        """The card at `path`; `ecosystems`: those it may set a threshold for (default `card_ecosystems()`:
        a caller that has them already, the model process, need not import intake for them)."""
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                name=str(doc.get("name", "malseq-sequence")),
                max_len=int(doc["max_len"]),
                threshold=float(doc["threshold"]),
                created=str(doc.get("created", "")),
                threshold_balanced=float(doc["threshold_balanced"]) if doc.get("threshold_balanced") is not None
                else None,
                thresholds_by_ecosystem=_ecosystem_thresholds(doc.get("thresholds_by_ecosystem"), ecosystems),
                raw=doc,
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelNotAvailableError(f"unreadable model card {path}: {exc}") from exc


def card_ecosystems() -> tuple[str, ...]:
    """The ecosystems a card may set a threshold for: every registry malseq reads packages from."""
    from malseq.intake.package import Ecosystem  # here: the model process reads cards without intake

    return tuple(sorted(e.value for e in Ecosystem if e is not Ecosystem.UNKNOWN))


def _ecosystem_thresholds(value: Any, ecosystems: Sequence[str] | None = None) -> tuple[tuple[str, float], ...]:
    """The card's `thresholds_by_ecosystem`, checked: a misspelt ecosystem would silently fall back to
    the pooled threshold, so anything but a mapping of known ecosystems to numbers is refused."""
    if value is None:
        return ()
    known = tuple(ecosystems) if ecosystems is not None else card_ecosystems()
    if not isinstance(value, dict) or not all(
            k in known and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in value.items()):
        raise ValueError(f"thresholds_by_ecosystem must map {' / '.join(known)} to numbers, not {value!r}")
    return tuple(sorted((str(k), float(v)) for k, v in value.items()))


def verdict(score: float, threshold: float) -> str:
    return MALICIOUS if score >= threshold else BENIGN


class LoadedModel(Protocol):
    """A loaded sequence model: a `SequenceScorer`, or one loaded in a model process
    (`malseq.model.process.TextScorer`), which scores the same texts the same."""

    model_dir: Path
    card: ModelCard

    def threshold_for(self, operating_point: str, ecosystem: str | None = None) -> float: ...

    def score(self, texts: Sequence[object]) -> list[float]: ...


class SequenceScorer:
    """A loaded model. Create with `load()`; thread-safe for `score()` (onnxruntime sessions are)."""

    def __init__(self, model_dir: Path, session: Any, tokenizer: Any, card: ModelCard) -> None:
        self.model_dir = model_dir
        self.card = card
        self._session = session
        self._tokenizer = tokenizer
        self._inputs = [i.name for i in session.get_inputs()]
        self._outputs = [o.name for o in session.get_outputs()]

    def threshold_for(self, operating_point: str, ecosystem: str | None = None) -> float:
        """The card's threshold for an operating point ("low-fpr" or "balanced") and, when the card
        has one for it, the package's ecosystem ("pypi", "npm")."""
        return card_threshold(self.card, self.model_dir, operating_point, ecosystem)

    # -- loading

    _cache: dict[tuple[str, int], SequenceScorer] = {}
    _lock = threading.Lock()

    @classmethod
    def load(cls, model_dir: Path | str | None = None, threads: int | None = None,
             ecosystems: Sequence[str] | None = None, opened: tuple[Any, Any] | None = None) -> SequenceScorer:
        """The model in `model_dir` (default: the shipped one), loaded once per process (`ecosystems`:
        as in `ModelCard.read`; `opened`: the folder's `open_files` answer, when the caller has it).

        Raises `ModelNotAvailableError` when the folder lacks a model, tokenizer or card.
        """
        path = model_path(model_dir)
        threads = model_threads(threads)
        key = (str(path.resolve()), threads)
        with cls._lock:
            if key not in cls._cache:
                cls._cache[key] = cls._load(path, threads, ecosystems, opened)
            return cls._cache[key]

    @classmethod
    def _load(cls, path: Path, threads: int, ecosystems: Sequence[str] | None = None,
              opened: tuple[Any, Any] | None = None) -> SequenceScorer:
        _check_files(path)
        card = ModelCard.read(path / CARD_FILE, ecosystems)
        tokenizer, session = opened if opened is not None else cls.open_files(path, threads)
        configure_tokenizer(tokenizer, card.max_len)
        return cls(path, session, tokenizer, card)

    @staticmethod
    def open_files(path: Path, threads: int, parallel: bool = False) -> tuple[Any, Any]:
        """`(tokenizer, session)` of the model in `path`, as `load` opens them: most of a load's work,
        which the model process (`malseq.model.process`) starts before it knows the scan's model folder.
        With `parallel`, tokenizers is imported and tokenizer.json read in a second thread while onnxruntime,
        which releases the interpreter lock, builds the session (the model process: the scan has no use
        for its core then; the session is the longer of the two, so neither adds to the load's time)."""
        _check_files(path)
        ort = import_onnxruntime()
        read: list[Any] = []

        def read_tokenizer() -> None:
            try:
                from malseq.model.scan_tokenizer import open_tokenizer

                read.append(open_tokenizer(path, import_tokenizer_class()))
            except Exception as exc:  # noqa: BLE001 - reported below, from this thread
                read.append(exc)

        reader = threading.Thread(target=read_tokenizer, name="malseq-tokenizer") if parallel else None
        try:
            if reader is not None:
                reader.start()
            else:
                read_tokenizer()
            options = session_options(ort, path, threads)
            session = ort.InferenceSession(str(path / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime/tokenizers raise their own types
            raise ModelNotAvailableError(f"cannot load the model in {path}: {exc}") from exc
        finally:
            if reader is not None:
                reader.join()
        [tokenizer] = read
        if isinstance(tokenizer, ModelNotAvailableError):  # tokenizers not installed
            raise tokenizer
        if isinstance(tokenizer, Exception):
            raise ModelNotAvailableError(f"cannot load the model in {path}: {tokenizer}") from tokenizer
        return tokenizer, session

    @classmethod
    def clear_cache(cls) -> None:
        with cls._lock:
            cls._cache.clear()

    # -- scoring

    def score(self, texts: Sequence[object]) -> list[float]:
        """P(malicious) for each text (a sequence text or an object with `.text`), in input order.

        Each text runs alone, as a batch of one without padding: int8 dynamic quantisation takes
        its activation scales from the whole input tensor (padding included), so in a shared batch
        a text's score would depend on the other texts (by up to 0.16 on this model). Alone, a
        text's score is a function of that text only.
        """
        import numpy as np

        prepared = [model_text(t) for t in texts]
        if not prepared:
            return []
        encodings = self._tokenizer.encode_batch(prepared)
        out: list[float] = []
        for encoding in encodings:
            ids = np.asarray([encoding.ids], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            result = self._session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})
            scores = _to_scores(np, dict(zip(self._outputs, result, strict=True)))
            out.append(float(min(1.0, max(0.0, scores[0]))))
        return out


def _check_files(path: Path) -> None:
    missing = [n for n in (MODEL_FILE, TOKENIZER_FILE, CARD_FILE) if not (path / n).is_file()]
    if missing:
        raise ModelNotAvailableError(
            f"no trained sequence model in {path} (missing {', '.join(missing)})",
            hint="train one with `malseq train`, or scan without a score",
        )


def model_threads(threads: int | None = None) -> int:
    """The session's intra-op threads: `threads`, else $MALSEQ_MODEL_THREADS, else one. One by default:
    scores are the same with any thread count (checked in tests/test_determinism.py), and on a batch
    of one a second thread costs more CPU than it saves."""
    return threads or int(os.environ.get("MALSEQ_MODEL_THREADS", "0") or 0) or 1


def session_options(ort: Any, path: Path, threads: int) -> Any:
    """The `onnxruntime.SessionOptions` a scan opens the model in `path` with (`threads`: intra-op)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Threads beyond the first (MALSEQ_MODEL_THREADS) sleep between runs instead of spinning:
    # a scan scores one text at a time between analyses, and a spinning pool burns the CPU
    # the workers need. Scores do not depend on it (tests/test_determinism.py).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # A model whose integer matmuls take int8 weights (an older lab's export, say) would be summed with
    # saturation on x86 CPUs without VNNI and score differently there: this makes onnxruntime rewrite its
    # weights as uint8 at load on those CPUs, at the default optimisation level a folder other than the
    # shipped one gets. The shipped model is stored with uint8 weights already (docs/results/determinism/cpu.md).
    options.add_session_config_entry("session.x64quantprecision", "1")
    options.log_severity_level = 3
    if path.resolve() == DATA_DIR:
        # The shipped model.onnx is stored as the graph onnxruntime's optimiser makes of it (the lab's
        # `optimise_graph`, which refuses a rewrite that moves any output by one bit), so optimising it
        # again at every load finds nothing to change and costs a quarter of the session's CPU (a
        # start-up's critical path: docs/results/speed). tests/model/test_inference.py pins that it
        # scores exactly as a session with the default level does. Another folder (--model, an older
        # lab's export) may not be stored optimised, so it keeps the default level and its own scores.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return options


def model_path(model_dir: Path | str | None) -> Path:
    """The model folder `model_dir` names (None: the shipped model)."""
    return Path(model_dir) if model_dir is not None else DATA_DIR


def card_threshold(card: ModelCard, model_dir: Path, operating_point: str, ecosystem: str | None = None) -> float:
    """The card's threshold for an operating point ("low-fpr" or "balanced") and, when the card has
    one for it, the package's ecosystem ("pypi", "npm"); `model_dir` names the model in the error."""
    if operating_point == LOW_FPR:
        return dict(card.thresholds_by_ecosystem).get(ecosystem or "", card.threshold)
    if operating_point == BALANCED and card.threshold_balanced is not None:
        return card.threshold_balanced
    raise ModelNotAvailableError(
        f"the model in {model_dir} has no {operating_point!r} operating point",
        hint=f"use --operating-point {LOW_FPR}, or a model trained by a newer malseq train",
    )


def import_onnxruntime() -> Any:
    """The `onnxruntime` module (numpy with it), or a `ModelNotAvailableError` that says how to install it."""
    try:
        # onnxruntime >= 1.32 otherwise writes a device id, an event queue and a session file on every run
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - core dependencies
        raise ModelNotAvailableError(f"cannot import the inference runtime: {exc}",
                                     hint="pip install onnxruntime tokenizers") from exc
    return ort


def import_tokenizer_class() -> Any:
    """`tokenizers.Tokenizer`, or a `ModelNotAvailableError` that says how to install it."""
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:  # pragma: no cover - core dependencies
        raise ModelNotAvailableError(f"cannot import the inference runtime: {exc}",
                                     hint="pip install onnxruntime tokenizers") from exc
    return Tokenizer


def configure_tokenizer(tokenizer: Any, max_len: int) -> None:
    """Truncate to `max_len` tokens (special tokens included); no padding (batches pad themselves)."""
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_len)


def _to_scores(np: Any, outputs: dict[str, Any]) -> Any:
    if "score" in outputs:
        return np.asarray(outputs["score"], dtype=np.float64).reshape(-1)
    logits = np.asarray(next(iter(outputs.values())), dtype=np.float64)
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e[:, 1] / e.sum(axis=1)).reshape(-1)


def try_load(model_dir: Path | str | None = None) -> tuple[SequenceScorer | None, str | None]:
    """`(scorer, None)`, or `(None, why)` when no model is available: for callers that go on without."""
    try:
        return SequenceScorer.load(model_dir), None
    except ModelNotAvailableError as exc:
        return None, str(exc)
