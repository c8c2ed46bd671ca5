"""Crash safety with real process kills: `malseq watch` is killed with SIGKILL at random moments
(while polling, scanning, committing, alerting), restarted each time, and finally run to the end.
Nothing may be lost, nothing stored twice, and no stored result may ever be overwritten.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from watch_registry import FakeRegistry, exfil_npm

import malseq

SRC = Path(malseq.__file__).resolve().parent.parent
KILLS = int(os.environ.get("MALSEQ_CRASH_KILLS", "20"))


def results_by_release(db: Path) -> dict[int, float]:
    if not db.exists():
        return {}
    con = sqlite3.connect(db, timeout=30)
    try:
        return dict(con.execute("SELECT release_id, scanned_at FROM results").fetchall())
    except sqlite3.OperationalError:  # killed before the schema was created
        return {}
    finally:
        con.close()


def test_kill_9_at_random_points_loses_and_duplicates_nothing(registry: FakeRegistry, tmp_path: Path) -> None:
    rng = random.Random(13)  # the same kill points on every run
    for i in range(24):
        registry.add_npm(f"npm-pkg-{i}", "1.0.0")
    for i in range(12):
        registry.add_pypi(f"py_pkg_{i}", "0.1")
    registry.add_npm("colorz-utils", "1.0.3", exfil_npm("colorz-utils", "1.0.3"))
    names = tmp_path / "names.txt"
    names.write_text("".join(f"npm:npm-pkg-{i}\n" for i in range(24)) + "".join(
        f"pypi:py_pkg_{i}\n" for i in range(12)) + "npm:colorz-utils\n")
    db = tmp_path / "watch.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "MALSEQ_PYPI_INDEX_URL": registry.index_url, "MALSEQ_NPM_REGISTRY": registry.npm_url,
           "MALSEQ_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "malseq", "watch", "--names", str(names), "--db", str(db), "--once",
           "--jobs", "2", "--batch", "2", "--rate", "0"]
    expected = {("npm", f"npm-pkg-{i}", "1.0.0") for i in range(24)} | {
        ("pypi", f"py_pkg_{i}", "0.1") for i in range(12)} | {("npm", "colorz-utils", "1.0.3")}
    alert_lines: list[str] = []
    seen_results: dict[int, float] = {}
    kills = finished_early = early_streak = 0
    finished_last = False
    # Runs go on until KILLS of them were killed: a run that drained the queue before its kill point
    # tested nothing, so new releases are published for the next one (how many rounds that takes
    # depends on the machine's load; what is checked does not).
    for round_no in range(KILLS * 6):  # faster scans drain the queue before more kill points
        if kills >= KILLS:
            break
        if round_no and (round_no % 4 == 0 or finished_last):  # new releases keep appearing: polls and
            # later scans are interrupted too
            # names on the watch list; more when the last run drained the queue before its kill point
            # a fast machine drains 8 before the kill: each run in a row that finished doubles the batch
            # (several versions of a name when it outgrows the 24 names)
            count = min(96, 8 * 2 ** (early_streak - 1)) if finished_last else 3
            fresh = [(f"npm-pkg-{(round_no + i) % 24}", f"1.{i // 24}.{round_no}") for i in range(count)]
            for name, version in fresh:
                registry.add_npm(name, version)
            expected |= {("npm", name, version) for name, version in fresh}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if rng.random() < 0.3:  # early: start-up, recovery, polling
            time.sleep(rng.uniform(0.2, 4.0))
        else:  # mid-scan: once the run has stored a result (however loaded the machine is), a moment later
            before = len(results_by_release(db))
            waited = time.monotonic()
            while proc.poll() is None and len(results_by_release(db)) <= before and time.monotonic() - waited < 120:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.5))
        finished_last = proc.poll() is not None
        early_streak = early_streak + 1 if finished_last else 0
        if not finished_last:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        else:
            finished_early += 1
        out, _ = proc.communicate(timeout=120)
        alert_lines += out.splitlines()
        now = results_by_release(db)
        for release_id, scanned_at in seen_results.items():  # a stored result is never replaced or lost
            assert now.get(release_id) == scanned_at, f"result of release {release_id} changed after a restart"
        seen_results = now

    scanned_while_killed = len(seen_results)
    assert scanned_while_killed > 0, "no run got as far as a result before its kill"
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert final.returncode in (0, 1), final.stderr
    alert_lines += final.stdout.splitlines()

    con = sqlite3.connect(db)
    releases = con.execute("SELECT ecosystem, name, version, state, tries FROM releases").fetchall()
    assert sorted((e, n, v) for e, n, v, _, _ in releases) == sorted(expected)  # none lost, none doubled
    assert {state for *_, state, _ in releases} == {"done"} and {t for *_, t in releases} == {0}
    (results,) = con.execute("SELECT COUNT(*) FROM results").fetchone()
    assert results == len(expected)
    for release_id, scanned_at in seen_results.items():
        assert con.execute("SELECT scanned_at FROM results WHERE release_id = ?", (release_id,)).fetchone() == (
            scanned_at,)
    flagged = con.execute("SELECT r.name FROM results s JOIN releases r ON r.id = s.release_id "
                          "WHERE s.verdict = 'malicious'").fetchall()
    assert flagged == [("colorz-utils",)]
    assert con.execute("SELECT COUNT(*) FROM alerts WHERE channel = 'stdout'").fetchone() == (1,)
    con.close()
    printed = [json.loads(line)["name"] for line in alert_lines if line.strip()]
    # at least once; twice only if a kill fell between printing and recording it
    assert printed and set(printed) == {"colorz-utils"} and len(printed) <= 2
    assert kills == KILLS, f"only {kills} of {KILLS} runs were killed; the test did not test much"
    print(f"\ncrash test: {kills} kills ({finished_early} runs finished before their kill), "
          f"{len(expected)} releases ({scanned_while_killed} stored by killed runs), 0 lost, 0 duplicated, "
          f"alert printed {len(printed)}x")
