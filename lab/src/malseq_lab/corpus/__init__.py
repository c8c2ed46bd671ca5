"""Corpus tooling for training and evaluation: loaders, benign downloads, the analysis cache,
near-duplicate grouping and grouped (or time-ordered) train/validation/test splits.

Nothing here executes package code: archives are read in memory through `malseq.intake`.
Dataset-scale runs write under a work directory outside git (`default_workdir()`).
"""

from __future__ import annotations

import os
from pathlib import Path

from malseq_lab.corpus.records import Sample, read_samples, write_samples

__all__ = ["Sample", "default_workdir", "read_samples", "write_samples"]


def default_workdir() -> Path:
    """`$MALSEQ_CORPUS_DIR`, else `$MALSEQ_CACHE_DIR/corpus`, else `~/.cache/malseq/corpus`."""
    env = os.environ.get("MALSEQ_CORPUS_DIR")
    if env:
        return Path(env)
    cache = os.environ.get("MALSEQ_CACHE_DIR")
    if cache:
        return Path(cache) / "corpus"
    return Path.home() / ".cache" / "malseq" / "corpus"
