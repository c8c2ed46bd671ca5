"""The sequence model: a BERT-family classifier over behaviour-sequence texts.

- `malseq.model.infer`: scoring with onnxruntime + tokenizers (no torch), used by `malseq scan`.
- `malseq_lab.model.train` / `malseq_lab.model.export`: fine-tuning and ONNX export (the `train` extra).
- `malseq.model.metadata` / `malseq.model.ensemble`: the manifest/archive metadata model and the
  score combination (pure Python at scan time).

The shipped model lives in `malseq/model/data/` (model.onnx, tokenizer.json, model_card.json).
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CARD_FILE = "model_card.json"
# Operating points: "low-fpr" keeps the validation false-positive rate within the budget (the
# default); "balanced" is the validation best-F1 threshold (more recall, more false alarms).
LOW_FPR = "low-fpr"
BALANCED = "balanced"
OPERATING_POINTS = (LOW_FPR, BALANCED)

__all__ = ["BALANCED", "CARD_FILE", "DATA_DIR", "LOW_FPR", "MODEL_FILE", "OPERATING_POINTS", "TOKENIZER_FILE"]
