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
from collections.abc import Sequence
from typing import Any, Protocol

from malseq.model.profile import BehaviourProfile
from malseq_lab.model.fit import fit_sklearn, matrix

# What a baseline sees of one package (ecosystem, every event's behaviour, the sequence's ids).
ModelInput = BehaviourProfile


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


class TreeBaseline:
    """The behaviour-profile model (`malseq.model.profile`) scored with scikit-learn."""

    name = "gbt"

    def __init__(self, min_bigram_count: int = 3, seed: int = 0, max_iter: int = 300, threads: int = 1) -> None:
        self.min_bigram_count = min_bigram_count
        self.threads = threads
        self.seed = seed
        self.max_iter = max_iter
        self.features: tuple[str, ...] = ()
        self.model: Any = None

    def fit(self, train: Sequence[ModelInput], labels: Sequence[int]) -> None:
        self.model, self.features = fit_sklearn(train, labels, seed=self.seed, max_iter=self.max_iter,
                                                threads=self.threads, min_bigram_count=self.min_bigram_count)

    def scores(self, items: Sequence[ModelInput]) -> list[float]:
        if not items:
            return []
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.threads):
            proba = self.model.predict_proba(matrix(items, self.features))
        return [float(p) for p in proba[:, 1]]
