"""Watch throughput on a recorded feed served locally: releases per minute and database size.

Builds N small releases (half npm, half PyPI; one in a hundred a copy of examples/npm-env-exfil),
serves them from the fake registry of the watch tests on 127.0.0.1, and runs one `--once`
round of `malseq watch` over a watch list naming them all, in-process with the real sources,
queue, isolated scans and scoring. Prints and writes (with --out) a JSON summary.

    PYTHONPATH=src nice python bench/watch_throughput.py --releases 2000 --jobs 2 \
        --out docs/results/watch/throughput.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "watch"))

from watch_registry import exfil_npm, serve  # noqa: E402

from malseq.intake import IntakeOptions  # noqa: E402
from malseq.scan import ScanOptions  # noqa: E402
from malseq.watch.runner import Watch, WatchSettings  # noqa: E402
from malseq.watch.sources import RateLimiter, RegistryClient, WatchListSource, parse_watch_list  # noqa: E402
from malseq.watch.store import open_store  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--releases", type=int, default=2000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--no-isolate", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    for var in ("MALSEQ_PYPI_INDEX_URL", "MALSEQ_NPM_REGISTRY", "PIP_INDEX_URL"):
        os.environ.pop(var, None)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    with tempfile.TemporaryDirectory(prefix="malseq-watch-bench-") as tmp, serve() as fake:
        work = Path(tmp)
        lines = []
        for i in range(args.releases):
            if i % 2 == 0:
                name = f"bench-npm-{i}"
                fake.add_npm(name, "1.0.0", exfil_npm(name, "1.0.0") if i % 100 == 0 else None)
                lines.append(f"npm:{name}")
            else:
                name = f"bench_py_{i}"
                fake.add_pypi(name, "1.0.0")
                lines.append(f"pypi:{name}")
        intake = IntakeOptions(pypi_index_url=fake.index_url, npm_registry_url=fake.npm_url,
                               cache_dir=work / "cache", http_timeout=30)
        options = ScanOptions(intake=intake, isolate=not args.no_isolate)
        client = RegistryClient(intake, RateLimiter(0))
        source = WatchListSource(parse_watch_list("\n".join(lines)), client)
        db = work / "watch.db"
        with open_store(db) as store:
            watch = Watch(store, [source], WatchSettings(scan_options=options, jobs=args.jobs, batch=args.batch),
                          RateLimiter(0), out=io.StringIO(), log=io.StringIO())
            t0 = time.monotonic()
            cpu0 = time.process_time()
            polled, errors = watch.poll()
            t1 = time.monotonic()
            watch.drain(wait_for_backoff=True)
            t2 = time.monotonic()
            alerts = watch.send_alerts()
            stats = store.stats()
        con = sqlite3.connect(db)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.close()
        size = db.stat().st_size
        summary = {
            "releases": args.releases,
            "jobs": args.jobs,
            "batch": args.batch,
            "isolate": not args.no_isolate,
            "poll_seconds": round(t1 - t0, 2),
            "scan_seconds": round(t2 - t1, 2),
            "releases_per_minute_scanning": round(args.releases / (t2 - t1) * 60, 1),
            "releases_per_minute_end_to_end": round(args.releases / (t2 - t0) * 60, 1),
            "parent_cpu_seconds": round(time.process_time() - cpu0, 1),
            "done": dict((s.value, n) for s, n in stats.by_state),
            "flagged": stats.flagged,
            "alerts": alerts,
            "poll_problems": len(errors),
            "db_bytes": size,
            "db_bytes_per_1000_releases": round(size / args.releases * 1000),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}",
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        }
        print(json.dumps(summary, indent=2))
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
