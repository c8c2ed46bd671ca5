"""Grouped train / validation / test splits, random or time-ordered, saved to a file.

A group (see `malseq_lab.corpus.grouping`) is never cut: every split decision is made per
group. Groups are stratified by (ecosystem, label) — a group with any malicious member
counts as malicious — so each split gets its share of every stratum.

- "random": groups ordered by a seeded hash, each assigned to the split furthest below its
  target share of the stratum's samples.
- "time": in strata with dates, each group is dated by its earliest dated member and whole
  dates go to train first, then validation, then test: the model is trained on the past and
  tested on later samples. Undated groups in such a stratum, and strata without dates
  (benign lists, npm), get the random assignment.

The result is written as JSON (`meta` + `samples`) and reused by later runs.

Protocols: `time` is the primary one (issue 11: users meet malware written after the training
data): PyPI malicious by `added`, the newest ~25% tested, npm and the benign lists grouped at
random and reported apart; its split lives in `split-time.json`. `random` (the grouped random
split of the earlier releases) stays in `split.json`.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)

PROTOCOLS = ("time", "random")
DEFAULT_PROTOCOL = "time"
# time: the newest quarter of the dated samples is the test split
PROTOCOL_FRACTIONS: dict[str, tuple[float, float, float]] = {"time": (0.6, 0.15, 0.25), "random": DEFAULT_FRACTIONS}
_PROTOCOL_FILES = {"time": "split-time.json", "random": "split.json"}


def split_file_name(protocol: str) -> str:
    """The work dir's split file for a protocol: `split-time.json` or `split.json`."""
    if protocol not in _PROTOCOL_FILES:
        raise ValueError(f"unknown protocol {protocol!r} (one of {', '.join(PROTOCOLS)})")
    return _PROTOCOL_FILES[protocol]


@dataclass(frozen=True)
class SplitItem:
    key: str
    group: str
    ecosystem: str
    label: int
    added: str = ""


@dataclass(frozen=True)
class Split:
    assignments: dict[str, str]  # sample key -> "train" | "val" | "test"
    groups: dict[str, str]  # sample key -> group id
    meta: dict[str, object]

    def keys(self, split: str) -> list[str]:
        return sorted(k for k, v in self.assignments.items() if v == split)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        samples = [
            {"key": k, "split": self.assignments[k], "group": self.groups.get(k, k)} for k in sorted(self.assignments)
        ]
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps({"meta": self.meta, "samples": samples}, indent=1, sort_keys=True) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Split:
        doc = json.loads(Path(path).read_text())
        return cls(
            {s["key"]: s["split"] for s in doc["samples"]},
            {s["key"]: s["group"] for s in doc["samples"]},
            doc["meta"],
        )


def _order(seed: int, group: str) -> str:
    return hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()


def _assign_random(groups: list[tuple[str, int]], fractions: Sequence[float], seed: int,
                   already: Sequence[int] = (0, 0, 0)) -> dict[str, str]:
    """`already`: samples of the stratum that pinned groups put in each split (they count toward its share)."""
    total = sum(n for _, n in groups) + sum(already)
    target = [f * total for f in fractions]
    have = list(already)
    out = {}
    for group, n in sorted(groups, key=lambda g: _order(seed, g[0])):
        # the split furthest below its target, relative to the target
        best = max(range(len(SPLITS)), key=lambda i: ((target[i] - have[i]) / target[i] if target[i] else -1e9, -i))
        out[group] = SPLITS[best]
        have[best] += n
    return out


def _assign_time(groups: list[tuple[str, int, str]], fractions: Sequence[float]) -> dict[str, str]:
    by_date: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for g, n, date in groups:
        by_date[date].append((g, n))
    total = sum(n for _, n, _ in groups)
    bounds = [fractions[0] * total, (fractions[0] + fractions[1]) * total]
    out: dict[str, str] = {}
    done = 0
    split = 0
    for date in sorted(by_date):
        size = sum(n for _, n in by_date[date])
        # move on when this whole date would overshoot the split's share by more than half of it
        while split < 2 and done + size / 2 > bounds[split]:
            split += 1
        for g, _ in by_date[date]:
            out[g] = SPLITS[split]
        done += size
    return out


def _pinned_split(keys: Sequence[str], pinned: Mapping[str, str]) -> str | None:
    """The split a group keeps from an earlier split: the most held-out one any member had, so a
    sample once held out is never trained on (groups can merge when the corpus grows)."""
    had = {pinned[k] for k in keys if k in pinned}
    return next((s for s in reversed(SPLITS) if s in had), None)


def _time_after_pinned(date: str, latest: Mapping[str, str]) -> str:
    """A new dated group's split in a stratum whose older groups are pinned: after the newest
    validation date it is test, after the newest training date validation, else training."""
    if latest.get("val") and date > latest["val"]:
        return "test"
    if latest.get("train") and date > latest["train"]:
        return "val"
    return "train"


