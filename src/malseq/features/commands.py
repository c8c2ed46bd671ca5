"""Command lines: the one place that tokenises npm scripts and shell commands and says what they do.

Callers: `features.shell` (lines of .sh/.bat/.ps1 files), `features.manifest` (npm scripts,
which it follows through `npm run X` chains), the Python and JavaScript extractors (strings
handed to os.system/exec/spawn) and `sequence.builder` (which package code a script starts).

A command line is tokenised once, quote-aware, with `shlex` (POSIX rules; shell operators as
their own tokens), into segments: one simple command each, with the wrappers in front of it
(`sudo`, `nohup`, `FOO=1`, `env`, `cross-env`, `npx`) and redirections taken off. Code handed to
another shell (`sh -c '...'`, `cmd /c`, `powershell -Command`, `-EncodedCommand`) and command
substitutions (`$(...)`, backticks) are parsed the same way, to a bounded depth, and their
segments take the place of the wrapper's. Shell is too varied (bash, cmd, PowerShell) for one
grammar, so what matters is kept: which programs run, with which arguments, chained how; a few
patterns that span segments (reverse shells, PowerShell download-and-run) are matched on the raw
text as well.
"""

from __future__ import annotations

import base64
import binascii
import functools
import posixpath
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

__all__ = [
    "FILE", "INLINE_REQUIRE", "MAX_SCRIPT_NESTING", "PRELOAD", "SCRIPT", "CommandTarget", "Segment",
    "analyse_command", "looks_like_command", "node_inline_scripts", "parse_command", "reachable_scripts",
    "script_behaviours", "scripts_started", "split_command",
]

MAX_COMMAND_LENGTH = 20000
# How deep `sh -c`, `$(...)` and encoded PowerShell are followed inside one command line.
_MAX_NESTING = 4
# How many `npm run X` hops are followed from a lifecycle script (npm itself has no limit; a
# package that needs more than this to reach its payload is not one we have seen).
MAX_SCRIPT_NESTING = 5

# --- tokenising -------------------------------------------------------------------------------

_OPERATOR_CHARS = "();<>|&\n"
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Segment:
    """One simple command of a command line."""

    words: tuple[str, ...]  # program and arguments; wrappers and redirections taken off
    wrappers: tuple[str, ...] = ()  # what was taken off the front: "sudo", "nohup", "FOO=1", "cross-env"...
    piped: bool = False  # its input is the previous segment's output (`a | b`)
    background: bool = False  # ended by `&`: runs detached from the script

    @property
    def program(self) -> str:
        """The program's name, lower case, without folder or `.exe`."""
        return program_name(self.words[0]) if self.words else ""

    @property
    def args(self) -> tuple[str, ...]:
        return self.words[1:]

    @property
    def text(self) -> str:
        return " ".join(self.words)


def program_name(word: str) -> str:
    name = word.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return name[:-4] if name.endswith(".exe") else name


# A backslash that escapes something a POSIX shell would (a quote, a blank, `$`, another backslash).
_POSIX_ESCAPE = re.compile(r"""\\[\s"'$`\\]""")


# What shlex yields for a command without quotes or backslashes (runs of operator characters, and
# words), in a fraction of the time: most command lines take this path.
_PLAIN_TOKEN = re.compile(r"[();<>|&\n]+|[^ \t\r\f\v();<>|&\n]+")


def _tokens(command: str) -> list[str]:
    if not any(ch in command for ch in "'\"\\"):
        return _PLAIN_TOKEN.findall(command)
    lexer = shlex.shlex(command, posix=True, punctuation_chars=_OPERATOR_CHARS)
    lexer.whitespace_split = True
    if "\\" in command and not _POSIX_ESCAPE.search(command):
        lexer.escape = ""  # `C:\Windows\x.exe`: Windows paths, not escapes
    lexer.whitespace = " \t\r\f\v"  # newlines separate commands: they are operators here
    lexer.commenters = ""  # shlex would cut `http://x/#frag` at the `#`
    try:
        return list(lexer)
    except ValueError:  # unbalanced quotes: split on blanks and operators instead
        return re.findall(r"&&|\|\||[;|&()\n]|[<>]+&?|[^\s;|&()<>]+", command)


def _is_operator(token: str) -> bool:
    return bool(token) and all(ch in _OPERATOR_CHARS for ch in token)


# Words that run the rest of the segment as the command, after their own options; the options
# listed below take a value.
_WRAPPERS = frozenset({"sudo", "doas", "exec", "command", "builtin", "time", "nice", "nohup", "setsid", "then",
                       "do", "else", "{", "!", "cross-env", "cross-env-shell", "npx", "pnpx", "bunx", "start"})
_WRAPPER_VALUE_FLAGS = {"npx": frozenset({"-p", "--package", "-c", "--call"}),
                        "sudo": frozenset({"-u", "-g", "-C"}), "nice": frozenset({"-n"})}


