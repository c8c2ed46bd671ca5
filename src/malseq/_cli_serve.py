"""`malseq serve --db PATH`: the triage web app over a watch database (registered by `malseq._cli`).

Exit codes:
  0  stopped (Ctrl-C), or --export-labels wrote every labelled release
  2  usage error: the `serve` extra is missing, a non-loopback --host without a token, a bad option
  3  the database cannot be opened, the port cannot be bound, or --export-labels left releases out
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from malseq.sanitize import clean

EXIT_OK, EXIT_USAGE, EXIT_ERROR = 0, 2, 3
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
TOKEN_ENV = "MALSEQ_SERVE_TOKEN"
# import name -> distribution, for the message when the extra is missing
SERVE_MODULES = {"starlette": "starlette", "uvicorn": "uvicorn", "jinja2": "Jinja2", "pygments": "Pygments",
                 "multipart": "python-multipart"}
# From the checkout, as the README installs malseq (not `malseq[serve]` by name from a package index).
INSTALL_HINT = "from the malseq checkout: pip install -e '.[serve]'"


def register(sub: Any) -> None:
    sp = sub.add_parser(
        "serve",
        help="triage web app over a watch database: ranked queue, evidence, labels, dashboard",
        description=(
            "Serve the triage pages of a `malseq watch` database: releases ranked by score, each release's "
            "behaviour sequence with the code at each step, labels (malicious / benign / unsure) and a dashboard. "
            "Binds 127.0.0.1 unless --host says otherwise; any other address needs a token. With --export-labels "
            "DIR, writes the labelled releases as a corpus folder for `malseq corpus build --folder DIR` and exits."
        ),
    )
    sp.add_argument("--db", type=Path, metavar="PATH",
                    help="the watch database (default: malseq watch's, $XDG_DATA_HOME/malseq/watch.db, else "
                    "~/.local/share/malseq/watch.db)")
    sp.add_argument("--host", default=DEFAULT_HOST,
                    help=f"address to bind (default {DEFAULT_HOST}); a non-loopback address needs a token")
    sp.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    sp.add_argument("--token", metavar="TOKEN",
                    help=f"access token (default: ${TOKEN_ENV}); required when --host is not a loopback address")
    sp.add_argument("--export-labels", type=Path, metavar="DIR",
                    help="write labelled releases (archives + labels.tsv) to DIR for the lab's corpus, then exit")
    sp.add_argument("--pypi-index-url", metavar="URL", help="PyPI simple index for --export-labels (as for scan)")
    sp.add_argument("--npm-registry", metavar="URL", help="npm registry for --export-labels (as for scan)")
    sp.add_argument("--cache-dir", type=Path, metavar="DIR",
                    help="download cache for --export-labels (default: $MALSEQ_CACHE_DIR, else $XDG_CACHE_HOME/malseq, "
                    "else ~/.cache/malseq)")
    sp.add_argument("--offline", action="store_true", help="--export-labels: take archives from the cache only")


def missing_modules() -> list[str]:
    return [dist for module, dist in SERVE_MODULES.items() if importlib.util.find_spec(module) is None]


def run(args: argparse.Namespace) -> int:
    from malseq._cli import _check_registry_flags

    # --pypi-index-url, --npm-registry and --cache-dir (used by --export-labels) as scan checks them: a usage
    # error (exit 2) before the database is even looked for, credentials never echoed
    _check_registry_flags(args)
    if args.db is None:
        from malseq.watch.runner import default_db_path

        args.db = default_db_path()
    if args.export_labels is not None:
        return _export(args)
    missing = missing_modules()
    if missing:
        print(f"malseq: error: `malseq serve` needs the serve extra ({', '.join(missing)} not installed): "
              f"{INSTALL_HINT}", file=sys.stderr)
        return EXIT_USAGE
    if not 0 < args.port < 65536:
        print("malseq: error: --port must be between 1 and 65535", file=sys.stderr)
        return EXIT_USAGE
    from malseq.serve.security import is_loopback

    token = args.token or os.environ.get(TOKEN_ENV) or None
    loopback = is_loopback(args.host)
    if not loopback and token is None:
        print(f"malseq: error: --host {clean(args.host, 100)} is not a loopback address: anyone who reaches it could "
              f"read and label; give a token with --token or ${TOKEN_ENV} (e.g. {secrets.token_urlsafe(24)})",
              file=sys.stderr)
        return EXIT_USAGE
    if not args.db.is_file():
        print(f"malseq: error: no watch database at {clean(str(args.db), 300)}: run `malseq watch --db "
              f"{clean(str(args.db), 300)} --once` first, or give the right --db", file=sys.stderr)
        return EXIT_ERROR

    import uvicorn

    from malseq.serve.app import create_app
    from malseq.watch.store import open_store

    store = open_store(args.db)  # WatchStoreError (exit 3) says what is wrong with the file
    try:
        app = create_app(store, token=token, loopback_only=loopback)
        host_in_url = f"[{args.host}]" if ":" in args.host else args.host
        url = f"http://{host_in_url}:{args.port}/" + (f"?token={token}" if token else "")
        print(f"malseq serve: {url}  (database {clean(str(args.db), 300)}; Ctrl-C stops)", file=sys.stderr,
              flush=True)
        config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                                server_header=False, date_header=False)
        server = uvicorn.Server(config)
        try:
            server.run()
        except SystemExit:  # uvicorn exits on a port it cannot bind, after logging why
            return EXIT_ERROR
        return EXIT_OK if server.started else EXIT_ERROR
    finally:
        store.close()


def _export(args: argparse.Namespace) -> int:
    from malseq._cli import _scan_options
    from malseq.intake.limits import DEFAULT_LIMITS
    from malseq.serve.export import LABELS_FILE, NOT_EXPORTED_FILE, export_labels, fetch_from_registry
    from malseq.watch.store import open_store

    if not args.db.is_file():
        print(f"malseq: error: no watch database at {clean(str(args.db), 300)}", file=sys.stderr)
        return EXIT_ERROR
    scan_args = argparse.Namespace(timeout=DEFAULT_LIMITS.time_budget_seconds, zip_password=None,
                                   pypi_index_url=args.pypi_index_url, npm_registry=args.npm_registry,
                                   pypi_distribution=None, python_version=None, platform=[],
                                   cache_dir=args.cache_dir, offline=args.offline, no_analysis=False, model=None,
                                   no_isolate=True, operating_point="low-fpr")
    options = _scan_options(scan_args).intake  # the registries and cache exactly as `malseq scan` finds them
    with open_store(args.db, readonly=True) as store:
        summary = export_labels(store, args.export_labels, fetch_from_registry(options))
    print(f"{len(summary.exported)} labelled releases written to {clean(str(args.export_labels / LABELS_FILE), 300)}"
          f"; add them to the corpus with: malseq corpus build --folder {clean(str(args.export_labels), 300)}",
          file=sys.stderr)
    if summary.not_exported:
        print(f"malseq: error: {len(summary.not_exported)} labelled releases not exported (reasons in "
              f"{clean(str(args.export_labels / NOT_EXPORTED_FILE), 300)}):", file=sys.stderr)
        for item in summary.not_exported[:10]:
            print(f"  {clean(item.target, 200)}: {clean(item.reason, 300)}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK
