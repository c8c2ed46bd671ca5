"""The pre-commit hook and the GitHub Action: their definitions, the options they use, and runs of both."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from malseq.project import LOCKFILES

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src"
EXAMPLES = REPO / "examples"
ACTION_SCRIPT = REPO / "ci" / "action-run.sh"


def malseq_help(*words: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "malseq", *words, "--help"], capture_output=True, text=True,
                          env=env, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def subcommands() -> set[str]:
    usage = malseq_help()
    found = re.search(r"\{([a-z,]+)\}", usage)
    assert found is not None
    return set(found.group(1).split(","))


def script_subcommand() -> str:
    found = re.search(r'^MALSEQ_SUBCOMMAND="([a-z]+)"$', ACTION_SCRIPT.read_text(), re.MULTILINE)
    assert found is not None
    return found.group(1)


# ---------------------------------------------------------------------------
# pre-commit


def hook() -> dict[str, object]:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert isinstance(hooks, list) and len(hooks) == 1
    assert isinstance(hooks[0], dict)
    return hooks[0]


def test_precommit_hook_definition() -> None:
    definition = hook()
    assert definition["id"] == "malseq-audit"
    assert definition["language"] == "python"
    assert definition["entry"] == "malseq audit"
    assert definition["pass_filenames"] is False  # audit finds the lockfiles itself


@pytest.mark.parametrize("path", [*LOCKFILES, *(f"web/app/{name}" for name in LOCKFILES), "requirements.txt",
                                  "requirements-dev.txt", "services/api/requirements_test.txt"])
def test_precommit_hook_runs_for_every_lockfile(path: str) -> None:
    assert re.search(str(hook()["files"]), path), path  # pre-commit matches with re.search


@pytest.mark.parametrize("path", ["package.json", "README.md", "yarn.lock.orig", "src/requirements.py",
                                  "docs/requirements/index.md", "my-package-lock.json"])
def test_precommit_hook_skips_other_files(path: str) -> None:
    assert not re.search(str(hook()["files"]), path), path


# ---------------------------------------------------------------------------
# GitHub Action


def action() -> dict[str, object]:
    loaded = yaml.safe_load((REPO / "action.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_action_definition() -> None:
    doc = action()
    inputs = doc["inputs"]
    assert isinstance(inputs, dict)
    assert set(inputs) == {"path", "python-version", "operating-point", "fail-on", "sarif-file", "upload-sarif"}
    runs = doc["runs"]
    assert isinstance(runs, dict) and runs["using"] == "composite"
    steps = runs["steps"]
    assert isinstance(steps, list)
    assert steps[0]["uses"].startswith("actions/setup-python@")
    assert steps[0]["with"]["python-version"] == "${{ inputs.python-version }}"
    assert '"$GITHUB_ACTION_PATH"' in steps[1]["run"] and "pip install" in steps[1]["run"]
    audit = next(s for s in steps if s.get("id") == "audit")
    assert audit["run"] == 'bash "$GITHUB_ACTION_PATH/ci/action-run.sh"' and ACTION_SCRIPT.is_file()
    # every input reaches the script through the environment, none through the command line
    assert "${{" not in audit["run"]
    assert {k: v for k, v in audit["env"].items()} == {
        "INPUT_PATH": "${{ inputs.path }}", "INPUT_OPERATING_POINT": "${{ inputs.operating-point }}",
        "INPUT_FAIL_ON": "${{ inputs.fail-on }}", "INPUT_SARIF_FILE": "${{ inputs.sarif-file }}"}
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("github/codeql-action/upload-sarif@"))
    assert "inputs.upload-sarif == 'true'" in upload["if"] and "always()" in upload["if"]
    assert upload["with"]["sarif_file"] == "${{ steps.audit.outputs.sarif-file }}"
    last = steps[-1]  # the job fails the way malseq did, after the upload
    assert last["run"] == 'exit "$MALSEQ_EXIT_CODE"'
    assert last["env"]["MALSEQ_EXIT_CODE"] == "${{ steps.audit.outputs.exit-code }}"
    assert steps.index(upload) < steps.index(last)


def test_action_script_uses_real_cli_options() -> None:
    code = "\n".join(line for line in ACTION_SCRIPT.read_text().splitlines() if not line.lstrip().startswith("#"))
    used = set(re.findall(r"(--[a-z][a-z-]+)", code))
    assert used == {"--format", "--operating-point", "--fail-on"}
    assert script_subcommand() == "audit" and "audit" in subcommands()
    for command in ("audit", "scan"):
        text = malseq_help(command)
        for option in used:
            assert re.search(rf"{option}\b", text), f"malseq {command} has no {option}"
        assert "sarif" in text


def run_action(workspace: Path, tmp_path: Path, **inputs: str) -> tuple[int, dict[str, str], str]:
    """Run ci/action-run.sh as GitHub would, with `malseq` on PATH running this checkout's code."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "malseq"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m malseq "$@"\n')
    wrapper.chmod(0o755)
    output = tmp_path / "github_output"
    output.write_text("")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(SRC),
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_OUTPUT": str(output),
        **{f"INPUT_{name.upper()}": value for name, value in inputs.items()},
    }
    env.pop("MALSEQ_SUPPRESSIONS", None)
    done = subprocess.run(["bash", str(ACTION_SCRIPT)], capture_output=True, text=True, env=env, check=False,
                          cwd=tmp_path, timeout=600)
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return done.returncode, outputs, done.stdout + done.stderr


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A checkout with two projects: one with a stealer installed in node_modules, one with a harmless package."""
    root = tmp_path / "workspace"
    (root / ".git").mkdir(parents=True)  # a checkout: the config search stops here
    # the project's config applies to the action's run; offline: installed packages are not compared
    # with the registry (no network in these tests)
    (root / "malseq.toml").write_text("offline = true\n")
    shutil.copytree(EXAMPLES / "npm-env-exfil", root / "flagged" / "node_modules" / "colorz-utils")
    leftpad = root / "clean" / "node_modules" / "leftpad"
    leftpad.mkdir(parents=True)
    (leftpad / "package.json").write_text('{"name": "leftpad", "version": "1.0.0", "main": "index.js"}')
    (leftpad / "index.js").write_text("module.exports = (s, n) => s.padStart(n);\n")
    return root


def test_action_script_reports_a_finding_and_keeps_the_exit_code(workspace: Path, tmp_path: Path) -> None:
    code, outputs, log = run_action(workspace, tmp_path, path="flagged", sarif_file="reports/m.sarif")
    assert code == 0, log  # the upload step must still run; the action's last step exits with exit-code
    sarif_path = workspace / "reports" / "m.sarif"
    assert outputs == {"exit-code": "1", "sarif-file": str(sarif_path), "sarif-written": "true"}
    assert "::error title=malseq::a dependency was flagged" in log
    sarif = json.loads(sarif_path.read_text())
    assert sarif["version"] == "2.1.0"
    assert [r["ruleId"] for r in sarif["runs"][0]["results"]] == ["malicious-package"]


def test_action_script_inputs_reach_malseq(workspace: Path, tmp_path: Path) -> None:
    code, outputs, _ = run_action(workspace, tmp_path, path="clean", operating_point="balanced")
    assert (code, outputs["exit-code"], outputs["sarif-written"]) == (0, "0", "true")
    assert (workspace / "malseq.sarif").is_file()  # the default sarif-file, relative to the workspace
    code, outputs, _ = run_action(workspace, tmp_path, path="flagged", fail_on="none")
    assert outputs["exit-code"] == "0"
    # the project's config applies (the script runs in the workspace)
    (workspace / "malseq.toml").write_text('offline = true\nfail-on = ["suspicious"]\nsuspicious-score = 0.0001\n')
    code, outputs, _ = run_action(workspace, tmp_path, path="clean")
    assert outputs["exit-code"] == "1"
    code, outputs, log = run_action(workspace, tmp_path, path="clean", operating_point="lowest")
    assert (code, outputs["exit-code"], outputs["sarif-written"]) == (0, "2", "false")
    assert "usage error" in log


# ---------------------------------------------------------------------------
# pre-commit's own try-repo, offline: the shipped hook definition with only its `language` changed


def _git_commit_all(folder: Path) -> None:
    git = ["git", "-c", "user.email=test@example.invalid", "-c", "user.name=test", "-c", "commit.gpgsign=false"]
    if not (folder / ".git").exists():
        subprocess.run([*git, "init", "-q"], cwd=folder, check=True)
    subprocess.run([*git, "add", "-A"], cwd=folder, check=True)
    subprocess.run([*git, "commit", "-qm", "change", "--allow-empty"], cwd=folder, check=True)


def _npm_tgz(files: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(f"package/{path}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_precommit_try_repo_offline(tmp_path: Path) -> None:
    """pre-commit's own `try-repo` runs the hook file this repository ships (its id, `files` pattern,
    `pass_filenames`, `require_serial`) against a local git repository, with no network: the hook's
    `language: python` is replaced by `language: system` running this checkout's malseq, because a
    python hook makes pre-commit pip-install malseq and its dependencies from PyPI into a fresh
    virtualenv (that install is `test_precommit_try_repo` below, marked online). Dependencies come
    from a registry on 127.0.0.1 started here."""
    import base64
    import hashlib
    import shlex
    from http.server import BaseHTTPRequestHandler

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from local_http import local_http_server

    clean_pkg = {"package.json": b'{"name": "left-pad", "version": "1.3.0", "main": "index.js"}',
                 "index.js": b"module.exports = function (s, n) { return String(s).padStart(n); };\n"}
    stealer = {p.name: p.read_bytes() for p in (EXAMPLES / "npm-env-exfil").iterdir()}
    releases = {("left-pad", "1.3.0"): _npm_tgz(clean_pkg), ("colorz-utils", "1.0.3"): _npm_tgz(stealer)}
    routes: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = routes.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    def integrity(data: bytes) -> str:
        return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()

    definition = hook()
    assert definition["language"] == "python" and definition["entry"] == "malseq audit"
    hooks_repo = tmp_path / "hooks"
    hooks_repo.mkdir()
    local = {**definition, "language": "system",
             "entry": f"{shlex.quote(sys.executable)} -m malseq audit --no-isolate"}
    (hooks_repo / ".pre-commit-hooks.yaml").write_text(yaml.safe_dump([local], sort_keys=False))
    _git_commit_all(hooks_repo)
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("not a lockfile\n")

    def lock(name: str, version: str) -> None:
        packages = {"": {"name": "web", "dependencies": {name: version}},
                    f"node_modules/{name}": {"version": version, "integrity": integrity(releases[(name, version)])}}
        (project / "package-lock.json").write_text(json.dumps({"name": "web", "lockfileVersion": 3,
                                                               "packages": packages}, indent=2))
        _git_commit_all(project)

    with local_http_server(Handler) as url:
        for (name, version), tgz in releases.items():
            routes[f"/npm/{name}/-/{name}-{version}.tgz"] = tgz
            routes[f"/npm/{name}"] = json.dumps({"name": name, "dist-tags": {"latest": version}, "versions": {
                version: {"name": name, "version": version, "dist": {
                    "tarball": f"{url}/npm/{name}/-/{name}-{version}.tgz", "integrity": integrity(tgz)}}}}).encode()
        home = tmp_path / "home"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "NPM_CONFIG_", "MALSEQ_"))}
        env.update({"PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]), "HOME": str(home),
                    "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "MALSEQ_NPM_REGISTRY": f"{url}/npm/",
                    "MALSEQ_CACHE_DIR": str(tmp_path / "cache"), "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"})

        def try_repo(*args: str) -> tuple[int, str]:
            done = subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(hooks_repo), "malseq-audit",
                                   "--verbose", *args], cwd=project, capture_output=True, text=True, env=env,
                                  check=False, timeout=600)
            return done.returncode, done.stdout + done.stderr

        lock("left-pad", "1.3.0")
        code, log = try_repo("--all-files")
        assert code == 0 and "Passed" in log, log
        assert "npm:left-pad@1.3.0" in log and "BENIGN" in log, log  # the audit report (--verbose) names the pin
        # a change that touches no lockfile does not run the audit
        code, log = try_repo("--files", "README.md")
        assert code == 0 and "(no files to check)Skipped" in log, log
        lock("colorz-utils", "1.0.3")  # a commit that pins a stealer is refused, with the reason
        code, log = try_repo("--files", "package-lock.json")
        assert code == 1 and "Failed" in log, log
        assert "npm:colorz-utils@1.0.3" in log and "MALICIOUS" in log and "collect.js:" in log, log


# ---------------------------------------------------------------------------
# pre-commit's own try-repo: installs this checkout into a fresh virtualenv with pip (PyPI access)


@pytest.mark.online
@pytest.mark.precommit
def test_precommit_try_repo(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    git = ["git", "-c", "user.email=test@example.invalid", "-c", "user.name=test", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=project, check=True)
    (project / "requirements.txt").write_text("six==1.16.0\n")
    (project / "README.md").write_text("not a lockfile\n")
    subprocess.run([*git, "add", "."], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=project, check=True)
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    pre_commit = [sys.executable, "-m", "pre_commit", "try-repo", str(REPO), "malseq-audit", "--all-files",
                  "--verbose"]
    start = time.monotonic()
    done = subprocess.run(pre_commit, cwd=project, capture_output=True, text=True, env=env, check=False,
                          timeout=1200)
    log = done.stdout + done.stderr
    print(f"pre-commit try-repo took {time.monotonic() - start:.0f} s")
    assert "malseq audit" in log, log  # the hook ran, on the lockfile
    assert done.returncode == 0 and "Passed" in log, log
    assert "six" in log, log  # the audit report (--verbose shows it) names the pin it scanned


# ---------------------------------------------------------------------------
# README, "Use in CI": the snippets a new user copies


def _ci_snippets() -> tuple[str, list[object]]:
    """The README's "Use in CI" section and each of its YAML snippets, parsed."""
    section = (REPO / "README.md").read_text(encoding="utf-8").split("\n## Use in CI\n", 1)[1].split("\n## ", 1)[0]
    return section, [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)]


