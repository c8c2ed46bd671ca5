"""Hand-written packages with a known execution order, through the real extractors and the builder."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from seq_helpers import assert_in_order, folder_package, ids, scan_case

from malseq._deadline import Deadline
from malseq.errors import TimeBudgetExceeded
from malseq.features import analyse_package
from malseq.sequence import Stage, build_sequence, render_steps, render_text

INSTALL, IMPORT, UNREACHED = Stage.INSTALL, Stage.IMPORT, Stage.UNREACHED


def test_npm_postinstall_env_then_base64_then_post() -> None:
    _, _, seq = scan_case("npm_postinstall_exfil")
    install = ids(seq, INSTALL)
    assert install[0] == "npm_install_script"
    assert_in_order(install, ["npm_install_script", "read_env", "encoding_call", "upload_data"])
    assert install.index("read_env") < install.index("network_request")
    labels = [(e.stage, e.label, e.file) for e in seq.entry_points]
    assert (INSTALL, "postinstall: node ./collect.js", "collect.js") in labels
    assert (IMPORT, "main lib.js", "lib.js") in labels
    text = render_text(seq)
    assert text.startswith("install : run script at install , import network module , read environment variables")
    assert "unreached" not in text


def test_setup_py_install_override_calls_helper_in_other_module() -> None:
    _, _, seq = scan_case("py_setup_install_helper")
    run_steps = [s for s in seq.steps if s.entry == "setup.py PostInstall.run"]
    behaviours = [s.behaviour for s in run_steps]
    assert_in_order(behaviours, ["read_env", "encoding_call", "network_request", "upload_data"])
    assert all(s.file == "helperlib/beacon.py" for s in run_steps)
    assert all(s.stage is INSTALL for s in run_steps)
    # The helper module's imports run when setup.py imports it, before the command runs.
    assert_in_order(ids(seq, INSTALL), ["import_network_module", "setup_command_override", "read_env"])
    assert not seq.stage_steps(UNREACHED)


def test_callback_based_exfiltration() -> None:
    _, _, seq = scan_case("js_callback_exfil")
    install = ids(seq, INSTALL)
    assert_in_order(install, ["npm_install_script", "fs_read", "encoding_call", "network_request", "upload_data"])
    upload = next(s for s in seq.steps if s.behaviour == "upload_data")
    assert upload.scope == "upload" and upload.depth >= 2  # inside the readFile callback, then upload()


def test_python_mutual_recursion_is_bounded() -> None:
    _, _, seq = scan_case("py_mutual_recursion")
    assert not seq.budget_exhausted
    install = ids(seq, INSTALL)
    assert_in_order(install, ["setup_code_execution", "run_command", "fs_write"])
    assert install.count("run_command") == 1  # ping is on the path when pong calls it back


def test_js_mutual_recursion_across_files_is_bounded() -> None:
    _, _, seq = scan_case("js_mutual_recursion")
    assert not seq.budget_exhausted
    install = ids(seq, INSTALL)
    assert_in_order(install, ["import_process_module", "import_fs_module", "run_command", "fs_write"])
    assert install.count("run_command") == 1


def test_script_naming_a_missing_file() -> None:
    _, _, seq = scan_case("npm_missing_file")
    labels = [e.label for e in seq.entry_points]
    assert "preinstall: node setup/bootstrap.js (missing file setup/bootstrap.js)" in labels
    assert "postinstall: node post.js" in labels
    assert_in_order(ids(seq, INSTALL), ["npm_install_script", "collect_system_info", "dns_lookup"])


def test_package_without_entry_points_falls_back_to_all_files_sorted() -> None:
    _, _, seq = scan_case("js_no_entry_points")
    assert [e.label for e in seq.entry_points] == ["fallback all files"]
    imported = ids(seq, IMPORT)
    assert_in_order(imported, ["read_env", "run_command", "fs_read"])  # alpha.js, util.js, zeta.js
    assert not seq.stage_steps(INSTALL) and not seq.stage_steps(UNREACHED)


def test_python_class_body_runs_at_import_but_methods_do_not() -> None:
    _, _, seq = scan_case("py_class_body")
    imported = [s for s in seq.steps if s.stage is IMPORT]
    assert ("read_env", "Config") in [(s.behaviour, s.scope) for s in imported]
    assert "read_sensitive_file" in [s.behaviour for s in imported]
    unreached = [s for s in seq.steps if s.stage is UNREACHED]
    assert [(s.behaviour, s.scope) for s in unreached][0] == ("run_command", "Config.unused")


def test_self_method_resolution_in_setup_command() -> None:
    _, _, seq = scan_case("py_self_method")
    run = [s for s in seq.steps if s.entry == "setup.py Dev.run"]
    assert_in_order([s.behaviour for s in run], ["collect_system_info", "raw_socket", "upload_data"])
    assert [s.scope for s in run][:2] == ["Dev.prepare", "Dev.send"]


def test_js_this_method_through_constructor() -> None:
    _, _, seq = scan_case("js_this_method")
    imported = ids(seq, IMPORT)
    assert_in_order(imported, ["import_os_module", "collect_system_info", "network_request", "upload_data"])
    assert not seq.stage_steps(UNREACHED)


def test_relative_require_of_folder_with_index_js() -> None:
    _, _, seq = scan_case("js_folder_index")
    install = [s for s in seq.steps if s.stage is INSTALL]
    assert_in_order([s.behaviour for s in install], ["run_command", "raw_socket", "upload_data"])
    assert {s.file for s in install if s.behaviour in ("raw_socket", "upload_data")} == {"lib/send/index.js"}
    assert seq.entry_points[0].file == "lib/start.js"  # `node lib/start` -> lib/start.js


def test_thread_target_callback_runs_at_the_thread_call() -> None:
    _, _, seq = scan_case("py_thread_target")
    install = [s for s in seq.steps if s.stage is INSTALL]
    assert ("run_command", "beacon") in [(s.behaviour, s.scope) for s in install]
    assert not seq.stage_steps(UNREACHED)


def test_then_callback_runs_after_the_request() -> None:
    _, _, seq = scan_case("js_then_callback")
    assert_in_order(ids(seq, INSTALL), ["network_request", "fs_write", "run_command"])


def test_test_file_is_unreached() -> None:
    _, _, seq = scan_case("py_unreached_tests")
    assert ids(seq, IMPORT) == ["import_os_module", "read_env"]
    unreached = seq.stage_steps(UNREACHED)
    assert {s.file for s in unreached} == {"tests/test_x.py"}
    assert "run_command" in [s.behaviour for s in unreached]
    assert render_text(seq).endswith("unreached : import process module , run external command")


def test_pth_import_runs_the_module() -> None:
    _, _, seq = scan_case("py_pth")
    assert_in_order(ids(seq, INSTALL), ["pth_code_execution", "collect_system_info", "network_request"])
    assert any(e.label == ".pth pthy.pth" for e in seq.entry_points)


def test_npm_run_chain_and_cd() -> None:
    _, _, seq = scan_case("npm_run_chain")
    assert ("postinstall > setup: node init.js", "scripts/init.js") in [(e.label, e.file) for e in seq.entry_points]
    assert_in_order(ids(seq, INSTALL), ["collect_system_info", "encoding_call", "dns_lookup"])
    assert {s.file for s in seq.stage_steps(UNREACHED)} == {"never.js"}


def test_every_step_links_to_its_events() -> None:
    for case in ("npm_postinstall_exfil", "py_setup_install_helper", "js_callback_exfil"):
        package, _, seq = scan_case(case)
        for step in seq.steps:
            assert step.events and all(e.behaviour == step.behaviour for e in step.events)
            assert step.line >= 1 and package.file(step.file) is not None
        lines = render_steps(seq)
        assert lines[0] == "entry points:"
        assert any(":" in line and "[" in line for line in lines[2:])


def _big_js_package(root: Path, files: int, functions: int) -> None:
    sources = {"package.json": '{"name": "big", "version": "1.0.0", "main": "f0.js"}'}
    for i in range(files):
        nxt = (i + 1) % files
        body = ["const fs = require('fs');", f"const next = require('./f{nxt}');"]
        for j in range(functions):
            calls = [f"  fn{(j + 1) % functions}(x);", f"  fn{(j + 2) % functions}(x);", f"  next.fn{j}(x);"]
            if j % 3 == 0:
                calls.insert(0, f"  fs.readFileSync('/tmp/{i}_{j}');")
            body.append(f"function fn{j}(x) {{\n" + "\n".join(calls) + "\n}")
            body.append(f"module.exports.fn{j} = fn{j};")
        body.append("fn0(1);")
        sources[f"f{i}.js"] = "\n".join(body) + "\n"
    for rel, text in sources.items():
        (root / rel).write_text(text)


def test_large_package_stays_within_budget(tmp_path: Path) -> None:
    _big_js_package(tmp_path, files=300, functions=12)
    package = folder_package(tmp_path, {})
    analysis = analyse_package(package, Deadline(300))
    seq = build_sequence(package, analysis, Deadline(300), max_steps=4000)
    assert len([s for s in seq.steps if s.stage is not UNREACHED]) <= 4000
    assert ids(seq, IMPORT)[0] == "import_fs_module"
    assert len(render_text(seq).split()) <= 200


def test_expired_deadline_raises_rather_than_returning_a_partial_sequence(tmp_path: Path) -> None:
    package = folder_package(tmp_path, {
        "package.json": '{"name": "p", "version": "1.0.0", "scripts": {"postinstall": "node i.js"}}',
        "i.js": "const cp = require('child_process');\ncp.exec('id');\n",
    })
    analysis = analyse_package(package, Deadline(60))
    expired = Deadline(0.0)
    time.sleep(0.01)
    with pytest.raises(TimeBudgetExceeded):
        build_sequence(package, analysis, expired)


def test_corpus_adapter_returns_ids_and_text() -> None:
    from malseq.sequence import corpus_sequence

    package, analysis, seq = scan_case("npm_postinstall_exfil")
    ids_, text = corpus_sequence(package, analysis)
    assert ids_ == seq.ids and text == render_text(seq)
