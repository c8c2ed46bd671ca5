"""ONNX export, int8 quantisation, the fp32/int8 agreement check and assembling a model folder.

- `export_onnx`: the legacy TorchScript exporter (`dynamo=False`; int8 quantisation of the dynamo
  export fails with a shape-inference error), opset 17, dynamic batch and sequence axes. The
  graph takes `input_ids` and `attention_mask` and returns `score` = softmax(logits)[:, 1].
- `quantize`: `onnxruntime.quantization.quantize_dynamic(..., weight_type=QInt8, per_channel=True)`; per-tensor
  weights moved scores of the trained MiniLM by up to 0.81 (val agreement 96.7%), per-channel by up to 0.31 (98.8%).
  The int8 weights are then stored unsigned (`unsigned_weights`) and the file as onnxruntime's optimised
  graph (`optimise_graph`).
- `unsigned_weights`: the integer matmuls' int8 weights rewritten as uint8 (each value and zero point
  plus 128, the same numbers), so every CPU computes the exact integer products: onnxruntime's int8
  x int8 kernel on x86 CPUs without VNNI saturates pairs of products to 16 bits (different scores on
  different machines: docs/results/determinism/cpu.md).
- `optimise_graph`: rewrites a model file as the graph onnxruntime would build from it at every load
  (fused attention, GELU, layer norms and int8 matmuls), checked to score bit-for-bit the same, so a
  scan's model load skips that work.
- `agreement`: both models on the same texts: max/mean absolute score difference and the
  share of texts that get the same verdict at the threshold.
- `assemble`: model.onnx + tokenizer.json + model_card.json in one folder (what `infer` loads).

Needs torch + onnx for `export_onnx`; the rest needs only onnxruntime.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from malseq.model import CARD_FILE, MODEL_FILE, SCAN_TOKENIZER_FILE, TOKENIZER_FILE
from malseq.model.scan_tokenizer import write_scan_tokenizer

logger = logging.getLogger(__name__)

OPSET = 17


def export_onnx(checkpoint: Path, out_path: Path, max_len: int = 128) -> Path:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(checkpoint)).eval()

    class Scored(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            logits = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids)
            ).logits
            return torch.softmax(logits, dim=-1)[:, 1]

    wrapper = Scored(model).eval()
    length = min(16, max_len)
    ids = torch.ones((2, length), dtype=torch.long)
    mask = torch.ones((2, length), dtype=torch.long)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            (ids, mask),
            str(out_path),
            input_names=["input_ids", "attention_mask"],
            output_names=["score"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "score": {0: "batch"},
            },
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    return out_path


def quantize(fp32_path: Path, int8_path: Path, max_len: int, vocab_size: int) -> Path:
    """The int8 model, stored as its optimised graph (`optimise_graph`, probed with inputs of at most
    `max_len` tokens below `vocab_size`: what the model and its tokenizer accept)."""
    import logging
    import os

    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # as in malseq.model.infer: no device id or event files
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # "consider pre-processing"
    quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8, per_channel=True)
    unsigned_weights(Path(int8_path), max_len, vocab_size)
    return optimise_graph(Path(int8_path), max_len, vocab_size)


# Integer matmuls of a dynamically quantised graph, with the positions of their weight input and that
# weight's zero point (onnxruntime's contrib ops and ONNX's MatMulInteger).
INTEGER_MATMUL_WEIGHTS: dict[tuple[str, str], tuple[int, int]] = {
    ("com.microsoft", "DynamicQuantizeMatMul"): (1, 3),
    ("com.microsoft", "MatMulIntegerToFloat"): (1, 5),
    ("", "MatMulInteger"): (1, 3),
}


def signed_integer_weights(model: Any) -> list[str]:
    """Names of the int8 weight initialisers the integer matmuls of `model` (an `onnx.ModelProto`) read."""
    import onnx

    int8 = {i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8}
    out = []
    for node in model.graph.node:
        spec = INTEGER_MATMUL_WEIGHTS.get((node.domain or "", node.op_type))
        if spec is not None and len(node.input) > spec[0] and node.input[spec[0]] in int8:
            out.append(node.input[spec[0]])
    return out


def unsigned_weights(path: Path, max_len: int, vocab_size: int) -> Path:
    """Store the int8 weights of the integer matmuls in the model at `path` as uint8: every value and its
    zero point plus 128, so (weight - zero point) is the same number and the model computes the same.

    Why: an int8 model's matmuls multiply uint8 activations by int8 weights. On x86 CPUs with VNNI (and on
    ARM) the kernels add the products exactly; on x86 CPUs without it (AVX2, AVX-512 without VNNI) onnxruntime
    adds pairs of products in 16 bits, which saturate, so the same text scored differently on different
    machines (by up to 0.36 on the time-split test set). uint8 x uint8 products are added exactly on every
    CPU. The rewritten model must score bit-for-bit as the original does when a scan opens it
    (`malseq.model.infer.session_options`, whose `session.x64quantprecision` makes onnxruntime compute the
    original exactly on a CPU whose int8 kernel saturates).
    Any output that differs in a single bit raises `ValueError` and leaves `path` as it was.
    """
    import os

    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # as in malseq.model.infer
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from malseq.model.infer import session_options

    path = Path(path)
    model = onnx.load(str(path))
    initialisers = {i.name: i for i in model.graph.initializer}
    consumers: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    rewritten: set[str] = set()
    for node in model.graph.node:
        spec = INTEGER_MATMUL_WEIGHTS.get((node.domain or "", node.op_type))
        if spec is None or len(node.input) <= spec[0] or node.input[spec[0]] not in initialisers:
            continue
        weight = initialisers[node.input[spec[0]]]
        if weight.data_type != onnx.TensorProto.INT8:
            continue
        while len(node.input) <= spec[1]:
            node.input.append("")
        if not node.input[spec[1]]:  # no zero point: 0, which is 128 once unsigned
            name = f"{weight.name}_unsigned_zero_point"
            model.graph.initializer.append(numpy_helper.from_array(np.array(128, dtype=np.uint8), name))
            node.input[spec[1]] = name
            rewritten.add(name)
        for tensor_name in (weight.name, node.input[spec[1]]):
            if tensor_name in rewritten:
                continue
            if consumers.get(tensor_name, 0) != 1:
                raise ValueError(f"{path}: {tensor_name} is read by more than one node; not rewritten")
            tensor = initialisers[tensor_name]
            if tensor.data_type != onnx.TensorProto.INT8:
                raise ValueError(f"{path}: the zero point {tensor_name} of an int8 weight is not int8")
            values = numpy_helper.to_array(tensor).astype(np.int16) + 128
            tensor.CopyFrom(numpy_helper.from_array(values.astype(np.uint8), tensor_name))
            rewritten.add(tensor_name)
    if not rewritten:
        return path
    candidate = path.with_name(path.stem + ".unsigned" + path.suffix)
    onnx.save(model, str(candidate))
    try:
        # Both opened as a scan opens a model folder: its options include onnxruntime's own load-time
        # uint8 rewrite (`session.x64quantprecision`), which makes the original exact on a saturating CPU.
        def session(model_path: Path) -> Any:
            return ort.InferenceSession(str(model_path), session_options(ort, model_path, 1),
                                        providers=["CPUExecutionProvider"])

        _same_outputs(session(path), session(candidate), max_len, vocab_size,
                      f"the unsigned-weight rewrite of {path}")
        os.replace(candidate, path)
    finally:
        candidate.unlink(missing_ok=True)
    return path


def _same_outputs(before: Any, after: Any, max_len: int, vocab_size: int, what: str) -> None:
    """Raise `ValueError` unless two sessions give bit-identical outputs on probe inputs of several lengths
    up to `max_len` tokens (random ids below `vocab_size`)."""
    import numpy as np

    rng = np.random.default_rng(0)
    names = {i.name for i in before.get_inputs()}
    for length in sorted({n for n in _PROBE_LENGTHS if n <= max_len} | {max_len}):
        ids = rng.integers(0, vocab_size, size=(1, length), dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        feed = {k: v for k, v in feeds.items() if k in names}
        for a, b in zip(before.run(None, feed), after.run(None, feed), strict=True):
            if np.asarray(a).tobytes() != np.asarray(b).tobytes():
                raise ValueError(f"{what} scores a {length}-token input differently ({a!r} vs {b!r}); "
                                 "the model was left as it was")


# Lengths of the probe inputs `optimise_graph` compares (those up to the model's max_len, and max_len).
_PROBE_LENGTHS = (1, 2, 5, 16, 33, 64, 128, 200, 256, 512)


def optimise_graph(path: Path, max_len: int, vocab_size: int) -> Path:
    """Store the model at `path` as the graph onnxruntime builds from it when it loads it.

    Every `InferenceSession` rewrites the graph it reads (constant folding, fused attention, GELU and
    layer norms, int8 matmuls with their dequantisation): for the shipped MiniLM that rewrite is
    0.07 of the 0.19 CPU s a session takes to open, paid by every `malseq scan`. Written once here,
    the load finds nothing left to rewrite. The level is ORT_ENABLE_EXTENDED: its rewrites do not
    depend on the CPU (ORT_ENABLE_ALL adds layout changes that do, and none apply to this model).

    The rewritten graph must score exactly as the original does when `malseq.model.infer` loads it
    (default options): probe inputs of several lengths up to `max_len` tokens (random ids below
    `vocab_size`) are run through both, and any output that differs in a single bit raises
    `ValueError` and leaves `path` as it was.
    """
    import os

    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # as in malseq.model.infer
    import onnxruntime as ort

    path = Path(path)
    rewritten = path.with_name(path.stem + ".optimised" + path.suffix)

    def options(optimised_to: Path | None = None) -> Any:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # as malseq.model.infer loads it
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        if optimised_to is not None:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            opts.optimized_model_filepath = str(optimised_to)
        return opts

    ort.InferenceSession(str(path), options(rewritten), providers=["CPUExecutionProvider"])
    try:
        before = ort.InferenceSession(str(path), options(), providers=["CPUExecutionProvider"])
        after = ort.InferenceSession(str(rewritten), options(), providers=["CPUExecutionProvider"])
        _same_outputs(before, after, max_len, vocab_size, f"onnxruntime's optimised graph of {path}")
        os.replace(rewritten, path)
    finally:
        rewritten.unlink(missing_ok=True)
    return path


def write_card(folder: Path, card: dict[str, Any]) -> Path:
    path = Path(folder) / CARD_FILE
    path.write_text(json.dumps(card, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return path


def assemble(folder: Path, onnx_path: Path, tokenizer_path: Path, card: dict[str, Any]) -> Path:
    """A loadable model folder: model.onnx, tokenizer.json, model_card.json, and tokenizer_scan.json
    (the tokenizer cut to the words of a sequence text, read at a scan's start-up) when the tokenizer
    can be cut.

    An ensemble left in the folder belongs to the sequence model it replaces, so it is removed
    (`malseq_lab.model.stack` adds a new one when it is kept).
    """
    from malseq.model.profile import PROFILE_FILE
    from malseq.model.scoring import ENSEMBLE_FILE, clear_cache

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (ENSEMBLE_FILE, PROFILE_FILE):
        (folder / stale).unlink(missing_ok=True)
    clear_cache()
    if Path(onnx_path).resolve() != (folder / MODEL_FILE).resolve():
        shutil.copyfile(onnx_path, folder / MODEL_FILE)
    if Path(tokenizer_path).resolve() != (folder / TOKENIZER_FILE).resolve():
        shutil.copyfile(tokenizer_path, folder / TOKENIZER_FILE)
    (folder / SCAN_TOKENIZER_FILE).unlink(missing_ok=True)  # a cut of the tokenizer it replaces
    try:
        write_scan_tokenizer(folder)
    except ValueError as exc:  # not a WordPiece tokenizer: scans read tokenizer.json whole, same answers
        logger.warning("no %s for %s: %s", SCAN_TOKENIZER_FILE, folder, exc)
    write_card(folder, card)
    return folder


def agreement(
    fp32_dir: Path, int8_dir: Path, texts: Sequence[str], threshold: float, labels: Sequence[int] | None = None
) -> dict[str, Any]:
    """Compare two model folders (same tokenizer and card) on `texts`."""
    from malseq.model.infer import SequenceScorer

    a = SequenceScorer.load(fp32_dir).score(texts)
    b = SequenceScorer.load(int8_dir).score(texts)
    return score_agreement(a, b, threshold, labels)


def score_agreement(
    a: Sequence[float], b: Sequence[float], threshold: float, labels: Sequence[int] | None = None
) -> dict[str, Any]:
    """`agreement` of two models' scores on the same texts (fp32 `a`, int8 `b`), already computed."""
    texts = a
    diffs = [abs(x - y) for x, y in zip(a, b, strict=True)]
    same = sum(1 for x, y in zip(a, b, strict=True) if (x >= threshold) == (y >= threshold))
    out: dict[str, Any] = {
        "n": len(texts),
        "threshold": threshold,
        "max_abs_diff": max(diffs, default=0.0),
        "mean_abs_diff": sum(diffs) / len(diffs) if diffs else 0.0,
        "verdict_agreement": same / len(texts) if texts else 1.0,
        "verdict_disagreements": len(texts) - same,
    }
    if labels is not None:
        from malseq_lab.evaluate.metrics import confusion

        out["f1_fp32"] = confusion(labels, a, threshold).f1
        out["f1_int8"] = confusion(labels, b, threshold).f1
    return out
