"""features.commands: tokenising command lines, their behaviours, the package code npm scripts start."""

from __future__ import annotations

from malseq.features.commands import FILE, INLINE_REQUIRE, PRELOAD, SCRIPT, parse_command


def _targets(command: str) -> list[tuple[str, str]]:
    return [(t.kind, t.value) for t in parse_command(command)]


def test_node_file_forms() -> None:
    assert _targets("node index.js") == [(FILE, "index.js")]
    assert _targets("node ./lib/x.js --flag value") == [(FILE, "lib/x.js")]
    assert _targets("node --max-old-space-size=4096 --no-warnings scripts/post") == [(FILE, "scripts/post")]
    assert _targets("nodejs x.js") == [(FILE, "x.js")]
    assert _targets("./bin/run.js") == [(FILE, "bin/run.js")]
    assert _targets("install.sh") == [(FILE, "install.sh")]


def test_chained_commands_and_cd() -> None:
    assert _targets("node a.js && node b.js || node c.js; node d.js | tee log") == [
        (FILE, "a.js"), (FILE, "b.js"), (FILE, "c.js"), (FILE, "d.js")]
    assert _targets("cd scripts && node init.js") == [(FILE, "scripts/init.js")]
    assert _targets("cd .. && node x.js") == [(FILE, "x.js")]


def test_inline_code_and_preload() -> None:
    assert _targets("node -e \"require('./lib/steal')\"") == [(INLINE_REQUIRE, "./lib/steal")]
    assert _targets("node -e 'console.log(1); require(\"os\")'") == [(INLINE_REQUIRE, "os")]
    assert _targets("node -r ./hook.js main.js") == [(PRELOAD, "./hook.js"), (FILE, "main.js")]


def test_npm_run_and_shells() -> None:
    assert _targets("npm run build && npm run-script setup") == [(SCRIPT, "build"), (SCRIPT, "setup")]
    assert _targets("yarn compile") == [(SCRIPT, "compile")]
    assert _targets("yarn install") == []
    assert _targets("npm start") == [(SCRIPT, "start")]
    assert _targets("sh ./install.sh") == [(FILE, "install.sh")]
    assert _targets("bash -c 'node x.js'") == [(FILE, "x.js")]
    assert _targets("python setup_hook.py") == [(FILE, "setup_hook.py")]


def test_external_commands_and_env_prefixes() -> None:
    assert _targets("curl http://x | sh") == []
    assert _targets("node-gyp rebuild") == []
    assert _targets("NODE_ENV=production node server.js > out.log 2>&1") == [(FILE, "server.js")]
    assert _targets("cross-env FOO=1 node s.js") == [(FILE, "s.js")]
    assert _targets("node 'unbalanced.js") in ([(FILE, "'unbalanced.js")], [(FILE, "unbalanced.js")])
