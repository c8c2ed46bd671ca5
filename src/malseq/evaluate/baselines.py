"""Baselines the language model must beat.

- `RuleBaseline`: hand weights on the behaviours present in a package plus a few
  behaviour-chain bonuses (install hook + network, secrets + sending, decode + run); no
  training apart from the threshold.
- `TreeBaseline`: a gradient-boosted tree (scikit-learn's HistGradientBoostingClassifier)
  on behaviour counts and behaviour bigrams of the sequence, plus an ecosystem indicator.

Both score in [0, 1]; the harness picks each one's threshold on the validation split.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class ModelInput:
    """What a baseline sees of one package."""

    ecosystem: str
    behaviours: tuple[str, ...]  # every event's behaviour id (any order)
    sequence: tuple[str, ...]  # behaviour ids in sequence order


class Model(Protocol):
    name: str

    def fit(self, train: Sequence[ModelInput], labels: Sequence[int]) -> None: ...

    def scores(self, items: Sequence[ModelInput]) -> list[float]: ...


# Presence weights: a behaviour counts once however often it occurs, so large packages
# are not flagged for their size alone.
RULE_WEIGHTS: dict[str, float] = {
    "download_and_execute": 4.0,
    "reverse_shell": 4.0,
    "exfiltration_service": 3.5,
    "chat_webhook": 3.0,
    "read_browser_data": 3.0,
    "read_crypto_wallet": 3.0,
    "read_app_tokens": 3.0,
    "pth_code_execution": 3.0,
    "persistence": 2.5,
    "read_sensitive_file": 2.0,
    "hidden_process": 2.0,
    "capture_screen_or_clipboard": 2.0,
    "setup_command_override": 2.0,
    "npm_install_script": 1.5,
    "setup_code_execution": 1.5,
    "use_ip_address": 1.5,
    "write_executable": 1.5,
    "eval_code": 1.0,
    "upload_data": 1.0,
    "run_command": 1.0,
    "shell_command": 1.0,
    "dns_lookup": 1.0,
    "collect_system_info": 1.0,
    "obfuscated_identifiers": 1.0,
    "char_code_assembly": 1.0,
    "escaped_string": 1.0,
    "string_reversal": 1.0,
    "raw_socket": 1.0,
    "encoding_call": 0.5,
    "base64_string": 0.5,
    "high_entropy_string": 0.5,
    "dynamic_import": 0.5,
    "load_native_code": 0.5,
    "read_env": 0.5,
    "network_request": 0.5,
    "encryption_call": 0.5,
    "long_string": 0.3,
    "use_url": 0.2,
    "os_call": 0.2,
    "import_process_module": 0.3,
    "import_network_module": 0.2,
    "import_encoding_module": 0.2,
    "import_os_module": 0.1,
    "import_fs_module": 0.1,
    "fs_read": 0.1,
    "fs_write": 0.2,
    "minified_code": 0.0,
}
_INSTALL = {"npm_install_script", "setup_command_override", "setup_code_execution", "pth_code_execution"}
_SEND = {"network_request", "upload_data", "chat_webhook", "exfiltration_service", "raw_socket", "dns_lookup"}
_SECRETS = {
    "read_env",
    "read_sensitive_file",
    "read_browser_data",
    "read_crypto_wallet",
    "read_app_tokens",
    "collect_system_info",
}
_DECODE = {"encoding_call", "base64_string", "escaped_string", "char_code_assembly", "encryption_call"}
_RUN = {"eval_code", "run_command", "download_and_execute", "dynamic_import"}
# (needs one of A, and one of B, bonus)
RULE_CHAINS: tuple[tuple[frozenset[str], frozenset[str], float], ...] = (
    (frozenset(_INSTALL), frozenset(_SEND | _RUN), 3.0),
    (frozenset(_SECRETS), frozenset(_SEND), 2.0),
    (frozenset(_DECODE), frozenset(_RUN), 2.0),
)


class RuleBaseline:
    name = "rules"

    def raw_score(self, item: ModelInput) -> float:
        present = set(item.behaviours)
        score = sum(RULE_WEIGHTS.get(b, 0.0) for b in present)
        for a, b, bonus in RULE_CHAINS:
            if present & a and present & b:
                score += bonus
        return score

    def fit(self, train: Sequence[ModelInput], labels: Sequence[int]) -> None:
        """Nothing to learn: the weights are written by hand."""

    def scores(self, items: Sequence[ModelInput]) -> list[float]:
        return [1.0 - math.exp(-self.raw_score(i) / 10.0) for i in items]


def _bigrams(seq: Sequence[str]) -> list[str]:
    return [f"{a}>{b}" for a, b in zip(seq, seq[1:], strict=False) if a != b]


class TreeBaseline:
    name = "gbt"

    def __init__(self, min_bigram_count: int = 3, seed: int = 0, max_iter: int = 300, threads: int = 1) -> None:
        self.min_bigram_count = min_bigram_count
        # OpenMP threads; more than one thrashes badly on a shared 2-core machine
        self.threads = threads
        self.seed = seed
        self.max_iter = max_iter
        self.vocabulary: dict[str, int] = {}
        self.model: Any = None

    def _vocab(self, items: Sequence[ModelInput]) -> dict[str, int]:
        from malseq.features.catalogue import IDS

        names = ["ecosystem=npm", "events", "distinct"] + [f"n:{b}" for b in sorted(IDS)]
        seen = {f"n:{b}" for i in items for b in i.behaviours} - set(names)
        names += sorted(seen)  # behaviour ids outside the catalogue, if an extractor adds some
        bigram_docs = Counter(g for i in items for g in set(_bigrams(i.sequence)))
        names += sorted(f"bi:{g}" for g, c in bigram_docs.items() if c >= self.min_bigram_count)
        return {n: k for k, n in enumerate(names)}

    def matrix(self, items: Sequence[ModelInput]) -> Any:
        import numpy as np

        x = np.zeros((len(items), len(self.vocabulary)), dtype=np.float32)
        for r, item in enumerate(items):
            x[r, 0] = item.ecosystem == "npm"
            x[r, 1] = len(item.behaviours)
            x[r, 2] = len(set(item.behaviours))
            for b, c in Counter(item.behaviours).items():
                col = self.vocabulary.get(f"n:{b}")
                if col is not None:
                    x[r, col] = c
            for g, c in Counter(_bigrams(item.sequence)).items():
                col = self.vocabulary.get(f"bi:{g}")
                if col is not None:
                    x[r, col] = c
        return x

    def fit(self, train: Sequence[ModelInput], labels: Sequence[int]) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier

        self.vocabulary = self._vocab(train)
        self.model = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=0.08,
            max_leaf_nodes=31,
            l2_regularization=1.0,
            early_stopping=len(train) >= 200,
            validation_fraction=0.15,
            n_iter_no_change=20,
            random_state=self.seed,
        )
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.threads):
            self.model.fit(self.matrix(train), list(labels))

    def scores(self, items: Sequence[ModelInput]) -> list[float]:
        if not items:
            return []
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.threads):
            proba = self.model.predict_proba(self.matrix(items))
        return [float(p) for p in proba[:, 1]]
