"""Regenerate docs/behaviours.md from the catalogue: `python tools/gen_behaviours_doc.py`."""

from __future__ import annotations

from pathlib import Path

from malseq.features.catalogue import render_markdown_table

HEADER = """# Behaviour catalogue

Generated from `src/malseq/features/catalogue.py` by `python tools/gen_behaviours_doc.py`;
do not edit by hand (a test checks it is current).

One vocabulary for Python and JavaScript, at Cerebro's level of abstraction: four of the six
dimensions are Cerebro's (information reading, data transmission, encoding, payload
execution); install hooks and obfuscation are added because real malware in the shared
datasets leans on them. The *phrase* column is what the language model reads. Every
behaviour has must-match and must-not-match fixtures under
`tests/features/fixtures/<language>/<id>/`.

"""

OUT = Path(__file__).resolve().parent.parent / "docs" / "behaviours.md"


def render() -> str:
    return HEADER + render_markdown_table()


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
