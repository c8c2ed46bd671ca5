"""Small in-memory archives for corpus tests (inert content; nothing is ever run)."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile


def tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def plain_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def npm_tgz(
    name: str, version: str, scripts: dict[str, str] | None = None, files: dict[str, bytes] | None = None
) -> bytes:
    manifest = {"name": name, "version": version, "scripts": scripts or {}}
    members = {"package/package.json": json.dumps(manifest).encode()}
    for path, data in (files or {}).items():
        members[f"package/{path}"] = data
    return tar_gz(members)
