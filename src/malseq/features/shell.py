"""Shell command analysis: npm scripts, arguments of os.system/subprocess/exec, .sh/.bat/.ps1 files.

A pattern pass over the command's pipeline segments; shell is too varied (bash, cmd,
PowerShell) for one grammar, and what matters is which tools are chained how.
"""

from __future__ import annotations

import re
import shlex
import time

from malseq.features.types import MODULE_SCOPE, BehaviourEvent, FileAnalysis
from malseq.intake.package import PackageFile
from malseq.report.sanitize import clean

_DOWNLOADERS = {"curl", "wget", "fetch", "iwr", "invoke-webrequest", "invoke-restmethod", "irm", "certutil",
                "bitsadmin", "start-bitstransfer", "aria2c", "tftp", "ftp"}
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
            | {"chmod", "nc", "ncat", "netcat", "socat", "base64", "telnet", "xxd", "openssl", "scp", "rm", "start",
               "eval", "exec", "cat", "echo"})

_COMMAND_START = re.compile(
    r"(?i)^\s*(?:sudo\s+)?(?:curl|wget|bash|sh|zsh|powershell|pwsh|cmd(?:\.exe)?|chmod|nc|ncat|nslookup|dig|certutil|"
    r"bitsadmin|mshta|rundll32|regsvr32|wscript|cscript|python3?|node|perl|nohup|crontab|schtasks|start|whoami|"
    r"uname|hostname|echo|cat|rm|iex|invoke-\w+|reg|msiexec|osascript|ping|base64|env|printenv)\b"
)
_SEGMENT_SPLIT = re.compile(r"\|\||&&|;|\n|(?<![|>])\|(?!\|)")
_REVERSE_SHELL = re.compile(
    r"(?i)(/dev/tcp/|/dev/udp/|\bnc(?:at)?\b[^|;&]*\s-[a-z]*e\s|\bnetcat\b[^|;&]*\s-e\s|socat\b[^|;&]*exec:|"
    r"bash\s+-i\s*>&|sh\s+-i\s*>&|0<&\d+;?\s*exec|mkfifo\b[^|;&]*\bnc\b)"
)
_PS_ENCODED = re.compile(
    r"(?i)\b(?:powershell|pwsh)(?:\.exe)?\b.*\s-(?:e|en|enc|encodedcommand|ec)\s+[A-Za-z0-9+/=]{16,}"
)
_PS_HIDDEN = re.compile(r"(?i)-(?:w|windowstyle)\s+hidden|-noni\b|-nop\b|\bstart\s+/b\b|/min\b|createnowindow")
_PS_DOWNLOAD_EXEC = re.compile(r"(?i)(downloadstring|downloadfile|downloaddata|invoke-webrequest|iwr|net\.webclient).*"
                               r"(iex|invoke-expression|start-process|\.exe)")
_UPLOAD_FLAGS = re.compile(r"(?i)(?:^|\s)(-d|--data(?:-\w+)?|-F|--form|-T|--upload-file|-X\s*(?:POST|PUT)|"
                           r"--post-data|--post-file|--method=post|-Method\s+Post|-Body)\b")
_CHMOD_EXEC = re.compile(r"(?i)\bchmod\s+(?:[+ugoa]*x|[0-7]?[1357][0-7][0-7]|\d*7\d\d)\b")
_DOWNLOAD_OUTPUT = re.compile(r"(?i)(?:\s-o\s|\s--output\s|\s-O\s|-OutFile|\s>\s*\S+)")
_RUN_LOCAL = re.compile(r"(?:^|[\s;&|])(?:\./|/tmp/|%temp%|\$TMPDIR|\$env:temp)\S+", re.IGNORECASE)
_SUBST = re.compile(r"\$\(|`")


def _first_word(segment: str) -> str:
    try:
        words = shlex.split(segment, posix=True)
    except ValueError:
        words = segment.split()
    while words and (words[0] in ("sudo", "exec", "then", "do", "{", "(") or "=" in words[0].split("/")[0]):
        words = words[1:]
    if not words:
        return ""
    word = words[0].rsplit("/", 1)[-1].rsplit("\\", 1)[-1].lower()
    return word[:-4] if word.endswith(".exe") else word