def _unwrap(words: list[str]) -> tuple[list[str], list[str]]:
    """(the command, the wrappers in front of it)."""
    wrappers: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        name = program_name(word)
        if _ASSIGNMENT.match(word):
            wrappers.append(word)
            i += 1
            continue
        if name == "env" and any(not _ASSIGNMENT.match(w) and not w.startswith("-") for w in words[i + 1:]):
            # `env FOO=1 node x` runs node; a bare `env` prints the environment and is the command.
            wrappers.append(name)
            i += 1
            continue
        if name == "start" and (i + 1 >= len(words) or not (words[i + 1].startswith("/") or words[i + 1] == "")):
            if i + 1 < len(words) and _starts_program(words[i + 1]):
                wrappers.append(name)  # `start powershell -enc ..`, `start evil.exe`, `start https://e/x.hta`
                i += 1
                continue
            break  # `start` (npm start shorthand) and "start the server" are not cmd's start
        if name == "start" and words[i + 1] == "" and i + 2 < len(words):
            wrappers.append(name)  # `start "" x.exe`: the empty window title only cmd's start takes
            i += 2
            continue
        if name in _WRAPPERS and i + 1 < len(words):
            wrappers.append(name)
            i += 1
            value_flags = _WRAPPER_VALUE_FLAGS.get(name, frozenset())
            while i < len(words) and len(words[i]) > 1 and (
                    words[i].startswith("-") or (name == "start" and words[i].startswith("/"))):  # `start /b`
                i += 2 if words[i] in value_flags else 1
            continue
        break
    return words[i:], wrappers


# What cmd's `start` without a switch runs in a command line (and not in prose): a script or program
# file by its extension, a URL (opened by its handler, an .hta by mshta), or a notable program.
_START_TARGET_SUFFIXES = (".exe", ".bat", ".cmd", ".vbs", ".vbe", ".hta", ".ps1", ".js", ".jse", ".wsf", ".scr",
                          ".com", ".pif", ".lnk")
_URL_WORD = re.compile(r"(?i)^[a-z][a-z0-9+.-]*://")


def _starts_program(word: str) -> bool:
    return (program_name(word) in _NOTABLE or word.lower().endswith(_START_TARGET_SUFFIXES)
            or _URL_WORD.match(word) is not None)


