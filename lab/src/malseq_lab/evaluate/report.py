"""Write the evaluation as Markdown and a precision-recall plot (PNG); JSON is written by the harness."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _f(x: object, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _pct(x: object) -> str:
    return "–" if x is None else f"{100 * float(x):.1f}%"  # type: ignore[arg-type]


def _cell(text: object, limit: int = 160) -> str:
    s = "".join(ch if ch.isprintable() else " " for ch in str(text))
    s = s.replace("|", "\\|")
    return s if len(s) <= limit else s[: limit - 1] + "…"


METRIC_HEADER = (
    "| model | ecosystem | malicious / benign | threshold | precision | recall | F1 | MCC | ROC-AUC | PR-AUC "
    "| recall @0.1% FPR | recall @1% FPR | FPR | FPR popular | FPR long-tail |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def metric_row(model: str, eco: str, m: dict[str, Any]) -> str:
    strata = m.get("fpr_by_stratum", {})
    return (
        f"| {model} | {eco} | {m['malicious']} / {m['benign']} | {_f(m['threshold'])} | {_f(m['precision'])} "
        f"| {_f(m['recall'])} | {_f(m['f1'])} | {_f(m['mcc'])} | {_f(m['roc_auc'])} | {_f(m['pr_auc'])} "
        f"| {_f(m['recall_at_fpr_0_1pct'])} | {_f(m['recall_at_fpr_1pct'])} | {_pct(m['fpr'])} "
        f"| {_pct(strata.get('popular'))} | {_pct(strata.get('long-tail'))} |\n"
    )


def render_markdown(doc: dict[str, Any]) -> str:
    out = ["# malseq evaluation\n\n"]
    meta = doc.get("split", {})
    out.append(
        f"Extractor `{doc.get('extractor_version')}`; split mode `{meta.get('mode')}`, seed {meta.get('seed')}, "
        f"fractions {meta.get('fractions')}, {meta.get('groups')} groups (largest {meta.get('largest_group')}). "
        "Thresholds are chosen on the validation split (best F1) and applied unchanged to the test split.\n\n"
    )
    counts = doc.get("counts", {})
    if counts:
        out.append("| split | pypi malicious | pypi benign | npm malicious | npm benign |\n|---|---|---|---|---|\n")
        for sp in ("train", "val", "test"):
            cells = [str(counts.get(f"{sp}/{e}/{lab}", 0)) for e in ("pypi", "npm") for lab in ("malicious", "benign")]
            out.append(f"| {sp} | " + " | ".join(cells) + " |\n")
        out.append("\n")
    out.append("## Test split\n\n" + METRIC_HEADER)
    for name, entry in doc.get("models", {}).items():
        if entry.get("all"):
            out.append(metric_row(name, "all", entry["all"]))
        for eco, m in entry.get("by_ecosystem", {}).items():
            out.append(metric_row(name, eco, m))
    out.append(
        "\nRecall at a fixed FPR is the best recall whose false-positive rate on the test benign packages stays at "
        "or below the bound; with N benign packages the finest step is 1/N.\n"
    )
    speed = doc.get("analysis_seconds_per_package", {})
    if speed:
        out.append(
            "\nmalseq seconds per package (read + analyse + sequence, one process, from the analysis cache): "
            + "; ".join(
                f"{eco} mean {_f(v['mean'], 2)}, median {_f(v['median'], 2)}, p95 {_f(v['p95'], 2)}"
                for eco, v in speed.items()
            )
            + ". Scoring with a baseline adds well under a millisecond.\n"
        )
    gd = doc.get("guarddog")
    if gd:
        out.append(render_guarddog(gd))
    errors = doc.get("analysis_errors", {})
    if errors:
        out.append(
            "\n## Packages malseq could not analyse (scored as no behaviours)\n\n"
            "| ecosystem/label/error | count |\n|---|---|\n"
        )
        for k, v in sorted(errors.items()):
            out.append(f"| {_cell(k)} | {v} |\n")
    for name, entry in doc.get("models", {}).items():
        for title, key in (("false positives", "worst_false_positives"), ("false negatives", "worst_false_negatives")):
            items = entry.get(key, [])[:5]
            if not items:
                continue
            out.append(
                f"\n### {name}: worst {title}\n\n"
                "| package | stratum | score | events | sequence (behaviour ids) |\n|---|---|---|---|---|\n"
            )
            for it in items:
                out.append(
                    f"| {_cell(it['ecosystem'] + ':' + it['name'] + '@' + it['version'], 60)} | {it['stratum']} "
                    f"| {_f(it['score'])} | {it['events']} | {_cell(it['sequence'], 300)} |\n"
                )
    return "".join(out)


def render_guarddog(gd: dict[str, Any]) -> str:
    out = [
        f"\n## GuardDog {gd.get('version')} side by side\n\n"
        f"Same test packages, scanned one by one as local archives in this run: {gd.get('packages')} packages, "
        f"{gd.get('failed', 0)} GuardDog failures (counted as score 0). Seconds per package: GuardDog "
        f"{_f(gd.get('seconds_per_package', {}).get('guarddog'), 2)}, malseq (read + analyse + score, gbt) "
        f"{_f(gd.get('seconds_per_package', {}).get('malseq'), 2)}.\n\n"
    ]
    for eco, e in gd.get("by_ecosystem", {}).items():
        out.append(
            f"### {eco}: GuardDog at its score thresholds\n\n"
            "| risk score ≥ | precision | recall | F1 | FPR |\n|---|---|---|---|---|\n"
        )
        for t in e.get("thresholds", []):
            out.append(
                f"| {t['threshold']:g} | {_f(t['precision'])} | {_f(t['recall'])} | {_f(t['f1'])} "
                f"| {_pct(t['fpr'])} |\n"
            )
        out.append("\nOn the same packages:\n\n" + METRIC_HEADER)
        for name, m in e.get("compare", {}).items():
            out.append(metric_row(name, eco, m))
        out.append("\n")
    return "".join(out)


def write_plot(doc: dict[str, Any], results: Sequence[Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    from malseq_lab.evaluate.metrics import pr_curve

    ecos = ["pypi", "npm"]
    fig, axes = plt.subplots(1, len(ecos), figsize=(11, 4.5))
    for ax, eco in zip(axes, ecos, strict=True):
        for res in results:
            idx = [i for i, r in enumerate(res.test) if r.ecosystem == eco]
            labels = [res.test[i].label for i in idx]
            if not any(labels):
                continue
            pts = pr_curve(labels, [res.scores[i] for i in idx])
            ax.plot([p[2] for p in pts], [p[1] for p in pts], label=res.name, drawstyle="steps-post")
        gd = doc.get("guarddog", {}).get("scores", [])
        g = [(s["label"], s["score"]) for s in gd if s["ecosystem"] == eco]
        if g and any(lab for lab, _ in g):
            pts = pr_curve([lab for lab, _ in g], [sc for _, sc in g])
            ax.plot([p[2] for p in pts], [p[1] for p in pts], "o--", label="guarddog", markersize=3)
        ax.set_title(f"{eco} (test split)")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(doc: dict[str, Any], results: Sequence[Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.md").write_text(render_markdown(doc))
    write_plot(doc, results, out / "pr-curve.png")