# Single words that are a complete reconnaissance command on their own.
_BARE_COMMANDS = frozenset({"whoami", "ifconfig", "ipconfig", "systeminfo", "uname", "printenv"})


def looks_like_command(text: str) -> bool:
    """Is this string plausibly a shell command line (as opposed to prose or data)?"""
    if len(text) < 3 or len(text) > 20000:
        return False
    stripped = text.strip()
    # A bare word ('base64', 'hostname', 'env', 'echo', 'start') is far more often an encoding name, a
    # property key or a label than a command line; strings actually handed to exec()/system() are
    # analysed with analyse_command directly and don't go through this guess.
    if not any(ch.isspace() for ch in stripped) and stripped.lower() not in _BARE_COMMANDS:
        return False
    return bool(_COMMAND_START.match(text)) or bool(_REVERSE_SHELL.search(text))


def analyse_command(command: str) -> list[str]:
    """Behaviour ids for one command line (may contain pipes, &&, ;)."""
    text = command[:20000]
    segments = [s.strip() for s in _SEGMENT_SPLIT.split(text) if s.strip()]
    words = [_first_word(s) for s in segments]
    found: list[str] = []

    def add(bid: str) -> None:
        if bid not in found:
            found.append(bid)

    # `node x.js` / `python x.py` is how packages run their own code: not shell tooling.
    plain_runtime = {"node", "python", "python3", "python2", "perl", "ruby", "php"}
    if any(w in _NOTABLE - plain_runtime or (w in plain_runtime and re.search(r"\s-[ce]\s", s))
           for s, w in zip(segments, words, strict=True)):
        add("shell_command")
    downloaded = False
    for seg, word in zip(segments, words, strict=True):
        if word in _DOWNLOADERS:
            add("network_request")
            downloaded = True
            if _UPLOAD_FLAGS.search(seg):
                add("upload_data")
        elif word in _DNS:
            add("dns_lookup")
        elif word in _SYSINFO:
            add("collect_system_info")
        elif word in _ENV:
            if word in ("env", "printenv") or (word == "set" and len(seg.split()) == 1):
                add("read_env")
        elif word in _PERSIST:
            if word != "reg" or re.search(r"(?i)\\run\b", seg):
                add("persistence")
        elif word in _HIDDEN:
            add("hidden_process")
        elif word in _LOLBINS:
            add("run_command")
        if word == "base64" and re.search(r"(?i)\s(-d|--decode|-D)\b", seg):
            add("encoding_call")
        if word in ("ping", "nslookup", "dig") and _SUBST.search(seg):
            add("dns_lookup")
        if re.search(r"\$\{?[A-Z_]*(TOKEN|SECRET|KEY|PASS|AUTH|AWS|NPM)[A-Z_]*\}?", seg):
            add("read_env")
    if _SUBST.search(text) and any(w in _SYSINFO for w in (_first_word(m) for m in re.findall(r"\$\(([^)]*)\)", text))):
        add("collect_system_info")
    # Downloaded content piped into an interpreter, or saved, made executable and run.
    for i in range(len(words) - 1):
        if words[i] in _DOWNLOADERS and words[i + 1] in _INTERPRETERS and "|" in text:
            add("download_and_execute")
        if words[i] == "base64" and words[i + 1] in _INTERPRETERS:
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
    if text.rstrip().endswith("&") and not text.rstrip().endswith("&&"):
        add("hidden_process")
    if re.search(r"(?i)\b(?:python3?|node|perl|ruby)\s+-[ce]\s", text):
        add("eval_code")
    return found


def analyse_script_file(file: PackageFile) -> FileAnalysis:
    """Line-by-line analysis of a shell, batch or PowerShell file."""
    from malseq.features.strings import classify_literal

    start = time.monotonic()
    assert file.language is not None
    events: list[BehaviourEvent] = []
    for lineno, line in enumerate(file.text().splitlines()[:20000], start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "::", "REM ", "rem ")):
            continue
        ids = analyse_command(stripped)
        for bid in classify_literal(stripped):
            if bid not in ids:
                ids.append(bid)
        col = len(line) - len(line.lstrip())
        for bid in ids:
            events.append(BehaviourEvent(bid, file.path, lineno, col, MODULE_SCOPE, clean(stripped, 120)))
    return FileAnalysis(file.path, file.language, tuple(events), (), (), (), seconds=time.monotonic() - start)
