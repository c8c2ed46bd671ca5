#!/usr/bin/env bash
# Reproduce docs/evaluation.md: corpus build (benign downloads, analysis cache, time and random splits),
# the baselines on the random and the time split, and, with GUARDDOG=1, GuardDog 3.2.0 on the
# same test split. Data goes to $MALSEQ_CORPUS_DIR (default ~/.cache/malseq/corpus), results
# to docs/results/. Reads the malicious samples as data only; nothing from them is run.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
WORK=${MALSEQ_CORPUS_DIR:-$HOME/.cache/malseq/corpus}

# 1. downloads (resumable), analysis cache, the time split (the primary protocol; reused if
#    split-time.json exists)
time "$BIN/malseq" corpus build --workdir "$WORK" --timeout 60 --jobs 2

# 2. the grouped random split of the same cache (split.json, reused if it exists)
"$BIN/malseq" corpus build --workdir "$WORK" --no-download --no-analyse --protocol random

# 3. baselines (and GuardDog if GUARDDOG=1) on the random split; then on the time split
time "$BIN/malseq" eval --workdir "$WORK" --protocol random --out docs/results/random ${GUARDDOG:+--guarddog}
time "$BIN/malseq" eval --workdir "$WORK" --protocol time --out docs/results/time
