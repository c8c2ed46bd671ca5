"""`malseq watch`: a registry monitor with durable state in SQLite (see docs/watch.md).

`store` is the database (also read by `malseq serve`), `sources` the registry adapters,
`runner` the polling round, the scan queue and the alerts.
"""
