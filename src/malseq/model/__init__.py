"""The sequence model: a BERT-family classifier over behaviour-sequence texts.

- `malseq.model.infer`: scoring with onnxruntime + tokenizers (no torch), used by `malseq scan`.
- `malseq.model.train` / `malseq.model.export`: fine-tuning and ONNX export (the `train` extra).
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

__all__ = ["CARD_FILE", "DATA_DIR", "MODEL_FILE", "TOKENIZER_FILE"]