def _steps(doc: object) -> list[dict[str, object]]:
    assert isinstance(doc, dict)
    return [step for job in doc["jobs"].values() for step in job["steps"]]


def test_readme_ci_snippets_use_the_action_and_hook_this_repository_ships() -> None:
    from malseq import __version__
    from malseq.model import OPERATING_POINTS
    from malseq.policy import parse_fail_on

    section, docs = _ci_snippets()
    workflows = [d for d in docs if isinstance(d, dict) and "jobs" in d]
    gitlab = [d for d in docs if isinstance(d, dict) and isinstance(d.get("malseq"), dict)]
    precommit = [d for d in docs if isinstance(d, dict) and "repos" in d]
    assert (len(workflows), len(gitlab), len(precommit)) == (2, 1, 1), docs  # the three kinds of CI it promises
    # with the action: every input it passes is one action.yml declares, with a value malseq takes
    [uses] = [s for s in _steps(workflows[0]) if str(s.get("uses", "")).startswith("OWNER/malseq@")]
    declared = action()["inputs"]
    assert isinstance(declared, dict) and isinstance(uses["with"], dict)
    assert set(uses["with"]) <= set(declared)
    parse_fail_on(str(uses["with"]["fail-on"]).split(","))  # raises on a value malseq refuses
    assert uses["with"]["operating-point"] in OPERATING_POINTS
    permissions = workflows[0]["permissions"]
    assert isinstance(permissions, dict) and permissions["security-events"] == "write"  # upload-sarif needs it
    # the sentence under it lists exactly the action's inputs, outputs and default Python
    listed = re.search(r"Inputs: (.*?); outputs: (.*?) \(", section, re.DOTALL)
    assert listed is not None
    assert set(re.findall(r"`([a-z-]+)`", listed.group(1))) == set(declared)
    outputs = action()["outputs"]
    assert isinstance(outputs, dict) and set(re.findall(r"`([a-z-]+)`", listed.group(2))) == set(outputs)
    assert f"`python-version` (default {declared['python-version']['default']})" in section
    # pre-commit: the hook id this repository ships; every snippet pins the same release, this version
    [repo] = precommit[0]["repos"]  # type: ignore[index]
    assert [h["id"] for h in repo["hooks"]] == [hook()["id"]]
    pinned = {repo["rev"], str(uses["uses"]).split("@", 1)[1]} | set(re.findall(r"OWNER/malseq@(v[\w.]+)", section))
    assert pinned == {f"v{__version__}"}, pinned


