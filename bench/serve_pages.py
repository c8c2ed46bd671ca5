"""How long the triage app takes to render its pages over a watch database of N releases.

Builds a database through malseq.watch.store with N releases (the JSON reports of the example
packages, scanned once with review material, as `malseq watch` stores them; one in ten labelled),
then requests each page through the app in-process (Starlette's test client: the rendering and the
queries, no network) and prints the median and the worst of R requests per page, and the
database's size.

    PYTHONPATH=src python bench/serve_pages.py --releases 2000 --repeat 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from starlette.testclient import TestClient

from malseq.report.json_report import result_to_dict
from malseq.scan import ScanOptions, scan
from malseq.serve.app import create_app
from malseq.watch.store import Label, NewRelease, ScanRecord, open_store

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    results = scan([str(p) for p in sorted(EXAMPLES.iterdir()) if p.is_dir()], ScanOptions(review_material=True))
    reports = [(json.dumps(result_to_dict(r), ensure_ascii=True, separators=(",", ":")), r.score, r.verdict)
               for r in results]
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "watch.db"
        with open_store(path) as store:
            for i in range(args.releases):
                seen = now - (i % 72) * 3600
                rid = store.enqueue(NewRelease("pypi" if i % 2 else "npm", f"pkg-{i}", "1.0.0", "bench"), seen)
                claimed = store.claim_next("bench", seen + 1, 60)
                assert rid is not None and claimed is not None
                report, score, verdict = reports[i % len(reports)]
                store.complete(claimed, ScanRecord(seen + 1, score, verdict, "m", "k", "low-fpr", report))
                if i % 10 == 0:
                    store.add_label(rid, Label.MALICIOUS if verdict == "malicious" else Label.BENIGN, "bench", seen)
            size = path.stat().st_size + sum(p.stat().st_size for p in path.parent.glob("watch.db-*"))
            client = TestClient(create_app(store), base_url="http://127.0.0.1")
            pages = {"queue": "/", "queue page 20": "/?page=20",
                     "queue filtered": "/?verdict=malicious&label=unlabelled", "release": "/release/2",
                     "dashboard": "/dashboard"}
            print(f"{args.releases} releases, database {size / 1e6:.1f} MB; {args.repeat} requests per page")
            for name, url in pages.items():
                assert client.get(url).status_code == 200  # templates compiled, caches warm
                times = []
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    client.get(url)
                    times.append((time.perf_counter() - start) * 1000)
                print(f"  {name:16} median {statistics.median(times):6.1f} ms   worst {max(times):6.1f} ms")


if __name__ == "__main__":
    main()
