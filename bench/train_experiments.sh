#!/usr/bin/env bash
# Reproduce docs/model.md: the shipped model (bilingual, execution order, 256 tokens, stacked
# with the behaviour-profile model) and the experiments on the same grouped split. Needs
# `make train-env` and a finished `malseq corpus build` in $MALSEQ_CORPUS_DIR (default
# ~/.cache/malseq/corpus). Each run writes to $WORK/models/<name>/ (report.json,
# stack_report.json, model cards); run names can be given to run a subset.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
WORK=${MALSEQ_CORPUS_DIR:-$HOME/.cache/malseq/corpus}
COMMON=(--workdir "$WORK" --max-len 256 --epochs 4 --patience 2 --popular-max-fpr 0.002)  # a later --epochs wins
RUNS=${*:-main npm-only shuffled pypi-only}

for run in $RUNS; do
    case $run in
        main) args=(--ship) ;;                          # what ships in src/malseq/model/data/
        main8) args=(--epochs 8) ;;                     # a longer schedule: shipped only if its validation PR-AUC is higher
        main-aug) args=(--augment-shuffled 1) ;;        # + one reordered copy of each training text: the same test
        shuffled) args=(--order shuffled --no-stack) ;;  # is order what helps?
        pypi-only) args=(--ecosystems pypi --no-stack) ;; # does PyPI malware teach npm detection?
        npm-only) args=(--ecosystems npm --no-stack) ;;
        *) echo "unknown run $run" >&2; exit 2 ;;
    esac
    echo "== $run: $(date -u +%FT%TZ)"
    time "$BIN/malseq" train "${COMMON[@]}" --out "$WORK/models/$run" "${args[@]}" 2>&1 | tee "$WORK/models/$run.log"
done
