"""npm script commands -> what they run: a package file, another script, or inline code.

Only the shapes that start the package's own code matter here (`node x.js`, `node -e '...'`,
`sh ./x.sh`, `npm run other`, `./bin/x.js`, `cd lib && node y`); what an external command itself
does (curl, powershell...) is already a manifest event from `features.shell.analyse_command`.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass

FILE = "file"  # a package file to run, path relative to the package root
SCRIPT = "script"  # another package.json script, by name
PRELOAD = "preload"  # `node -r spec`: a module loaded before the program
INLINE_REQUIRE = "inline-require"  # a require('...') inside `node -e` code
# PRELOAD and INLINE_REQUIRE values are module specs: "./"-prefixed root-relative paths or bare names.


@dataclass(frozen=True)
class CommandTarget:
    kind: str
    value: str
    segment: str  # the command segment it came from, for labels


_SEPARATORS = frozenset({"&&", "||", ";", "|", "&", "(", ")", ";;", "|&"})
_REDIRECTS = frozenset({">", ">>", "<", "<<", ">&", "<&", "&>", ">|", "&>>"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_PREFIXES = frozenset({"sudo", "exec", "nohup", "time", "env", "cross-env", "command", "npx", "then", "do"})
_NODE = frozenset({"node", "nodejs"})
_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh"})
_PYTHONS = frozenset({"python", "python3", "python2", "py", "pythonw"})
_RUNNERS = frozenset({"npm", "pnpm", "yarn"})
_SCRIPT_SHORTHANDS = frozenset({"start", "test", "stop", "restart"})
_YARN_COMMANDS = frozenset({"install", "add", "remove", "upgrade", "global", "init", "link", "unlink", "config",
                            "cache", "why", "info", "audit", "pack", "publish", "login", "logout", "bin", "dlx",
                            "exec", "node", "workspace", "workspaces", "set", "plugin", "version", "outdated"})
_NODE_CODE_FLAGS = frozenset({"-e", "--eval", "-p", "--print"})
_NODE_PRELOAD_FLAGS = frozenset({"-r", "--require", "--import", "--loader", "--experimental-loader"})
_RUNNABLE_SUFFIXES = (".js", ".cjs", ".mjs", ".sh", ".py", ".bat", ".cmd", ".ps1")
_REQUIRE_IN_CODE = re.compile(r"""require\(\s*(['"`])([^'"`]{1,300})\1\s*\)""")
_MAX_NESTING = 4


def _tokenize(command: str) -> list[str]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:  # unbalanced quotes: fall back to splitting on blanks and operators
        return re.findall(r"&&|\|\||[;|&()]|[^\s;|&()]+", command)


def _segments(command: str) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for token in _tokenize(command[:20000]):
        if token in _SEPARATORS:
            out.append([])
        else:
            out[-1].append(token)
    return [s for s in out if s]


def _strip_prefixes(tokens: list[str]) -> list[str]:
    i = 0
    while i < len(tokens) and (tokens[i] in _PREFIXES or _ASSIGNMENT.match(tokens[i])):
        i += 1
    words: list[str] = []
    skip_next = False
    for tok in tokens[i:]:
        if skip_next:
            skip_next = False
            continue
        if tok in _REDIRECTS:
            skip_next = True
            continue
        if re.fullmatch(r"\d?[<>]&?\d*|&>", tok):
            continue
        words.append(tok)
    return words


def _program(word: str) -> str:
    name = word.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return name[:-4] if name.endswith(".exe") else name


def parse_command(command: str, depth: int = 0) -> list[CommandTarget]:
    """The package code a script command line starts, in order. `cd DIR` changes the folder later
    relative paths are taken from (returned paths are root-relative and normalised)."""
    targets: list[CommandTarget] = []
    cwd = ""
    for raw in _segments(command):
        words = _strip_prefixes(raw)
        if not words:
            continue
        segment = " ".join(words)
        program = _program(words[0])
        args = words[1:]

        def here(path: str, cwd: str = cwd) -> str:
            joined = posixpath.normpath(posixpath.join(cwd, path.lstrip("/") if path.startswith("/") else path))
            return "" if joined == "." else joined

        if program == "cd":
            if args and not args[0].startswith("-"):
                cwd = here(args[0])
                if cwd.startswith(".."):
                    cwd = ""
            continue
        if program in _NODE:
            i = 0
            while i < len(args):
                arg = args[i]
                if arg in _NODE_CODE_FLAGS and i + 1 < len(args):
                    for m in _REQUIRE_IN_CODE.finditer(args[i + 1]):
                        spec = m.group(2)
                        value = "./" + here(spec) if spec.startswith(".") else spec
                        targets.append(CommandTarget(INLINE_REQUIRE, value, segment))
                    break
                if arg in _NODE_PRELOAD_FLAGS and i + 1 < len(args):
                    spec = args[i + 1]
                    value = "./" + here(spec) if spec.startswith(".") else spec
                    targets.append(CommandTarget(PRELOAD, value, segment))
                    i += 2
                    continue
                if arg.startswith("-"):
                    i += 1
                    continue
                targets.append(CommandTarget(FILE, here(arg), segment))
                break
            continue
        if program in _SHELLS or program in _PYTHONS:
            if args and args[0] == "-c" and len(args) > 1 and program in _SHELLS and depth < _MAX_NESTING:
                targets.extend(parse_command(args[1], depth + 1))
                continue
            for arg in args:
                if arg.startswith("-"):
                    if arg in ("-c", "-m"):
                        break
                    continue
                targets.append(CommandTarget(FILE, here(arg), segment))
                break
            continue
        if program in _RUNNERS:
            rest = [a for a in args if not a.startswith("-")]
            if rest and rest[0] in ("run", "run-script", "run-scripts") and len(rest) > 1:
                targets.append(CommandTarget(SCRIPT, rest[1], segment))
            elif rest and (rest[0] in _SCRIPT_SHORTHANDS or (program == "yarn" and rest[0] not in _YARN_COMMANDS)):
                # `npm start`, `npm test`; `yarn X` runs script X unless X is one of yarn's own commands.
                targets.append(CommandTarget(SCRIPT, rest[0], segment))
            continue
        first = words[0]
        if first.startswith(("./", "../")) or first.lower().endswith(_RUNNABLE_SUFFIXES):
            targets.append(CommandTarget(FILE, here(first), segment))
    return targets