def make_split(
    items: Sequence[SplitItem],
    mode: str = "random",
    seed: int = 20261101,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    pinned: Mapping[str, str] | None = None,
) -> Split:
    """`pinned` (sample key -> split, e.g. an earlier corpus's split file): a group with a pinned member
    keeps that split (the most held-out one, when members differ); only the other groups are assigned,
    counting the pinned ones toward each split's share. A grown corpus so keeps its old test set held out.
    """
    pinned = pinned or {}
    if mode not in ("random", "time"):
        raise ValueError(f"unknown split mode {mode!r}")
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-6 or min(fractions) < 0:
        raise ValueError("fractions must be three non-negative numbers summing to 1")
    members: dict[str, list[SplitItem]] = defaultdict(list)
    for it in items:
        members[it.group].append(it)
    strata: dict[tuple[str, int], list[str]] = defaultdict(list)
    for g, ms in members.items():
        ecos = sorted({m.ecosystem for m in ms})
        eco = max(ecos, key=lambda e: (sum(m.ecosystem == e for m in ms), e))
        strata[(eco, max(m.label for m in ms))].append(g)
    group_split: dict[str, str] = {}
    stratum_modes = {}
    for (eco, label), all_groups in sorted(strata.items()):
        already = [0, 0, 0]
        latest: dict[str, str] = {}
        groups = []
        for g in all_groups:
            kept = _pinned_split([m.key for m in members[g]], pinned)
            if kept is None:
                groups.append(g)
                continue
            group_split[g] = kept
            already[SPLITS.index(kept)] += len(members[g])
            dates = [m.added for m in members[g] if m.added]
            # a group is dated by its earliest member, as `_assign_time` dates it
            if dates and min(dates) > latest.get(kept, ""):
                latest[kept] = min(dates)
        dated = [g for g in groups if any(m.added for m in members[g])]
        if mode == "time" and set(latest) == {"test"}:
            # only a test set is pinned (e.g. a fixed test set carried over to a new corpus): a
            # group dated on or after the test set's first date is test, as it would have been; the
            # older ones are split by time into train and validation at the same relative shares.
            # The test set's first date is read from the pinned samples' own dates, not from their
            # groups': a group that grew (an older copy joined a pinned sample's group) would
            # otherwise move the cut-off back and pull newer groups into test
            stratum_modes[f"{eco}/{label}"] = "time"
            test_start = min(
                m.added
                for g in all_groups
                if group_split.get(g) == "test"
                for m in members[g]
                if m.added and pinned.get(m.key) == "test"
            ) if any(m.added and pinned.get(m.key) == "test" for g in all_groups for m in members[g]) \
                else latest["test"]
            older = []
            for g in dated:
                date = min(m.added for m in members[g] if m.added)
                if date >= test_start:
                    group_split[g] = "test"
                else:
                    older.append((g, len(members[g]), date))
            train_and_val = fractions[0] + fractions[1]
            shares = ((fractions[0] / train_and_val, fractions[1] / train_and_val, 0.0) if train_and_val
                      else (1.0, 0.0, 0.0))
            group_split.update(_assign_time(older, shares))
            undated = [g for g in groups if g not in set(dated)]
            group_split.update(_assign_random([(g, len(members[g])) for g in undated], fractions, seed, already))
        elif mode == "time" and latest:
            stratum_modes[f"{eco}/{label}"] = "time"
            for g in dated:
                group_split[g] = _time_after_pinned(min(m.added for m in members[g] if m.added), latest)
            undated = [g for g in groups if g not in set(dated)]
            group_split.update(_assign_random([(g, len(members[g])) for g in undated], fractions, seed, already))
        elif mode == "time" and dated:
            # a group's date is its earliest dated member's; the few groups without any date
            # (e.g. a campaign copy that also sits in a benign list) are placed at random
            stratum_modes[f"{eco}/{label}"] = "time"
            group_split.update(
                _assign_time(
                    [(g, len(members[g]), min(m.added for m in members[g] if m.added)) for g in dated], fractions
                )
            )
            undated = [g for g in groups if g not in set(dated)]
            group_split.update(_assign_random([(g, len(members[g])) for g in undated], fractions, seed))
        else:
            stratum_modes[f"{eco}/{label}"] = "random"
            group_split.update(_assign_random([(g, len(members[g])) for g in groups], fractions, seed, already))
    assignments = {it.key: group_split[it.group] for it in items}
    counts: dict[str, dict[str, int]] = {}
    date_ranges: dict[str, dict[str, list[str]]] = {}
    for it in items:
        s = assignments[it.key]
        c = counts.setdefault(f"{it.ecosystem}/{'malicious' if it.label else 'benign'}", dict.fromkeys(SPLITS, 0))
        c[s] += 1
        if it.added and stratum_modes.get(f"{it.ecosystem}/{it.label}") == "time":
            r = date_ranges.setdefault(it.ecosystem, {}).setdefault(s, [it.added, it.added])
            r[0], r[1] = min(r[0], it.added), max(r[1], it.added)
    meta: dict[str, object] = {
        "mode": mode,
        "seed": seed,
        "fractions": list(fractions),
        "strata": stratum_modes,
        "counts": counts,
        "groups": len(members),
        "largest_group": max((len(v) for v in members.values()), default=0),
        "date_ranges": date_ranges,
    }
    if pinned:
        meta["pinned"] = sum(k in pinned for k in assignments)
    return Split(assignments, {it.key: it.group for it in items}, meta)
