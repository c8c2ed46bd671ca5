"""`malseq scan --engine ray`: a local Ray instance started here (2 CPUs, one for the module), a task
that kills its Ray worker, retries, resume, and verdicts identical to `malseq scan`.

The instance is started with malseq's `local_instance_settings`, as `--engine ray` starts its own: every
server listens on loopback only (test_ray_loopback.py checks that), and it requires a random token (Ray's
token authentication, kept in this process's environment: no file is written).
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import ray_faults  # tests/engine, beside this file

from malseq.intake import IntakeOptions
from malseq.ray_engine import WORKER_LOST, RayOptions, local_instance_settings, read_finished, scan_on_ray
from malseq.report.json_report import result_to_dict
from malseq.scan import ScanOptions, TargetResult, scan

# not imported here: the fixture imports it once the workers' PYTHONPATH is set
pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason="the ray extra is not installed (pip install -e '.[ray]'; `make test` has it)")

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = [str(REPO / "examples" / name) for name in ("npm-env-exfil", "pypi-install-dropper", "pypi-clean-lib")]
OPTIONS = ScanOptions(intake=IntakeOptions(offline=True), isolate=True)


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    saved = os.environ.get("PYTHONPATH")
    # the workers are started by the raylet with this environment: this worktree's malseq first
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [saved])])
    import ray

    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths live under it
    try:
        with local_instance_settings():
            context = ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp,
                               object_store_memory=80 * 1024 * 1024, log_to_driver=False, configure_logging=False)
            ray.cloudpickle.register_pickle_by_value(ray_faults)  # the workers need not import the tests
            try:
                # the CLI test connects to this instance: it finds the token in the environment it inherits
                yield str(context.address_info["gcs_address"])
            finally:
                ray.shutdown()
    finally:
        shutil.rmtree(temp, ignore_errors=True)
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def npm_tgz(path: Path) -> Path:
    files = {"package/package.json": json.dumps({"name": "plain-lib", "version": "1.0.0", "main": "index.js"}),
             "package/index.js": "module.exports = function add(a, b) { return a + b; };\n"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buf.getvalue(), mtime=0))
    return path


def without_seconds(entry: object) -> object:
    if isinstance(entry, dict):
        return {k: without_seconds(v) for k, v in entry.items() if k != "seconds"}
    if isinstance(entry, list):
        return [without_seconds(v) for v in entry]
    return entry


def lines(out_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for p in sorted(out_dir.glob("results-*.jsonl")) for line in p.read_text().splitlines()]


def drain(run: object) -> tuple[list[TargetResult], object]:
    results = []
    while True:
        try:
            results.append(next(run))  # type: ignore[call-overload]
        except StopIteration as stop:
            return results, stop.value


def test_a_lost_worker_is_retried_or_reported_the_rest_match_scan_and_a_rerun_resumes(
        ray_address: str, tmp_path: Path) -> None:
    once = str(npm_tgz(tmp_path / ray_faults.CRASH_ONCE))
    always = str(npm_tgz(tmp_path / ray_faults.CRASH_ALWAYS))
    raises = str(npm_tgz(tmp_path / ray_faults.RAISES))
    texts = [*EXAMPLES, once, always, raises]
    out = tmp_path / "out"

    results, summary = drain(scan_on_ray(texts, OPTIONS, RayOptions(out, max_retries=1, shard_size=2),
                                         task=ray_faults.faulty_scan_task))
    by_target = {r.target: r for r in results}
    assert sorted(by_target) == sorted(texts)
    # killed on every attempt: 1 + max_retries attempts, then an error entry; the batch went on
    assert by_target[always].error is not None and by_target[always].error.kind == WORKER_LOST
    assert len(ray_faults.attempts_file(Path(always)).read_text().splitlines()) == 2
    # killed once: Ray re-ran it in a fresh worker, and it was scanned
    assert len(ray_faults.attempts_file(Path(once)).read_text().splitlines()) == 2
    assert by_target[once].error is None and by_target[once].verdict == "benign"
    # an exception in the task is that target's error, reported once
    assert by_target[raises].error is not None and by_target[raises].error.kind == "InternalError"
    assert "injected fault" in by_target[raises].error.message

    # the same verdicts, scores and whole entries as `malseq scan` of the same targets (here in-process)
    reference = {r.target: r for r in scan([*EXAMPLES, once], replace(OPTIONS, isolate=False))}
    for text, expected in reference.items():
        assert by_target[text].verdict == expected.verdict and by_target[text].score == expected.score
        assert without_seconds(result_to_dict(by_target[text])) == without_seconds(result_to_dict(expected))
    assert [by_target[t].verdict for t in EXAMPLES] == ["malicious", "malicious", "benign"]

    # one line per target, in shards of at most 2 lines
    stored = lines(out)
    assert sorted(str(e["target"]) for e in stored) == sorted(texts)
    assert summary.scanned == 6 and summary.skipped == 0 and len(summary.shards) == 3  # type: ignore[attr-defined]
    assert all(len(p.read_text().splitlines()) <= 2 for p in summary.shards)  # type: ignore[attr-defined]

    # resume: a re-run scans only the target whose worker was lost; the finished ones (errors too) are skipped
    again, summary2 = drain(scan_on_ray(texts, OPTIONS, RayOptions(out)))
    assert [r.target for r in again] == [always]
    assert again[0].error is None and again[0].verdict == "benign"
    assert summary2.skipped == 5 and summary2.scanned == 1  # type: ignore[attr-defined]
    assert set(read_finished(out)) == set(texts)
    # a third run has nothing left to do and starts no task
    third, summary3 = drain(scan_on_ray(texts, OPTIONS, RayOptions(out)))
    assert third == [] and summary3.skipped == 6  # type: ignore[attr-defined]


def test_a_torn_last_line_is_cut_and_its_target_scanned_again(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    whole = json.dumps({"target": "a.tgz", "verdict": "benign", "score": 0.01}) + "\n"
    (out / "results-20260101T000000-1-00000.jsonl").write_text(whole + '{"target": "b.tgz", "verd')
    assert set(read_finished(out)) == {"a.tgz"}
    assert (out / "results-20260101T000000-1-00000.jsonl").read_text() == whole


def test_the_cli_scans_on_a_running_cluster_and_resumes(ray_address: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-m", "malseq", "scan", "--engine", "ray", "--address", ray_address, "--out-dir",
            str(out), "--offline", "--no-config", "--format", "json", *EXAMPLES]
    first = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert first.returncode == 1, first.stderr  # two of the examples are flagged
    summary = json.loads(first.stdout)["summary"]
    assert (summary["scanned_now"], summary["already_done"], summary["flagged"], summary["errors"]) == (3, 0, 2, 0)
    assert sorted(str(e["target"]) for e in lines(out)) == sorted(EXAMPLES)
    second = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert second.returncode == 1, second.stderr  # the stored verdicts still decide the exit code
    summary = json.loads(second.stdout)["summary"]
    assert (summary["scanned_now"], summary["already_done"], summary["flagged"]) == (0, 3, 2)
    assert len(lines(out)) == 3
    # a --lockfile whose -r include is missing fails the run on Ray too (exit 3 under fail-on errors, as
    # `malseq audit`): counted with the errors, named with its line on stderr; no shard line (never scanned)
    (tmp_path / "requirements.txt").write_text("-r missing.txt\n")
    third = subprocess.run([*argv, "--lockfile", "requirements.txt", "--fail-on", "errors"], capture_output=True,
                           text=True, env=env, cwd=tmp_path, timeout=300)
    assert third.returncode == 3, third.stderr
    assert json.loads(third.stdout)["summary"]["errors"] == 1
    assert "could not be read, so nothing they pin was audited: requirements.txt line 1 (missing.txt)" in third.stderr
    assert len(lines(out)) == 3
