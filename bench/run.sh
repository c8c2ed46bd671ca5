#!/usr/bin/env bash
# Reproduce docs/evaluation.md: corpus build (benign downloads, analysis cache, grouped split),
# the baselines on the random and the time split, and, with GUARDDOG=1, GuardDog 3.2.0 on the
# same test split. Data goes to $MALSEQ_CORPUS_DIR (default ~/.cache/malseq/corpus), results
# to docs/results/. Reads the malicious samples as data only; nothing from them is run.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
WORK=${MALSEQ_CORPUS_DIR:-$HOME/.cache/malseq/corpus}

# 1. downloads (resumable), analysis cache, grouped random split (reused if split.json exists)
time "$BIN/malseq" corpus build --workdir "$WORK" --timeout 60 --jobs 2

# 2. a time split of the same cache: PyPI malicious by the date they were added
"$BIN/malseq" corpus build --workdir "$WORK" --no-download --no-analyse --split time \
    --split-file "$WORK/split-time.json" --resplit

# 3. baselines (and GuardDog if GUARDDOG=1) on the random split; then on the time split
time "$BIN/malseq" eval --workdir "$WORK" --out docs/results/random ${GUARDDOG:+--guarddog}
time "$BIN/malseq" eval --workdir "$WORK" --split-file "$WORK/split-time.json" --out docs/results/time
