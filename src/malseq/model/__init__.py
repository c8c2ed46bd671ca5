"""The models at scan time: evaluation only (training, export and fitting live in the lab, `malseq_lab.model`).

- `malseq.model.infer`: the BERT-family sequence model with onnxruntime + tokenizers (no torch).
- `malseq.model.profile` / `malseq.model.ensemble`: the behaviour-profile tree model and the
  score combination, in pure Python.
- `malseq.model.scoring`: both for a batch of scan results; `malseq.model.text`: the model text.

The shipped model lives in `malseq/model/data/` (model.onnx, tokenizer.json, model_card.json).
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
# the tokenizer cut to the words of a sequence text (`malseq.model.scan_tokenizer`): read faster at start-up
SCAN_TOKENIZER_FILE = "tokenizer_scan.json"
CARD_FILE = "model_card.json"
# Operating points: "low-fpr" keeps the validation false-positive rate within the budget (the
# default); "balanced" is the validation best-F1 threshold (more recall, more false alarms).
LOW_FPR = "low-fpr"
BALANCED = "balanced"
OPERATING_POINTS = (LOW_FPR, BALANCED)

__all__ = ["BALANCED", "CARD_FILE", "DATA_DIR", "LOW_FPR", "MODEL_FILE", "OPERATING_POINTS", "SCAN_TOKENIZER_FILE",
           "TOKENIZER_FILE"]
