"""`malseq watch`: monitor registries for new releases and scan them (registered by `malseq._cli`).

Exit codes of `malseq watch --once`:
  0  the round finished; nothing was flagged
  1  at least one release was flagged in this round (its alert is on stdout)
  2  usage error: a bad option, an unreadable watch list, or the database is in use by another watch
  3  a source could not be read, or a release was parked after --max-tries failures
Without --once the watch runs until interrupted (Ctrl-C or SIGTERM: exit 0 after the current scans).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from pathlib import Path
from typing import Any

from malseq.intake.limits import DEFAULT_LIMITS
from malseq.model import LOW_FPR, OPERATING_POINTS

EXIT_CLEAN, EXIT_FLAGGED, EXIT_USAGE, EXIT_PROBLEM = 0, 1, 2, 3
FEED_SOURCES = ("pypi-simple", "pypi-rss", "npm-changes")


def register(sub: Any) -> None:
    wp = sub.add_parser(
        "watch",
        help="monitor registries for new releases, scan them, keep the results in SQLite, alert on flagged ones",
        description=(
            "Poll the sources for new releases, queue each once, scan them with N workers (isolated, as scan), "
            "and keep every result with its full JSON report in an SQLite database (read by malseq serve). "
            "Flagged releases are printed to stdout as JSON lines, once each, and optionally POSTed to a webhook."
        ),
    )
    wp.add_argument("--names", type=Path, metavar="FILE",
                    help="watch list: one pypi:NAME or npm:NAME per line (# comments); new versions of these")
    wp.add_argument("--source", action="append", choices=FEED_SOURCES, default=[], dest="sources",
                    help="also watch a registry feed: pypi-simple (new projects in the simple index), pypi-rss "
                    "(PyPI's RSS feeds), npm-changes (npm's replication feed); repeatable")
    wp.add_argument("--pypi-feed-url", metavar="URL",
                    help="web root serving rss/updates.xml (default: the index URL without /simple)")
    wp.add_argument("--npm-changes-url", metavar="URL",
                    help="the npm replication feed (default: the configured registry's /_changes)")
    wp.add_argument("--db", type=Path, metavar="PATH",
                    help="the watch database (default: $XDG_DATA_HOME/malseq/watch.db, else "
                    "~/.local/share/malseq/watch.db)")
    wp.add_argument("--once", action="store_true", help="one polling round, scan the queue, exit (for cron and CI)")
    wp.add_argument("--interval", type=float, default=300.0, metavar="SECONDS",
                    help="seconds between polling rounds (default: 300)")
    wp.add_argument("--jobs", type=int, default=2, metavar="N", help="scan workers (default: 2)")
    wp.add_argument("--batch", type=int, default=8, metavar="N",
                    help="releases a worker scans in one isolated worker process (default: 8)")
    wp.add_argument("--max-tries", type=int, default=3, metavar="K",
                    help="park a release after K failed attempts (registry errors, time limit) (default: 3)")
    wp.add_argument("--backoff", type=float, default=30.0, metavar="SECONDS",
                    help="wait before the first retry; doubles with each try (default: 30)")
    wp.add_argument("--rate", type=float, default=5.0, metavar="PER_SECOND",
                    help="registry requests per second per host (default: 5; 0: no limit)")
    wp.add_argument("--webhook", metavar="URL", help="also POST each alert as JSON to this URL")
    wp.add_argument("--timeout", type=float, default=DEFAULT_LIMITS.time_budget_seconds, metavar="SECONDS",
                    help=f"time budget per release, in CPU seconds (default: {DEFAULT_LIMITS.time_budget_seconds:g})")
    wp.add_argument("--pypi-index-url", metavar="URL", help="PyPI simple index (as for scan)")
    wp.add_argument("--npm-registry", metavar="URL", help="npm registry (as for scan)")
    wp.add_argument("--cache-dir", type=Path, metavar="DIR", help="download cache (as for scan)")
    wp.add_argument("--model", type=Path, metavar="DIR", help="model folder (default: the shipped model)")
    wp.add_argument("--operating-point", choices=OPERATING_POINTS, default=LOW_FPR,
                    help="verdict threshold (as for scan)")
    wp.add_argument("--no-isolate", action="store_true", help="scan in this process instead of worker processes")
    wp.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    from malseq._cli import add_pypi_file_options

    add_pypi_file_options(wp)  # which file of a PyPI release is scanned, as for scan
    wp.set_defaults(zip_password=None, offline=False, no_analysis=False)


def run(args: argparse.Namespace) -> int:
    from malseq._cli import _check_registry_flags, _scan_options, _StderrProgress
    from malseq.errors import UsageError
    from malseq.intake.registry.common import _redact
    from malseq.watch.runner import Watch, WatchSettings, default_db_path, runner_lock
    from malseq.watch.sources import RateLimiter, RegistryClient, build_sources, read_watch_list
    from malseq.watch.store import open_store

    if args.names is None and not args.sources:
        raise UsageError("nothing to watch", hint="give --names FILE and/or --source pypi-simple|pypi-rss|npm-changes")
    for flag, value in (("--jobs", args.jobs), ("--batch", args.batch), ("--max-tries", args.max_tries)):
        if value < 1:
            raise UsageError(f"{flag} must be at least 1")
    for flag, number in (("--interval", args.interval), ("--backoff", args.backoff), ("--rate", args.rate)):
        if number < 0:
            raise UsageError(f"{flag} must not be negative")
    # every registry flag (--pypi-index-url, --npm-registry, the feed URLs, --cache-dir) before any work: a
    # feed URL that is not http(s) was a traceback at the first poll
    _check_registry_flags(args, (("--pypi-feed-url", args.pypi_feed_url), ("--npm-changes-url", args.npm_changes_url)))
    if args.webhook and not args.webhook.startswith(("http://", "https://")):
        raise UsageError(f"--webhook {_redact(args.webhook)!r} is not an http(s) URL")
    # review material: code excerpts of the decisive lines, which `malseq serve` shows (malseq.review)
    options = dataclasses.replace(_scan_options(args), review_material=True)
    names = read_watch_list(args.names) if args.names is not None else ()
    limiter = RateLimiter(args.rate)
    client = RegistryClient(options.intake, limiter)
    sources = build_sources(args.sources, client, names,
                            {"pypi-rss": args.pypi_feed_url, "npm-changes": args.npm_changes_url})
    settings = WatchSettings(scan_options=options, jobs=args.jobs, max_tries=args.max_tries,
                             backoff_seconds=args.backoff, batch=args.batch, webhook=args.webhook)
    db_path = args.db or default_db_path()
    log = open(os.devnull, "w") if args.quiet else sys.stderr  # noqa: SIM115 - closed below
    try:
        with runner_lock(db_path), open_store(db_path) as store:
            # stdout carries the alerts only (JSON lines); what was queued, each release as it finishes and
            # the round's summary line go to stderr (-q: none of them)
            watch = Watch(store, sources, settings, limiter, out=sys.stdout, log=log,
                          observer=_StderrProgress(enabled=not args.quiet))

            def stop(signum: int, frame: object) -> None:
                watch.stop()

            previous = signal.signal(signal.SIGTERM, stop)
            try:
                report = watch.run(args.once, args.interval)
            except KeyboardInterrupt:
                watch.stop()
                return EXIT_CLEAN
            finally:
                signal.signal(signal.SIGTERM, previous)
    finally:
        if log is not sys.stderr:
            log.close()
    if report.flagged:
        return EXIT_FLAGGED
    return EXIT_PROBLEM if report.poll_errors or report.parked else EXIT_CLEAN