def test_readme_plain_ci_jobs_write_the_report_and_fail_with_malseqs_exit_code(workspace: Path,
                                                                               tmp_path: Path) -> None:
    """The plain GitHub Actions job and the GitLab CI job, run as their runner would (each command in a
    shell that stops at the first failure), with `malseq` on PATH running this checkout and the install
    step left out: a project with a stealer in node_modules fails the job (exit 1) and the JSON report
    kept as an artifact names it; a clean one passes."""
    _, docs = _ci_snippets()
    plain = [d for d in docs if isinstance(d, dict) and "jobs" in d][1]
    gitlab = next(d for d in docs if isinstance(d, dict) and isinstance(d.get("malseq"), dict))
    jobs = {"github": [str(s["run"]) for s in _steps(plain) if "run" in s],
            "gitlab": [str(line) for line in gitlab["malseq"]["script"]]}  # type: ignore[index]
    artifacts = {"github": [s["with"]["path"] for s in _steps(plain)  # type: ignore[index]
                            if str(s.get("uses", "")).startswith("actions/upload-artifact@")],
                 "gitlab": gitlab["malseq"]["artifacts"]["paths"]}  # type: ignore[index]
    assert [s.get("if") for s in _steps(plain) if str(s.get("uses", "")).startswith("actions/upload-artifact@")] \
        == ["always()"] and gitlab["malseq"]["artifacts"]["when"] == "always"  # type: ignore[index]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "malseq"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m malseq "$@"\n')
    wrapper.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(SRC)}
    env.pop("MALSEQ_SUPPRESSIONS", None)
    for ci, commands in jobs.items():
        run = [c for c in commands if not c.startswith("pip install")]
        assert run and len(run) == len(commands) - 1, commands  # the install, then the audit
        for project, expected in (("flagged", 1), ("clean", 0)):
            folder = workspace / project
            done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", "\n".join(run)], cwd=folder, env=env,
                                  capture_output=True, text=True, check=False, timeout=600)
            assert done.returncode == expected, (ci, project, done.stderr[-2000:])
            [artifact] = artifacts[ci]
            report = json.loads((folder / str(artifact)).read_text())
            assert report["summary"]["exit_code"] == expected
            flagged = [r["target"] for r in report["results"] if r.get("verdict") == "malicious"]
            assert flagged == (["node_modules/colorz-utils"] if expected else []), (ci, flagged)