def _fold_substitutions(tokens: list[str]) -> list[str]:
    """Put an unquoted `$( ... )` back into the word it belongs to: shlex sees `$`, `(`, ..., `)`.
    A process substitution `<( ... )` becomes a word of its own."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        process = token.startswith(("<(", ">("))
        if process or (out and out[-1].endswith("$") and not _is_operator(out[-1]) and token.startswith("(")
                       and _is_operator(token)):
            if process:
                out.append(token[0])
                tokens[i] = token[1:]
            inner: list[str] = []
            depth = 0
            rest = ""
            while i < len(tokens):
                token = tokens[i]
                i += 1
                if not _is_operator(token):
                    inner.append(shlex.quote(token))
                    continue
                piece = ""
                for k, ch in enumerate(token):
                    depth += (ch == "(") - (ch == ")")
                    if depth == 0:
                        rest = token[k + 1:]
                        break
                    piece += ch
                inner.append(piece[1:] if not inner and piece.startswith("(") else piece)
                if depth == 0:
                    break
            out[-1] += "(" + " ".join(p for p in inner if p) + ")"
            if rest:
                out.append(rest)
            continue
        out.append(token)
        i += 1
    return out


def split_command(command: str) -> tuple[Segment, ...]:
    """The simple commands of a command line, in order (no nesting: see `expand`)."""
    segments: list[Segment] = []
    words: list[str] = []
    piped = False
    skip_target = False

    def close(next_piped: bool, background: bool) -> None:
        nonlocal words, piped
        if words:
            rest, wrappers = _unwrap(words)
            if rest or wrappers:
                segments.append(Segment(tuple(rest), tuple(wrappers), piped, background))
        elif background and segments:  # `a 2>/dev/null &`: the redirection left no words
            segments[-1] = replace(segments[-1], background=True)
        words = []
        piped = next_piped

    for token in _fold_substitutions(_tokens(command[:MAX_COMMAND_LENGTH])):
        if skip_target:
            skip_target = False
            if not _is_operator(token):
                continue
        if _is_operator(token) and ("<" in token or ">" in token):
            # `> file`, `2>&1`, `&>log`: the next word is where output goes (a file or a
            # descriptor), not an argument; the `2` of `2>` is shlex's separate word before it.
            if words and words[-1].isdigit() and len(words[-1]) <= 2:
                words.pop()
            skip_target = True
            continue
        if _is_operator(token):
            stripped = token.replace("\n", ";") or ";"
            close(stripped in ("|", "|&"), stripped == "&")
            continue
        words.append(token)
    close(False, False)
    return tuple(segments)


_SUBSTITUTION_START = re.compile(r"[$<>]\(")


def _substitutions(word: str) -> list[str]:
    """The commands of `$(...)` (parentheses balanced, quotes respected) and backticks in a word."""
    found: list[str] = []
    match = _SUBSTITUTION_START.search(word)
    start = match.start() if match else -1
    while start >= 0:
        depth, quote, j = 0, "", start + 1
        while j < len(word):
            ch = word[j]
            if quote:
                quote = "" if ch == quote else quote
            elif ch in "'\"":
                quote = ch
            elif ch in "()":
                depth += 1 if ch == "(" else -1
                if depth == 0:
                    break
            j += 1
        found.append(word[start + 2:j])
        match = _SUBSTITUTION_START.search(word, j)
        start = match.start() if match else -1
    found.extend(m.group(1) for m in re.finditer(r"`([^`]*)`", word))
    return found


def _inner_code(segment: Segment) -> list[str]:
    """Code a segment hands to another shell: `sh -c CODE`, `cmd /c CODE`, `powershell -Command CODE`,
    `powershell -EncodedCommand B64` (decoded)."""
    program, args = segment.program, segment.args
    if program in _SHELLS or program == "su":
        for i, arg in enumerate(args[:-1]):
            if arg == "-c" or (arg.startswith("-") and not arg.startswith("--") and arg.endswith("c")):
                return [args[i + 1]]
        return []
    if program == "cmd":
        for i, arg in enumerate(args):
            if arg.lower() in ("/c", "/k", "/r"):
                return [" ".join(args[i + 1:])]
        return []
    if program in ("powershell", "pwsh"):
        for i, arg in enumerate(args[:-1]):
            flag = arg.lower()
            if flag in ("-c", "-command", "/c", "/command"):
                return [" ".join(args[i + 1:])]
            if flag in _PS_ENCODED_FLAGS:
                decoded = _decode_powershell(args[i + 1])
                return [decoded] if decoded else []
        return []
    return []


def expand(command: str, depth: int = 0) -> list[Segment]:
    """Segments of a command line with nested code parsed in place: `sh -c 'a | b'` gives the
    `sh` segment then `a` and `b`; `$(cmd)` and backticks give `cmd` before the segment using it."""
    out: list[Segment] = []
    for segment in split_command(command):
        inner = _inner_code(segment) if depth < _MAX_NESTING else []
        if depth < _MAX_NESTING and not inner:  # code handed to a shell has its substitutions parsed there
            for word in (*segment.wrappers, *segment.words):  # `X=$(hostname) node x` too
                if "(" in word or "`" in word:
                    for code in _substitutions(word):
                        out.extend(expand(code, depth + 1))
        out.append(segment)
        for code in inner:
            out.extend(expand(code, depth + 1))
    return out


# --- behaviours -------------------------------------------------------------------------------

_DOWNLOADERS = {"curl", "wget", "fetch", "iwr", "invoke-webrequest", "invoke-restmethod", "irm", "certutil",
                "bitsadmin", "start-bitstransfer", "aria2c", "tftp", "ftp"}
_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh"})
_INTERPRETERS = {"sh", "bash", "zsh", "dash", "ksh", "python", "python3", "python2", "perl", "ruby", "node",
                 "iex", "invoke-expression", "powershell", "pwsh", "cmd", "php", "osascript"}
_SYSINFO = {"whoami", "hostname", "uname", "id", "ifconfig", "ipconfig", "systeminfo", "ip", "netstat",
            "lsb_release", "sw_vers", "wmic", "getmac", "arp", "nproc", "ps", "tasklist"}
_DNS = {"nslookup", "dig", "host", "resolve-dnsname"}
_ENV = {"env", "printenv", "set", "export"}
_PERSIST = {"crontab", "schtasks", "launchctl", "systemctl", "reg"}
_HIDDEN = {"nohup", "setsid", "disown", "start-process", "daemonize"}
_LOLBINS = {"mshta", "rundll32", "regsvr32", "wscript", "cscript", "msiexec", "installutil"}
# Tools whose mere presence in a command makes it a "shell command" worth a behaviour.
_NOTABLE = (_DOWNLOADERS | _INTERPRETERS | _SYSINFO | _DNS | _PERSIST | _HIDDEN | _LOLBINS
            | {"chmod", "nc", "ncat", "netcat", "socat", "base64", "telnet", "xxd", "openssl", "scp", "rm",
               "eval", "exec", "cat", "echo"})
# (A bare `start` is not among them: "start the server", "Start date ..." in a script's text are prose;
# cmd's `start /b x` and `start "" x` count as the wrapper below.)
# `node x.js` / `python x.py` is how packages run their own code: not shell tooling.
_PLAIN_RUNTIMES = frozenset({"node", "python", "python3", "python2", "perl", "ruby", "php"})
_INLINE_CODE_FLAGS = frozenset({"-c", "-e"})
# Wrappers that are shell tooling in themselves (`nohup x &`, `start /b x`).
_NOTABLE_WRAPPERS = frozenset({"nohup", "setsid", "start"})

# How a command line starts. cmd's `start` counts only with a switch (`start /b x`, `start /min x`):
# "start the server", "Start date" are prose and labels.
_COMMAND_START = re.compile(
    r"(?i)^\s*(?:sudo\s+)?(?:curl|wget|bash|sh|zsh|powershell|pwsh|cmd(?:\.exe)?|chmod|nc|ncat|nslookup|dig|certutil|"
    r"bitsadmin|mshta|rundll32|regsvr32|wscript|cscript|python3?|node|perl|nohup|crontab|schtasks|start(?=\s+/)|whoami|"
    r"uname|hostname|echo|cat|rm|iex|invoke-\w+|reg|msiexec|osascript|ping|base64|env|printenv)\b"
)
_REVERSE_SHELL = re.compile(
    r"(?i)(/dev/tcp/|/dev/udp/|\bnc(?:at)?\b[^|;&]*\s-[a-z]*e\s|\bnetcat\b[^|;&]*\s-e\s|socat\b[^|;&]*exec:|"
    r"bash\s+-i\s*>&|sh\s+-i\s*>&|0<&\d+;?\s*exec|mkfifo\b[^|;&]*\bnc\b)"
)
_PS_ENCODED_FLAGS = frozenset({"-e", "-en", "-enc", "-encodedcommand", "-ec", "/e", "/enc"})
_PS_ENCODED = re.compile(
    r"(?i)\b(?:powershell|pwsh)(?:\.exe)?\b.*\s-(?:e|en|enc|encodedcommand|ec)\s+[A-Za-z0-9+/=]{16,}"
)
_PS_HIDDEN = re.compile(r"(?i)-(?:w|windowstyle)\s+hidden|-noni\b|-nop\b|\bstart\s+/b\b|/min\b|createnowindow")
# Download then run, or the usual cradle `IEX (New-Object Net.WebClient).DownloadString(url)`.
_PS_DOWNLOAD_EXEC = re.compile(r"(?i)(downloadstring|downloadfile|downloaddata|invoke-webrequest|iwr|net\.webclient).*"
                               r"(iex|invoke-expression|start-process|\.exe)|"
                               r"\b(iex|invoke-expression)\b.*(downloadstring|downloaddata)")
_UPLOAD_FLAGS = re.compile(r"(?i)(?:^|\s)(-d|--data(?:-\w+)?|-F|--form|-T|--upload-file|-X\s*(?:POST|PUT)|"
                           r"--post-data|--post-file|--method=post|-Method\s+Post|-Body)\b")
_CHMOD_EXEC = re.compile(r"(?i)\bchmod\s+(?:[+ugoa]*x|[0-7]?[1357][0-7][0-7]|\d*7\d\d)\b")
_DOWNLOAD_OUTPUT = re.compile(r"(?i)(?:\s-o\s|\s--output\s|\s-O\s|-OutFile|\s>\s*\S+)")
_RUN_LOCAL = re.compile(r"(?:^|[\s;&|])(?:\./|/tmp/|%temp%|\$TMPDIR|\$env:temp)\S+", re.IGNORECASE)
_SUBST = re.compile(r"\$\(|`")
_SECRET_VARIABLE = re.compile(r"\$\{?[A-Z_]*(TOKEN|SECRET|KEY|PASS|AUTH|AWS|NPM)[A-Z_]*\}?")
_OUTPUT_FLAGS = frozenset({"-o", "--output", "-O", "--output-document", "-outfile"})
# A setuptools entry point, `name = package.module:function [extra]`.
_ENTRY_POINT_SPEC = re.compile(r"^[\w.-]+\s*=\s*[A-Za-z_][\w.]*(?::[A-Za-z_][\w.]*)?(?:\s*\[[\w,\s-]*\])?$")
# Single words that are a complete reconnaissance command on their own.
_BARE_COMMANDS = frozenset({"whoami", "ifconfig", "ipconfig", "systeminfo", "uname", "printenv"})


def _decode_powershell(blob: str) -> str | None:
    """`-EncodedCommand` is base64 of UTF-16LE text."""
    if len(blob) < 8 or len(blob) > MAX_COMMAND_LENGTH:
        return None
    try:
        raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    text = raw.decode("utf-16-le", errors="replace")
    return text if all(ch.isprintable() or ch.isspace() for ch in text) else None  # else it was not a command


def looks_like_command(text: str) -> bool:
    """Is this string plausibly a shell command line (as opposed to prose or data)?"""
    if len(text) < 3 or len(text) > MAX_COMMAND_LENGTH:
        return False
    stripped = text.strip()
    # A bare word ('base64', 'hostname', 'env', 'echo', 'start') is far more often an encoding name, a
    # property key or a label than a command line; strings actually handed to exec()/system() are
    # analysed with analyse_command directly and don't go through this guess.
    # `split()` splits on exactly the characters `str.isspace` accepts: two parts mean inner white space.
    if len(stripped.split(None, 1)) < 2 and stripped.lower() not in _BARE_COMMANDS:
        return False
    if _ENTRY_POINT_SPEC.match(stripped):
        return False  # `wget = pkg.cli:main`: a console script of that name, not a command
    return bool(_COMMAND_START.match(text)) or bool(_REVERSE_SHELL.search(text))


def _output_file(segment: Segment) -> str | None:
    """Where a downloader saves what it fetched (`curl -o F`, `wget -O F`, `-OutFile F`)."""
    args = segment.args
    for i, arg in enumerate(args[:-1]):
        if arg.lower() in _OUTPUT_FLAGS:
            return args[i + 1]
    return None


def _same_path(a: str, b: str) -> bool:
    return posixpath.normpath(a.replace("\\", "/")) == posixpath.normpath(b.replace("\\", "/"))


def _runs_file(segment: Segment, path: str) -> bool:
    """Does this segment run the file at `path` (as the program, or as an interpreter's script)?"""
    if not segment.words:
        return False
    if _same_path(segment.words[0], path):
        return True
    script = next((a for a in segment.args if not a.startswith("-")), None)
    return segment.program in _INTERPRETERS and script is not None and _same_path(script, path)


def _runs_inline_code(segment: Segment) -> bool:
    """`python -c CODE`, `node -e CODE`: the flag comes before any script argument."""
    for arg in segment.args:
        if arg in _INLINE_CODE_FLAGS:
            return True
        if not arg.startswith("-"):
            return False
    return False


def _runs_substituted_download(segment: Segment) -> bool:
    if not segment.words:
        return False
    runs_code = segment.program in _INTERPRETERS or segment.program in ("eval", "source", ".") \
        or segment.words[0].startswith(("$(", "`"))
    return runs_code and any(
        inner.program in _DOWNLOADERS
        for word in segment.words if "(" in word or "`" in word
        for code in _substitutions(word) for inner in expand(code, _MAX_NESTING - 1))


def analyse_command(command: str) -> list[str]:
    """Behaviour ids of one command line (pipes, `&&`, `;`, nested `sh -c`), in a stable order."""
    return list(_command_behaviours(command[:MAX_COMMAND_LENGTH]))


@functools.lru_cache(maxsize=4096)  # obfuscated code repeats the same command strings many times
def _command_behaviours(text: str) -> tuple[str, ...]:
    segments = expand(text)
    found: list[str] = []

    def add(bid: str) -> None:
        if bid not in found:
            found.append(bid)

    if any((s.program in _NOTABLE and not (s.program in _PLAIN_RUNTIMES and not _runs_inline_code(s)))
           or any(w in _NOTABLE_WRAPPERS for w in s.wrappers) for s in segments):
        add("shell_command")
    downloaded = False
    saved: list[str] = []
    for segment in segments:
        word, seg = segment.program, segment.text
        if any(w in _HIDDEN for w in segment.wrappers):
            add("hidden_process")
        if word in _DOWNLOADERS:
            add("network_request")
            downloaded = True
            if _UPLOAD_FLAGS.search(seg):
                add("upload_data")
            out = _output_file(segment)
            if out:
                saved.append(out)
        elif word in _DNS:
            add("dns_lookup")
        elif word in _SYSINFO:
            add("collect_system_info")
        elif word in _ENV:
            if word in ("env", "printenv") or (word == "set" and not segment.args):
                add("read_env")
        elif word in _PERSIST:
            if word != "reg" or re.search(r"(?i)\\run\b", " ".join(segment.args) + " " + text):
                add("persistence")
        elif word in _HIDDEN:
            add("hidden_process")
        elif word in _LOLBINS:
            add("run_command")
        if word == "base64" and any(a in ("-d", "--decode", "-D") for a in segment.args):
            add("encoding_call")
        if word in ("ping", "nslookup", "dig") and _SUBST.search(text):
            add("dns_lookup")
        if _SECRET_VARIABLE.search(seg):
            add("read_env")
        if saved and any(_runs_file(segment, path) for path in saved):
            add("download_and_execute")  # `curl -o x.sh URL && sh x.sh`
        if _runs_substituted_download(segment):
            add("download_and_execute")  # `sh -c "$(curl URL)"`, `bash <(wget -O- URL)`, `eval "$(curl URL)"`
    # Downloaded content piped into an interpreter.
    for before, after in zip(segments, segments[1:], strict=False):
        if after.piped and before.program in _DOWNLOADERS and after.program in _INTERPRETERS:
            add("download_and_execute")
        if after.piped and before.program == "base64" and after.program in _INTERPRETERS:
            add("eval_code")
    if downloaded and (_CHMOD_EXEC.search(text) or (_DOWNLOAD_OUTPUT.search(text) and _RUN_LOCAL.search(text))):
        add("download_and_execute")
    if _PS_DOWNLOAD_EXEC.search(text):
        add("network_request")
        add("download_and_execute")
    if _CHMOD_EXEC.search(text):
        add("write_executable")
    if _REVERSE_SHELL.search(text):
        add("reverse_shell")
    if _PS_ENCODED.search(text):
        add("encoding_call")
        add("eval_code")
    if re.search(r"(?i)\b(powershell|pwsh|cmd)\b", text) and _PS_HIDDEN.search(text):
        add("hidden_process")
    if any(s.background for s in segments):
        add("hidden_process")
    if any(s.program in _PLAIN_RUNTIMES - {"php"} and _runs_inline_code(s) for s in segments):
        add("eval_code")
    return tuple(found)


_NODE_INLINE_FLAGS = frozenset({"-e", "--eval", "-p", "--print"})


def node_inline_scripts(command: str) -> list[str]:
    """The code of every `node -e '...'` (or --eval/-p/--print) in a command line."""
    if "node" not in command:
        return []
    scripts: list[str] = []
    for segment in expand(command):
        if segment.program not in _NODE:
            continue
        args = segment.args
        for i, flag in enumerate(args):
            if flag in _NODE_INLINE_FLAGS and i + 1 < len(args):
                scripts.append(args[i + 1])
                break
            if flag.startswith(("--eval=", "--print=")):
                scripts.append(flag.split("=", 1)[1])
                break
            if not flag.startswith("-"):
                break
    return scripts


def script_behaviours(command: str) -> list[str]:
    """Everything a command line read as a script does: its commands, its literal text (URLs, IP
    addresses...) and the behaviours of JavaScript it runs inline (`node -e "require('https')..."`)."""
    from malseq.features.javascript import analyse_javascript_source
    from malseq.features.strings import classify_literal

    found = analyse_command(command)
    found += [b for b in classify_literal(command) if b not in found]
    for code in node_inline_scripts(command):
        for behaviour, _line, _column in analyse_javascript_source(code, "package.json<node -e>"):
            if behaviour not in found:
                found.append(behaviour)
    return found


# --- what a script starts ---------------------------------------------------------------------

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
    runner: str = ""  # for SCRIPT: "npm", "yarn" or "pnpm"


# npm (and yarn 1) run `preX` and `postX` around `npm run X`; pnpm and yarn 2+ do not by default,
# but a package cannot know which one its victim uses, so yarn counts as npm here.
_HOOK_RUNNERS = frozenset({"npm", "yarn"})


def scripts_started(target: CommandTarget) -> tuple[str, ...]:
    """The package.json scripts a SCRIPT target runs, in order: `preX`, `X`, `postX`."""
    if target.kind != SCRIPT:
        return ()
    if target.runner in _HOOK_RUNNERS:
        return (f"pre{target.value}", target.value, f"post{target.value}")
    return (target.value,)


_NODE = frozenset({"node", "nodejs"})
_PYTHONS = frozenset({"python", "python3", "python2", "py", "pythonw"})
_RUNNERS = frozenset({"npm", "pnpm", "yarn"})
_SCRIPT_SHORTHANDS = frozenset({"start", "test", "stop", "restart"})
_YARN_COMMANDS = frozenset({"install", "add", "remove", "upgrade", "global", "init", "link", "unlink", "config",
                            "cache", "why", "info", "audit", "pack", "publish", "login", "logout", "bin", "dlx",
                            "exec", "node", "workspace", "workspaces", "set", "plugin", "version", "outdated"})
_PNPM_COMMANDS = frozenset({"install", "i", "add", "remove", "rm", "update", "up", "link", "unlink", "exec", "dlx",
                            "store", "publish", "pack", "audit", "outdated", "list", "ls", "why", "config",
                            "rebuild", "prune", "import", "env", "setup", "server", "recursive", "-r"})
_NODE_CODE_FLAGS = _NODE_INLINE_FLAGS
_NODE_PRELOAD_FLAGS = frozenset({"-r", "--require", "--import", "--loader", "--experimental-loader"})
_RUNNABLE_SUFFIXES = (".js", ".cjs", ".mjs", ".sh", ".py", ".bat", ".cmd", ".ps1")
_REQUIRE_IN_CODE = re.compile(r"""require\(\s*(['"`])([^'"`]{1,300})\1\s*\)""")


def _script_run(program: str, args: tuple[str, ...]) -> str | None:
    """The package.json script an npm/yarn/pnpm command runs: `npm run X`, `npm run-script X`,
    `npm start`/`test`, `yarn X` and `pnpm X` when X is not one of their own commands."""
    rest = [a for a in args if not a.startswith("-")]
    if not rest:
        return None
    if rest[0] in ("run", "run-script", "run-scripts", "rum", "urn") and len(rest) > 1:
        return rest[1]
    if rest[0] in _SCRIPT_SHORTHANDS:
        return rest[0]
    if program == "yarn" and rest[0] not in _YARN_COMMANDS:
        return rest[0]
    if program == "pnpm" and rest[0] not in _PNPM_COMMANDS:
        return rest[0]
    return None


def parse_command(command: str, depth: int = 0) -> list[CommandTarget]:
    """The package code a script command line starts, in order. `cd DIR` changes the folder later
    relative paths are taken from (returned paths are root-relative and normalised)."""
    targets: list[CommandTarget] = []
    cwd = ""
    for segment in split_command(command[:MAX_COMMAND_LENGTH]):
        words = segment.words
        if not words:
            continue
        label = segment.text
        program = segment.program
        args = segment.args

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
                        targets.append(CommandTarget(INLINE_REQUIRE, value, label))
                    break
                if arg in _NODE_PRELOAD_FLAGS and i + 1 < len(args):
                    spec = args[i + 1]
                    value = "./" + here(spec) if spec.startswith(".") else spec
                    targets.append(CommandTarget(PRELOAD, value, label))
                    i += 2
                    continue
                if arg.startswith("-"):
                    i += 1
                    continue
                targets.append(CommandTarget(FILE, here(arg), label))
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
                targets.append(CommandTarget(FILE, here(arg), label))
                break
            continue
        if program in _RUNNERS:
            script = _script_run(program, args)
            if script is not None:
                targets.append(CommandTarget(SCRIPT, script, label, program))
            continue
        first = words[0]
        if first.startswith(("./", "../")) or first.lower().endswith(_RUNNABLE_SUFFIXES):
            targets.append(CommandTarget(FILE, here(first), label))
    return targets


def reachable_scripts(scripts: Mapping[str, str], roots: Iterable[str]) -> list[tuple[str, str]]:
    """(name, command) of the roots and of every script they run through `npm run X` chains,
    each once: a root first, then what it runs, depth first. A script is reached when some chain
    from a root gets to it in fewer than MAX_SCRIPT_NESTING hops, so cycles terminate; the
    sequence stage follows the same chains with the same bound."""
    roots = [r for r in roots if r in scripts]
    parsed: dict[str, list[str]] = {}

    def runs(name: str) -> list[str]:
        if name not in parsed:
            parsed[name] = [other for t in parse_command(scripts[name]) for other in scripts_started(t)
                            if other in scripts]
        return parsed[name]

    # Hop counts breadth first, so the bound means the same whatever order the chains are met in.
    hops = dict.fromkeys(roots, 0)
    frontier = list(hops)
    for level in range(1, MAX_SCRIPT_NESTING):
        frontier = list(dict.fromkeys(other for name in frontier for other in runs(name) if other not in hops))
        for other in frontier:
            hops.setdefault(other, level)
    # Then each reached script once, in the order the chains run them (depth first).
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    stack = list(reversed(roots))
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        out.append((name, scripts[name]))
        stack.extend(reversed([other for other in runs(name) if other in hops and other not in seen]))
    return out


# --- build steps ------------------------------------------------------------------------------
# Commands that build or register the package itself: setup.py build commands and npm install
# scripts run them routinely, and they fetch nothing and run no code from the network by themselves.
# A command line counts only when every one of its simple commands is one of these (no pipes, no
# background, no substitution): `make && curl x | sh` is not a build step.
BUILD_TOOLS = frozenset({
    "cmake", "make", "gmake", "nmake", "ninja", "meson", "gcc", "cc", "c++", "g++", "clang", "clang++", "cl",
    "swig", "cython", "nvcc", "ar", "ranlib", "pkg-config", "msbuild", "cargo", "rustc", "protoc", "f2py",
    "gfortran", "qmake", "scons", "xcodebuild", "install_name_tool", "patchelf", "strip", "autoreconf",
    "mkdir", "true"})
# Version-control commands that only read the working copy (the version of a checkout).
_VCS_QUERIES = {"git": frozenset({"describe", "rev-list", "rev-parse", "log", "status", "tag", "show", "diff",
                                  "ls-files"}),
                "hg": frozenset({"id", "identify", "log", "tip", "parents", "summary"}),
                "svn": frozenset({"info", "version", "log"}),
                "svnversion": frozenset()}
# Programs with subcommands that build or register only those (empty: any arguments).
_BUILD_SUBCOMMANDS = {"jupyter": frozenset({"kernelspec", "nbextension", "labextension"}),
                      "jupyter-kernelspec": frozenset()}
# pkg-config-style queries of an installed library (`mecab-config --libs-only-l`, `xml2-config --cflags`,
# `python3-config --includes`, `pg_config --includedir`): they print flags or paths for the compiler,
# nothing else. Only these options and nothing besides them: a positional argument (a URL, a file)
# or an option with a value is not a query, and the program must be looked up on PATH (`./x-config`
# is the package's own file).
_CONFIG_PROGRAM = re.compile(r"[a-z0-9][a-z0-9_.+-]*[-_]config")  # pg_config too
_CONFIG_QUERIES = frozenset({
    "--cflags", "--cppflags", "--cxxflags", "--ldflags", "--libs", "--static-libs", "--system-libs", "--ldadd",
    "--includes", "--include-dir", "--includedir", "--inc-dir", "--incdir", "--libdir", "--lib-dir", "--libs-dir",
    "--bindir", "--datadir", "--dicdir", "--libexecdir", "--sysconfdir", "--prefix", "--exec-prefix",
    "--version", "--modversion", "--api-version", "--cc", "--cxx", "--arch", "--host", "--static",
    "--shared", "--embed", "--extension-suffix", "--abiflags", "--configdir", "--features", "--pkgincludedir",
    "--includedir-server", "--pgxs", "--cflags_sl", "--ldflags_sl", "--libs-private", "--cflags-private"})
_CONFIG_QUERY_FAMILY = re.compile(r"--(?:libs|cflags)-only-[A-Za-z]+")


def _is_config_query(segment: Segment) -> bool:
    """`NAME-config --cflags --libs`: every argument one of the query options above."""
    word = segment.words[0] if segment.words else ""
    return (bool(segment.args) and "/" not in word and "\\" not in word
            and _CONFIG_PROGRAM.fullmatch(segment.program) is not None
            and all(a in _CONFIG_QUERIES or _CONFIG_QUERY_FAMILY.fullmatch(a) for a in segment.args))


# npm install scripts of native builds, prebuilt binaries of the package's own release and git hooks.
NPM_BUILD_TOOLS = frozenset({
    "node-gyp", "node-pre-gyp", "prebuild-install", "node-gyp-build", "node-gyp-build-optional-packages",
    "cmake-js", "husky", "is-ci", "patch-package", "ngcc", "opencollective-postinstall", "opencollective",
    "go-npm", "tsc", "electron-rebuild", "napi"})


# Variables that choose which program or library runs (`PATH=.:$PATH x-config`, `LD_PRELOAD=./x.so make`):
# set in front of a build command, they make it run what the package ships.
_SEARCH_PATH_VARIABLE = re.compile(r"(?i)^(?:[A-Za-z0-9_]*PATH[A-Za-z0-9_]*|LD_[A-Za-z0-9_]*|DYLD_[A-Za-z0-9_]*)=")


def shipped_program_names(paths: Iterable[str]) -> frozenset[str]:
    """The names (lower case, without folder) of a package's files, and without the extension for
    files Windows runs by bare name: a command of that name may run the package's own file (cmd and
    CreateProcess look in the current folder first, trying PATHEXT's extensions). A header or a data
    file of the same stem (`napi.h`) cannot run, so it does not count."""
    out: set[str] = set()
    for path in paths:
        base = path.replace("\\", "/").rsplit("/", 1)[-1].lower()
        out.add(base)
        stem, dot, extension = base.lstrip(".").rpartition(".")
        if dot and f".{extension}" in _WINDOWS_RUNNABLE:
            out.add(base.rsplit(".", 1)[0])
    return frozenset(out)


# Windows' default PATHEXT, with PowerShell scripts (run by bare name from a PowerShell prompt) and
# Python scripts (the Python installer can add .PY to PATHEXT).
_WINDOWS_RUNNABLE = frozenset({".com", ".exe", ".bat", ".cmd", ".vbs", ".vbe", ".js", ".jse", ".wsf", ".wsh",
                               ".msc", ".ps1", ".scr", ".pif", ".lnk", ".py", ".pyw"})


def _segment_is_build_step(segment: Segment, tools: frozenset[str], shipped: frozenset[str]) -> bool:
    program = segment.program
    if segment.piped or segment.background or any(_SUBST.search(w) for w in segment.words):
        return False
    if any(w not in ("sudo", "cross-env") and "=" not in w for w in segment.wrappers):
        return False
    if any(_SEARCH_PATH_VARIABLE.match(w) for w in segment.wrappers):
        return False
    if program in shipped or program.rsplit(".", 1)[0] in shipped:
        return False  # the package ships a file of that name: on Windows, that file is what runs
    words = [a for a in segment.args if not a.startswith("-")]
    if program in _VCS_QUERIES:
        queries = _VCS_QUERIES[program]
        return not queries or (bool(words) and words[0] in queries)
    if program in _BUILD_SUBCOMMANDS:
        allowed = _BUILD_SUBCOMMANDS[program]
        return not allowed or (bool(words) and words[0] in allowed)
    return program in tools or _is_config_query(segment)


def is_build_command(command: str, shipped: frozenset[str] = frozenset()) -> bool:
    """A command line (setup.py's subprocess call) that only builds: compilers, build systems, VCS
    version queries, pkg-config-style library queries (`NAME-config --libs`). An "X" word (a value the
    engine could not fold) is never the program. `shipped`: shipped_program_names of the package;
    a program of one of those names is the package's own file, not a build tool."""
    segments = split_command(command[:MAX_COMMAND_LENGTH])
    return bool(segments) and all(_segment_is_build_step(s, BUILD_TOOLS, shipped) for s in segments)


def is_npm_build_script(command: str, shipped: frozenset[str] = frozenset()) -> bool:
    """An npm install script that only builds the native addon, fetches the package's own prebuilt
    binary through the usual tools, installs git hooks or marks its own files executable."""
    segments = split_command(command[:MAX_COMMAND_LENGTH])
    return bool(segments) and all(
        _segment_is_build_step(s, NPM_BUILD_TOOLS | BUILD_TOOLS, shipped) or own_file_chmod(s) for s in segments)


def own_file_chmod(segment: Segment) -> bool:
    """`chmod +x ./bin/tool`: a mode change of files inside the package (relative paths, no `..`)."""
    if segment.program != "chmod" or segment.piped or segment.background or segment.wrappers:
        return False
    paths = [a for a in segment.args
             if not a.startswith(("-", "+")) and not re.fullmatch(r"[0-7]{3,4}|[ugoa]*[+=-][rwxst]+", a)]
    return bool(paths) and all(
        not posixpath.isabs(p) and not p.startswith(("~", "$", "%", "\\")) and ".." not in p.split("/")
        and not _SUBST.search(p) for p in paths)
