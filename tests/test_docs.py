from __future__ import annotations

import argparse
import importlib.util
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from malseq import _cli

REPO = Path(__file__).resolve().parent.parent
# Every page a user reads: what they copy from here must run as written.
PAGES = sorted([REPO / "README.md", REPO / "CONTRIBUTING.md", REPO / "examples" / "README.md",
                REPO / "bench" / "README.md", *(REPO / "docs").rglob("*.md")])
COMMANDS = ("scan", "diff", "audit", "watch", "serve", "corpus", "eval", "train")
# `malseq CMD ...` where a shell would see the command: at the start, after a prompt, `run:`, `&&`, a pipe
# or an opening parenthesis; `.venv/bin/malseq` too. Not `malseq-lab`, not `malseq.toml`.
_MALSEQ = re.compile(r"(?:^|[\s:;&|(`$])(?:[\w./-]*/)?malseq\s+(" + "|".join(COMMANDS) + r")\b")
_SCRIPT = re.compile(r"(?:^|[\s`(=])((?:bench|tools|ci)/[\w/.-]+\.(?:py|sh))\b")
_OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def test_behaviour_catalogue_doc_is_current() -> None:
    spec = importlib.util.spec_from_file_location("gen", REPO / "tools" / "gen_behaviours_doc.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    current = (REPO / "docs" / "behaviours.md").read_text(encoding="utf-8")
    assert current == gen.render(), "run: python tools/gen_behaviours_doc.py"


def _commands_and_scripts(text: str) -> Iterator[tuple[int, str]]:
    """(line number, shell text) for each command shown on a page: every line of a code block (a
    usage line's indented `[--flag ...]` continuations and `\\` continuations joined to it) and every
    inline code span."""
    in_block = False
    current: tuple[int, str] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            if current:
                yield current
            current, in_block = None, not in_block
            continue
        if not in_block:
            for span in re.findall(r"`([^`]+)`", line):
                yield number, span
            continue
        stripped = line.strip()
        if current and (line[:1].isspace() and stripped[:1] in "[-" or current[1].endswith("\\")):
            current = (current[0], current[1].rstrip("\\") + " " + stripped)
            continue
        if current:
            yield current
        current = (number, line)
    if current:
        yield current


def _shell_words(rest: str) -> str:
    """The part of a command line that belongs to this command: up to a comment, a pipe, a redirection
    or the next command; `$(...)` substitutions (another program's options) removed."""
    rest = re.sub(r"\$\([^)]*\)", "VALUE", rest)
    return re.split(r"\s#|\s\||[;&]|\s>|\)|`", rest)[0]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


@cache
def _parser() -> argparse.ArgumentParser:
    return _cli._build_parser(_cli._load_plugins(None))


def _documented_commands() -> Iterator[tuple[str, str, str]]:
    """(where, command word, the rest of its line) for every `malseq CMD ...` on the pages."""
    for page in PAGES:
        for number, text in _commands_and_scripts(page.read_text(encoding="utf-8")):
            for match in _MALSEQ.finditer(text):
                where = f"{page.relative_to(REPO)}:{number}"
                yield where, match.group(1), _shell_words(text[match.end():])


def test_every_documented_command_has_its_options_and_choices() -> None:
    """`malseq CMD --flag` anywhere in README.md, CONTRIBUTING.md or docs/ names an option CMD has
    (its subcommand's, for `malseq corpus build`), and a usage line's `--flag a|b|c` lists exactly the
    choices the option takes."""
    commands = _subparsers(_parser())
    seen: set[str] = set()
    problems = []
    for where, word, rest in _documented_commands():
        if word not in commands:  # the lab's commands, when the lab is not installed
            continue
        seen.add(word)
        parser = commands[word]
        words = rest.replace("[", " ").replace("]", " ").split()
        nested = _subparsers(parser)
        if nested and words and words[0] in nested:
            parser = nested[words[0]]
        options = {name: action for action in parser._actions for name in action.option_strings}
        for option in _OPTION.findall(" ".join(w for w in words if w.startswith("-"))):
            if option not in options:
                problems.append(f"{where}: malseq {word} has no option {option}")
        for option, listed in re.findall(r"(--[\w-]+)[ =]([\w.-]+(?:\|[\w.-]+)+)", rest):
            action = options.get(option)
            if action is not None and action.choices is not None and listed.split("|") != list(action.choices):
                problems.append(f"{where}: malseq {word} {option} {listed}, but it takes "
                                f"{'|'.join(map(str, action.choices))}")
    assert not problems, "\n".join(problems)
    assert {"scan", "diff", "audit", "watch", "serve"} <= seen  # the pages were read


def test_every_documented_script_option_exists() -> None:
    """`bench/x.py --flag` (and tools/, ci/) on the pages: the script exists and spells that option."""
    problems = []
    for page in PAGES:
        for number, text in _commands_and_scripts(page.read_text(encoding="utf-8")):
            for match in _SCRIPT.finditer(text):
                where = f"{page.relative_to(REPO)}:{number}"
                script = REPO / match.group(1)
                if not script.is_file():
                    problems.append(f"{where}: no script {match.group(1)}")
                    continue
                source = script.read_text(encoding="utf-8")
                for option in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", _shell_words(text[match.end():])):
                    if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", source):
                        problems.append(f"{where}: {match.group(1)} has no option {option}")
    assert not problems, "\n".join(problems)


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as dashes."""
    anchors, in_block = set(), False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_block = not in_block
        elif not in_block and line.startswith("#"):
            anchors.add(re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_reach_a_file_and_heading(page: Path) -> None:
    problems = []
    for link in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", link):  # https:, mailto:
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            problems.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            problems.append(f"{link}: no heading #{anchor} in {target.relative_to(REPO)}")
    assert not problems, "\n".join(problems)


def _readme_prose() -> str:
    return " ".join((REPO / "README.md").read_text(encoding="utf-8").split())


def _agrees(shown: str, value: float) -> bool:
    """`shown` is `value` rounded to as many decimals as `shown` has."""
    decimals = len(shown.partition(".")[2])
    return round(value, decimals) == float(shown)


def test_readme_headline_figures_are_those_measured_for_the_running_analysis_code() -> None:
    """The README's accuracy sentence quotes the measurement the model card records for this analysis
    code (`analysis_keys_validated`: the entry names its results file), rounded as shown."""
    import json

    from malseq.analysis import analysis_key

    card = json.loads((REPO / "src" / "malseq" / "model" / "data" / "model_card.json").read_text(encoding="utf-8"))
    entry = next((e for e in card.get("analysis_keys_validated", []) if e["key"] == analysis_key()), None)
    if entry is None:  # the scan warns that the model is not measured on this code; nothing to quote yet
        pytest.skip("the running analysis code has not been measured yet (no analysis_keys_validated entry)")
    [results] = [p for p in re.findall(r"docs/results/[\w/.-]+\.json", entry["measured"])]
    measured = json.loads((REPO / results).read_text(encoding="utf-8"))
    sentence = re.search(
        r"flags ([\d.]+)% of benign PyPI and ([\d.]+)% of benign npm releases and catches (\d+)% / (\d+)% of "
        r"malware \(F1 ([\d.]+) / ([\d.]+)\); `--operating-point balanced` catches (\d+)% / (\d+)% \(F1 ([\d.]+) / "
        r"([\d.]+)\) at ([\d.]+)% / ([\d.]+)% false positives", _readme_prose())
    assert sentence, "README.md: the headline accuracy sentence changed shape; update this test with it"
    low, balanced = measured["low-fpr"], measured["balanced"]
    expected = [
        100 * low["pypi"]["fpr"], 100 * low["npm"]["fpr"], 100 * low["pypi"]["recall"], 100 * low["npm"]["recall"],
        low["pypi"]["f1"], low["npm"]["f1"], 100 * balanced["pypi"]["recall"], 100 * balanced["npm"]["recall"],
        balanced["pypi"]["f1"], balanced["npm"]["f1"], 100 * balanced["pypi"]["fpr"], 100 * balanced["npm"]["fpr"],
    ]
    wrong = [f"{shown} (measured {value:.4g})" for shown, value in zip(sentence.groups(), expected, strict=True)
             if not _agrees(shown, value)]
    assert not wrong, f"README.md figures differ from {results}: {wrong}"


def test_readme_injection_recall_is_the_published_summary() -> None:
    import json

    summary = json.loads((REPO / "docs" / "results" / "diff" / "injections-shipped-summary.json").read_text(
        encoding="utf-8"))
    shown = re.search(r"it flags ([\d.]+)% against ([\d.]+)% for the plain scan", _readme_prose())
    assert shown, "README.md: the injection sentence changed shape; update this test with it"
    delta, plain = (re.search(r"\(([\d.]+)%\)", summary["all"][key]) for key in ("delta_recall", "plain_scan_recall"))
    assert delta and plain and shown.groups() == (delta.group(1), plain.group(1))


def test_readme_delta_model_figures_are_the_published_test_read() -> None:
    import json

    summary = json.loads((REPO / "docs" / "results" / "diff" / "delta-model-test-summary.json").read_text(
        encoding="utf-8"))
    shown = re.search(r"the delta model flags ([\d.]+)% \(PyPI ([\d.]+)%, npm ([\d.]+)%\), and it fired on "
                      r"(\d+) of the\s+([\d,]+) benign pairs", _readme_prose())
    assert shown, "README.md: the delta model sentence changed shape; update this test with it"

    def percent(eco: str) -> str:
        found = re.search(r"\(([\d.]+)%\)", summary[eco]["injections"]["delta_model"])
        assert found
        return found.group(1)

    pairs = summary["all"]["benign_pairs"]
    fires = int(pairs["delta_model_fires"].split("/")[0])
    assert shown.groups() == (percent("all"), percent("pypi"), percent("npm"), str(fires), f"{pairs['n']:,}")
