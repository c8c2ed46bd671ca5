"""Scan-time model code that needs no trained model: the model text and a missing model."""

from __future__ import annotations

from pathlib import Path

import pytest

from malseq.errors import ModelNotAvailableError
from malseq.model.infer import SequenceScorer, try_load
from malseq.model.text import model_text


def test_model_text_normalises() -> None:
    assert model_text("  Install :  READ file\n; x ") == "install : read file ; x"

    class Seq:
        text = "A ; B"

    assert model_text(Seq()) == "a ; b"
    assert model_text(None) == ""


def test_missing_model_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailableError):
        SequenceScorer.load(tmp_path)
    scorer, why = try_load(tmp_path)
    assert scorer is None and why and "no trained sequence model" in why


def test_the_shipped_graph_is_stored_optimised_and_loads_to_the_same_scores() -> None:
    """The shipped model.onnx is onnxruntime's optimised graph (`malseq_lab.model.export.optimise_graph`),
    so `SequenceScorer` opens it with graph optimisation off (a quarter of the session's CPU at every
    start-up): it must score exactly as a session with onnxruntime's default level does, which would
    optimise it again. The unoptimised file it replaced scored 68 of 85 texts differently with
    optimisation off: this tells the two apart, and fails if a new model is shipped unoptimised."""
    import numpy as np
    import onnxruntime as ort

    from malseq.model import DATA_DIR, MODEL_FILE
    from malseq.model.scoring import score_input
    from malseq.scan import ScanOptions, scan

    examples = Path(__file__).resolve().parents[2] / "examples"
    packages = Path(__file__).resolve().parents[1] / "sequence" / "packages"
    targets = sorted(str(p) for root in (examples, packages) for p in root.iterdir() if p.is_dir())
    texts = [item.text for item in (score_input(r) for r in scan(targets, ScanOptions(score=False)))
             if item is not None]
    assert len(set(texts)) > 10
    scorer = SequenceScorer.load()
    assert scorer._session.get_session_options().graph_optimization_level == \
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    default = ort.InferenceSession(str(DATA_DIR / MODEL_FILE), options, providers=["CPUExecutionProvider"])
    assert default.get_session_options().graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    names = {i.name for i in default.get_inputs()}
    optimised_again = []
    for encoding in scorer._tokenizer.encode_batch([model_text(t) for t in texts]):
        ids = np.asarray([encoding.ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        [score] = default.run(None, {k: v for k, v in feeds.items() if k in names})
        optimised_again.append(float(min(1.0, max(0.0, np.asarray(score, dtype=np.float64).reshape(-1)[0]))))
    assert optimised_again == scorer.score(texts)


def test_a_model_folder_other_than_the_shipped_one_keeps_the_default_graph_optimisation(tmp_path: Path) -> None:
    # a --model folder (an older lab's export, say) may not be stored optimised: its load optimises it
    import shutil

    import onnxruntime as ort

    from malseq.model import CARD_FILE, DATA_DIR, MODEL_FILE, TOKENIZER_FILE

    for name in (MODEL_FILE, TOKENIZER_FILE, CARD_FILE):
        shutil.copy(DATA_DIR / name, tmp_path / name)
    copied = SequenceScorer.load(tmp_path)
    assert copied._session.get_session_options().graph_optimization_level == \
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert copied.score(["install : read_env ; upload_data"]) == SequenceScorer.load().score(
        ["install : read_env ; upload_data"])


def test_the_session_runs_one_thread_by_default_and_extra_threads_do_not_spin() -> None:
    # a scan scores between analyses: idle intra-op threads must sleep, not spin on the CPU the
    # workers need (MALSEQ_MODEL_THREADS > 1), and by default there is no pool at all
    for threads in (1, 2):
        scorer = SequenceScorer.load(threads=threads)
        options = scorer._session.get_session_options()
        assert options.intra_op_num_threads == threads and options.inter_op_num_threads == 1
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        # an int8-weight --model folder is rewritten to uint8 at load where the int8 kernel saturates
        assert options.get_session_config_entry("session.x64quantprecision") == "1"
    assert SequenceScorer.load() is SequenceScorer.load(threads=1)  # one session per process, reused
