"""Feature coverage (issue 3) from the analysis cache built by `malseq corpus build`.

Share of packages with a data-transmission or payload-execution behaviour, per ecosystem and
label, and analysis throughput.
"""
import csv
import json
import sqlite3
from pathlib import Path

from malseq.features.catalogue import BY_ID
from malseq.features.types import Dimension

work = Path.home() / ".cache/malseq/corpus"
labels = {}
with open(work / "samples.tsv") as fh:
    for row in csv.DictReader(fh, delimiter="\t"):
        labels[row["sha256"]] = (row.get("label"), row.get("stratum", ""))
c = sqlite3.connect(work / "analysis.sqlite")
DECISIVE = {Dimension.DATA_TRANSMISSION, Dimension.PAYLOAD_EXECUTION}
stats = {}
for sha, eco, events, nbytes, secs in c.execute(
        "select sha256, ecosystem, events, total_bytes, seconds from analyses where status='ok'"):
    label, stratum = labels.get(sha, ("?", ""))
    key = (eco, label, stratum if label == "0" else "")
    s = stats.setdefault(key, [0, 0, 0, 0.0])
    ids = {e["behaviour"] for e in json.loads(events or "[]")}
    s[0] += 1
    s[1] += any(BY_ID[i].dimension in DECISIVE for i in ids if i in BY_ID)
    s[2] += nbytes or 0
    s[3] += secs or 0.0
print("| ecosystem | label | stratum | packages | with transmission or execution | share | MB (all files) "
      "| analysis s | MB/s |")
print("|---|---|---|---|---|---|---|---|---|")
for (eco, label, stratum), (n, hit, nb, secs) in sorted(stats.items()):
    print(f"| {eco} | {label} | {stratum} | {n} | {hit} | {hit / n:.1%} | {nb / 1e6:.0f} | {secs:.0f} "
          f"| {nb / 1e6 / secs:.2f} |")
