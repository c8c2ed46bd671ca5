"""`malseq serve`: the triage web app over the watch database (see docs/serve.md).

`app` builds the pages (Starlette + Jinja2, no JavaScript), `view` reads a stored JSON report,
`highlight` and `charts` draw code and plots, `security` holds the headers, token and CSRF
checks, `export` writes labelled releases as a corpus folder the lab reads. The web libraries are
the `serve` extra: nothing here is imported by a scan.
"""
