"""Metadata features (EA4MP-style) from a package's manifest and archive, and a small model over them.

Features (all numbers; see `FEATURES`): ecosystem; name closeness to a popular package of the
same ecosystem (Damerau-Levenshtein distance 1 or 2, not equal; popular names are the
"popular" stratum of the shared benign lists, shipped in `data/popular-*.txt`); version
patterns (0.0.x, a major version >= 90 such as 99.x used in dependency confusion, pre-release,
unparsable); missing description, homepage/repository, licence, author; the author e-mail
(missing, a free-mail domain); install-time hooks (npm lifecycle scripts, setup.py in an sdist,
.pth files); file count and size (log); bundled binaries; README present; dependency count.

The model is a logistic regression trained with numpy (`fit_logistic`) and stored as JSON
(`MetadataModel`): scanning evaluates it in pure Python, with no numpy or scikit-learn.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from malseq.intake.package import Ecosystem, Package
from malseq.model import DATA_DIR
from malseq.model._math import sigmoid

FEATURES: tuple[str, ...] = (
    "ecosystem_npm",
    "name_typosquat",
    "name_typosquat_distance_1",
    "name_has_digit_run",
    "version_zero_zero",
    "version_high_major",
    "version_prerelease",
    "version_unparsed",
    "no_description",
    "no_homepage",
    "no_license",
    "no_author",
    "email_missing",
    "email_freemail",
    "install_scripts",
    "setup_py_sdist",
    "pth_files",
    "log_files",
    "log_bytes",
    "binaries",
    "no_readme",
    "few_files",
    "log_dependencies",
)

FREEMAIL = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "yahoo.com", "yandex.ru", "yandex.com",
    "mail.ru", "protonmail.com", "proton.me", "qq.com", "163.com", "126.com", "icloud.com", "aol.com", "gmx.com",
    "gmx.de", "tutanota.com", "bk.ru", "inbox.ru", "rambler.ru", "foxmail.com", "zoho.com", "mail.com",
})

_EMAIL = re.compile(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)")
_VERSION = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(.*)$")


def normalise_name(name: str, ecosystem: str) -> str:
    name = name.strip().lower()
    if ecosystem == "pypi":
        return re.sub(r"[-_.]+", "-", name)
    return name


@lru_cache(maxsize=4)
def popular_names(ecosystem: str) -> frozenset[str]:
    path = DATA_DIR / f"popular-{ecosystem}.txt"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return frozenset()
    return frozenset(normalise_name(x, ecosystem) for x in lines if x.strip())


def _deletes(word: str, depth: int) -> set[str]:
    out = {word}
    frontier = {word}
    for _ in range(depth):
        nxt = set()
        for w in frontier:
            for i in range(len(w)):
                nxt.add(w[:i] + w[i + 1 :])
        out |= nxt
        frontier = nxt
    return out


@lru_cache(maxsize=4)
def _delete_index(ecosystem: str) -> dict[str, tuple[str, ...]]:
    index: dict[str, list[str]] = {}
    for name in popular_names(ecosystem):
        for d in _deletes(name, 2):
            index.setdefault(d, []).append(name)
    return {k: tuple(v) for k, v in index.items()}


def damerau_levenshtein(a: str, b: str) -> int:
    """Optimal string alignment distance (adjacent transpositions count 1)."""
    if a == b:
        return 0
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def closest_popular(name: str, ecosystem: str, max_distance: int = 2) -> tuple[str, int] | None:
    """The closest popular name within `max_distance` (1..2) that is not the name itself."""
    norm = normalise_name(name, ecosystem)
    popular = popular_names(ecosystem)
    if norm in popular or len(norm) < 4:  # the package itself, or too short to say anything
        return None
    index = _delete_index(ecosystem)
    candidates: set[str] = set()
    for d in _deletes(norm, min(2, max_distance)):
        candidates.update(index.get(d, ()))
    best: tuple[str, int] | None = None
    for c in sorted(candidates):
        dist = damerau_levenshtein(norm, c)
        if 0 < dist <= max_distance and (best is None or dist < best[1]):
            best = (c, dist)
    return best


def version_features(version: str) -> dict[str, float]:
    m = _VERSION.match(version.strip())
    if not m:
        return {"version_zero_zero": 0.0, "version_high_major": 0.0, "version_prerelease": 0.0,
                "version_unparsed": 1.0}
    major, minor = int(m.group(1)), int(m.group(2) or 0)
    rest = m.group(4) or ""
    return {
        "version_zero_zero": float(major == 0 and minor == 0),
        "version_high_major": float(major >= 90),
        "version_prerelease": float(bool(re.search(r"[a-z]", rest.lower()))),
        "version_unparsed": float(bool(rest) and not re.match(r"^[.\-+]?[0-9a-z.+\-]*$", rest.lower())),
    }


def _email_domain(*texts: str) -> str | None:
    for t in texts:
        m = _EMAIL.search(t or "")
        if m:
            return m.group(1).lower()
    return None


def features_of(package: Package) -> dict[str, float]:
    """The metadata feature vector of a package, keyed by `FEATURES` names."""
    eco = package.ecosystem.value if package.ecosystem != Ecosystem.UNKNOWN else "pypi"
    description = homepage = license_ = author = email_text = ""
    install_scripts = setup_py = pth = 0
    dependencies = 0
    if package.npm is not None:
        n = package.npm
        description, homepage, license_, author = n.description, n.homepage or n.repository, n.license, n.author
        email_text = n.author
        install_scripts = len(n.lifecycle_scripts)
        dependencies = len(n.dependencies)
    elif package.pypi is not None:
        p = package.pypi
        description, homepage, license_, author = p.summary, p.home_page, p.license, p.author or p.author_email
        email_text = p.author_email or p.author
        setup_py = int(p.has_setup_py and not p.is_wheel)
        pth = len(p.pth_files)
    close = closest_popular(package.name, eco)
    domain = _email_domain(email_text)
    files = len(package.files)
    readme = any(f.path.rsplit("/", 1)[-1].lower().startswith("readme") for f in package.files)
    out = {
        "ecosystem_npm": float(eco == "npm"),
        "name_typosquat": float(close is not None),
        "name_typosquat_distance_1": float(close is not None and close[1] == 1),
        "name_has_digit_run": float(bool(re.search(r"\d{3,}", package.name))),
        **version_features(package.version),
        "no_description": float(not description.strip()),
        "no_homepage": float(not homepage.strip()),
        "no_license": float(not license_.strip() or license_.strip().upper() == "UNKNOWN"),
        "no_author": float(not author.strip()),
        "email_missing": float(domain is None),
        "email_freemail": float(domain in FREEMAIL),
        "install_scripts": float(install_scripts > 0),
        "setup_py_sdist": float(setup_py),
        "pth_files": float(pth > 0),
        "log_files": math.log1p(files),
        "log_bytes": math.log1p(package.total_size),
        "binaries": float(any(f.is_binary for f in package.files)),
        "no_readme": float(not readme),
        "few_files": float(files <= 3),
        "log_dependencies": math.log1p(dependencies),
    }
    return {k: out[k] for k in FEATURES}


def vector(features: Mapping[str, float]) -> list[float]:
    return [float(features.get(k, 0.0)) for k in FEATURES]


# -- the model


@dataclass(frozen=True)
class MetadataModel:
    """Standardised logistic regression: p = sigmoid(b + sum w_i (x_i - mean_i) / std_i)."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    info: Mapping[str, Any] | None = None

    def score(self, features: Mapping[str, float]) -> float:
        z = self.intercept
        for name, m, s, w in zip(self.features, self.mean, self.std, self.coef, strict=True):
            z += w * (float(features.get(name, 0.0)) - m) / s
        return sigmoid(z)

    def to_json(self) -> str:
        doc = {"features": list(self.features), "mean": list(self.mean), "std": list(self.std),
               "coef": list(self.coef), "intercept": self.intercept, "info": dict(self.info or {})}
        return json.dumps(doc, indent=1, sort_keys=True) + "\n"

    def save(self, path: Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> MetadataModel:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(tuple(doc["features"]), tuple(doc["mean"]), tuple(doc["std"]), tuple(doc["coef"]),
                   float(doc["intercept"]), doc.get("info") or {})


def fit_logistic(
    rows: Sequence[Mapping[str, float]], labels: Sequence[int], l2: float = 1.0, balanced: bool = True,
    iterations: int = 50,
) -> MetadataModel:
    """L2-regularised logistic regression by Newton's method (numpy; training only)."""
    import numpy as np

    x = np.array([vector(r) for r in rows], dtype=np.float64)
    y = np.array(labels, dtype=np.float64)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std < 1e-9] = 1.0
    z = (x - mean) / std
    z = np.hstack([np.ones((len(z), 1)), z])
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    w_sample = np.where(y > 0, len(y) / (2 * n_pos), len(y) / (2 * n_neg)) if balanced and n_pos and n_neg else np.ones(
        len(y))
    beta = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], l2)
    reg[0] = 0.0
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(z @ beta)))
        grad = z.T @ (w_sample * (p - y)) + reg * beta
        h = (z * (w_sample * p * (1 - p))[:, None]).T @ z + np.diag(reg) + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(h, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return MetadataModel(FEATURES, tuple(mean.tolist()), tuple(std.tolist()), tuple(beta[1:].tolist()),
                         float(beta[0]), {"l2": l2, "balanced": balanced, "n": len(y), "malicious": int(n_pos)})
