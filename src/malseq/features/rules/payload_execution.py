"""Payload execution: starting processes, evaluating code, loading native code."""

from __future__ import annotations

import re
from collections.abc import Sequence

from malseq.features.commands import analyse_command, looks_like_command
from malseq.features.gate import gated
from malseq.features.rules.context import ArgKind, CallContext, ImportContext, StringContext
from malseq.features.rules.registry import JS, PY, call_rule, import_rule, js_parts, string_rule
from malseq.features.strings import classify_literal

# What malseq.features.commands can find in a command line.
COMMAND_BEHAVIOURS = ("collect_system_info", "dns_lookup", "download_and_execute", "encoding_call", "eval_code",
                      "hidden_process", "network_request", "persistence", "read_env", "reverse_shell", "run_command",
                      "shell_command", "upload_data", "write_executable")

# --- Python -------------------------------------------------------------------------------
PY_SUBPROCESS_RUNNERS = frozenset({"Popen", "call", "run", "check_call", "check_output", "getoutput",
                                   "getstatusoutput"})
PY_RUN_EXACT = frozenset({
    "os.system", "os.popen", "os.popen2", "os.popen3", "os.popen4", "os.startfile", "pty.spawn",
    "commands.getoutput", "commands.getstatusoutput", "platform.popen", "asyncio.create_subprocess_shell",
    "asyncio.create_subprocess_exec", "popen2.popen2", "popen2.popen3", "popen2.popen4",
    "win32api.ShellExecute", "win32process.CreateProcess", "sh.Command",
})
PY_EVAL_EXACT = frozenset({
    "eval", "exec", "compile", "execfile", "runpy.run_path", "runpy.run_module", "imp.load_source", "code.interact",
    # PyArmor-protected code: the runtime decrypts and runs the bytes literal.
    "__pyarmor__", "pyarmor_runtime", "pytransform.pyarmor_runtime", "__pyarmor_enter__",
})
PY_IMPORTERS = frozenset({"__import__", "importlib.import_module", "importlib.__import__"})
_PY_HIDDEN_FLAGS = re.compile(r"CREATE_NO_WINDOW|DETACHED_PROCESS|0x0?8000000|134217728|0x0+8\b|SW_HIDE|"
                              r"STARTF_USESHOWWINDOW")
_PYTHONW = re.compile(r"(?i)\bpythonw(?:\.exe)?\b")
_PY_NATIVE_PARTS = ("CDLL", "WinDLL", "OleDLL", "PyDLL", "cdll", "windll", "oledll", "pydll", "LoadLibrary",
                    "LoadLibraryA", "LoadLibraryW", "LoadLibraryExW", "dlopen")


def python_runs_process(ctx: CallContext) -> bool:
    return ctx.name in PY_RUN_EXACT or (ctx.module == "subprocess" and ctx.func in PY_SUBPROCESS_RUNNERS) or (
        ctx.module == "os" and ctx.func.startswith(("exec", "spawn", "posix_spawn")))


@call_rule("run_command", PY, order=10, names=PY_RUN_EXACT, modules=("subprocess", "os"),
           also=COMMAND_BEHAVIOURS)
def python_process(ctx: CallContext) -> Sequence[str]:
    """A process call, plus what its (folded) command line does and names."""
    if not python_runs_process(ctx):
        return ()
    found = ["run_command"]
    command = ctx.facts.command_line()
    if command is not None:
        found.extend(b for b in analyse_command(command) if b not in found)
        if _PYTHONW.search(command):
            found.append("hidden_process")
        found.extend(b for b in classify_literal(command) if b not in found)
    return found


@call_rule("hidden_process", PY, order=20, names=PY_RUN_EXACT, modules=("subprocess", "os"))
def python_hidden_process(ctx: CallContext) -> bool:
    """creationflags=CREATE_NO_WINDOW / DETACHED_PROCESS, or a STARTUPINFO (SW_HIDE) handed over."""
    if not python_runs_process(ctx):
        return False
    for keyword in ("creationflags", "startupinfo"):
        value = ctx.facts.keyword_source(keyword, 300)
        if value is not None and (keyword == "startupinfo" or _PY_HIDDEN_FLAGS.search(value)):
            return True
    return False


@call_rule("eval_code", PY, order=30, names=PY_EVAL_EXACT)
def python_eval(ctx: CallContext) -> bool:
    return True


@call_rule("dynamic_import", PY, order=40, names=PY_IMPORTERS | {"imp.load_module"})
def python_computed_import(ctx: CallContext) -> bool:
    """__import__/importlib of a name that does not fold to a module path."""
    module = ctx.facts.arg_text(0) if ctx.arg_count else None
    return module is None or not re.fullmatch(r"[\w.]+", module)


@call_rule("dynamic_import", PY, order=50, names=("getattr",))
def python_computed_getattr(ctx: CallContext) -> bool:
    """getattr(os, <computed>): a function of os/subprocess/builtins reached by a computed name."""
    if ctx.arg_count < 2 or ctx.facts.arg_text(1) is not None:
        return False
    base = ctx.facts.arg_name(0)
    return base is not None and base.split(".", 1)[0] in ("os", "subprocess", "builtins", "<globals>")


@call_rule("load_native_code", PY, order=200, roots=("ctypes", "_ctypes", "cffi"), funcs=("dlopen",))
def python_native(ctx: CallContext) -> bool:
    # Report where a library is loaded or reached (ctypes.windll.kernel32.X(...), CDLL(...)), not
    # every later call through an alias of one of its functions.
    if ctx.root in ("ctypes", "_ctypes") and set(ctx.name.split(".")) & set(_PY_NATIVE_PARTS) and (
            ctx.func in _PY_NATIVE_PARTS or any(part in ctx.facts.call_source(120) for part in _PY_NATIVE_PARTS)):
        return True
    if ctx.name.startswith("cffi.FFI"):
        return True
    return ctx.func == "dlopen" and (ctx.facts.imported("cffi") or ctx.facts.imported("ctypes"))


# --- JavaScript ---------------------------------------------------------------------------
JS_CHILD_PROCESS_RUN = frozenset({"exec", "execSync", "spawn", "spawnSync", "execFile", "execFileSync", "fork"})
JS_SPAWN_FAMILY = frozenset({"spawn", "spawnSync", "execFile", "execFileSync"})
_JS_RUNNER_NAMES = ("execa", "cross-spawn", "execa.command", "execa.sync", "shelljs.exec")
_JS_RUNNER_MODULES = ("execa", "shelljs", "cross-spawn")
JS_VM_EVAL = frozenset({"vm.runInThisContext", "vm.runInNewContext", "vm.runInContext", "vm.Script",
                        "vm.compileFunction", "vm.SourceTextModule"})
JS_EVAL = frozenset({"eval", "Function"}) | JS_VM_EVAL
JS_NATIVE_MODULES = frozenset({"ffi-napi", "ffi", "node-ffi", "ffi-rs", "koffi", "@breush/ffi-napi"})
_PLACEHOLDER = "x"


def javascript_runs_process(ctx: CallContext) -> bool:
    module, attr = js_parts(ctx.name)
    if module == "child_process":
        return attr in JS_CHILD_PROCESS_RUN
    if module in _JS_RUNNER_MODULES or ctx.name in _JS_RUNNER_NAMES:
        return module != "shelljs" or attr == "exec"
    return False


@call_rule("run_command", JS, order=10, modules=("child_process", *_JS_RUNNER_MODULES),
           names=(*_JS_RUNNER_NAMES, *_JS_RUNNER_MODULES), also=COMMAND_BEHAVIOURS)
def javascript_process(ctx: CallContext) -> Sequence[str]:
    """child_process.exec/spawn..., execa, shelljs.exec: plus what the (loosely folded) command does."""
    if not javascript_runs_process(ctx):
        return ()
    found = ["run_command"]
    command = ctx.facts.command_line()
    if command is not None and command != _PLACEHOLDER:
        found.extend(b for b in analyse_command(command) if b not in found)
    return found


@call_rule("hidden_process", JS, order=11, modules=("child_process", *_JS_RUNNER_MODULES),
           names=(*_JS_RUNNER_NAMES, *_JS_RUNNER_MODULES))
def javascript_detached(ctx: CallContext) -> bool:
    """spawn(..., {detached: true})."""
    if not javascript_runs_process(ctx):
        return False
    return any(ctx.facts.arg_kind(i) is ArgKind.OBJECT
               and re.search(r"\bdetached\s*:\s*(?:true|!0)", ctx.facts.arg_source(i, None))
               for i in range(1, ctx.arg_count))


@call_rule("hidden_process", JS, order=320, funcs=("unref",))
def javascript_unref(ctx: CallContext) -> bool:
    """child.unref() on a spawned child: the parent exits, the child lives on."""
    if not ctx.member or js_parts(ctx.name)[1] != "unref":
        return False
    kind = ctx.facts.receiver_kind()
    if kind is ArgKind.IDENTIFIER:
        return ctx.facts.receiver_holds("child")
    if kind is ArgKind.CALL:
        callee = ctx.facts.receiver_callee()
        return callee is not None and callee.startswith("child_process.")
    return False


@call_rule("dynamic_import", JS, order=5, names=("require", "import"))
def javascript_computed_require(ctx: CallContext) -> bool:
    """require(<computed>), or require reached another way (module.require, process.mainModule.require,
    eval('require')): a way around scanners. The engine names every require-like call `require`
    (`import` for import())."""
    if not ctx.arg_count:
        return False
    if ctx.facts.required_module() is None:
        return True
    return ctx.facts.callee_source() not in ("require", "import")


@call_rule("eval_code", JS, order=20, names=JS_EVAL)
def javascript_eval(ctx: CallContext) -> bool:
    if ctx.name == "Function" and ctx.arg_count:
        # Function('return this')() is how bundles find the global object, not code loading.
        body = ctx.facts.arg_text(ctx.arg_count - 1)
        if body is not None and re.fullmatch(r"\s*return\s+this;?\s*", body):
            return False
    return True


@call_rule("eval_code", JS, order=30, names=("setTimeout", "setInterval", "setImmediate"))
def javascript_timer_string(ctx: CallContext) -> bool:
    """setTimeout('code', ...): a string handed to a timer is evaluated."""
    return ctx.arg_count > 0 and ctx.facts.arg_kind(0) in (ArgKind.STRING, ArgKind.TEMPLATE, ArgKind.CONCAT)


@call_rule("load_native_code", JS, order=210, names=("process.dlopen",))
def javascript_dlopen(ctx: CallContext) -> bool:
    return True


@call_rule("load_native_code", JS, order=250, roots=JS_NATIVE_MODULES)
def javascript_ffi(ctx: CallContext) -> bool:
    module, _ = js_parts(ctx.name)
    return module.split(".", 1)[0] in JS_NATIVE_MODULES or ctx.name in JS_NATIVE_MODULES


# --- executable files and persistence -------------------------------------------------------
_PY_EXEC_MODE_NAMES = re.compile(r"S_IEXEC|S_IXUSR|S_IXGRP|S_IXOTH|S_IRWXU|S_IRWXG|S_IRWXO")


@call_rule("write_executable", PY, order=90, names=("os.chmod",))
def python_chmod_executable(ctx: CallContext) -> bool:
    """os.chmod(path, 0o755 / stat.S_IEXEC ...): a mode with an execute bit."""
    if ctx.arg_count < 2:
        return False
    if _PY_EXEC_MODE_NAMES.search(ctx.facts.arg_source(1, 200)):
        return True
    if ctx.facts.arg_kind(1) is ArgKind.NUMBER:
        mode = ctx.facts.arg_number(1)
        return mode is not None and bool(mode & 0o111)
    return False


_JS_FS_CHMOD = frozenset({"chmod", "chmodSync", "fchmod", "fchmodSync"})
_JS_WRITERS_WITH_DEST_FIRST = frozenset({"writeFile", "writeFileSync", "appendFile", "appendFileSync",
                                         "createWriteStream", "outputFile", "outputFileSync"})
_JS_WRITERS_WITH_DEST_SECOND = frozenset({"copyFile", "copyFileSync", "rename", "renameSync", "copy", "copySync",
                                          "move", "moveSync", "cp", "cpSync"})
_JS_EXECUTABLE_NAME = re.compile(r"(?i)\.(?:exe|dll|bat|cmd|vbs|vbe|ps1|sh|scr|com|msi|jar|hta|lnk|command)\W*$")
# Writing (not reading) these files plants a way back in: SSH keys, shell start-up files, autostart.
_JS_PERSISTENT_WRITE = re.compile(r"(?i)(authorized_keys|(?:^|[/\\~])\.(?:bashrc|bash_profile|zshrc|profile)$|"
                                  r"LaunchAgents|LaunchDaemons|Start Menu[/\\]+Programs[/\\]+Startup|/etc/cron|"
                                  r"/etc/rc\.local|systemd[/\\]+(?:system|user))")


def _javascript_fs_member(name: str) -> str | None:
    from malseq.features.rules.information_reading import javascript_fs_member

    return javascript_fs_member(name)


def _javascript_destination(ctx: CallContext) -> str | None:
    """The (loosely folded) file a write/copy/move call writes to."""
    attr = _javascript_fs_member(ctx.name)
    if attr in _JS_WRITERS_WITH_DEST_FIRST and ctx.arg_count:
        return ctx.facts.arg_loose(0)
    if attr in _JS_WRITERS_WITH_DEST_SECOND and ctx.arg_count >= 2:
        return ctx.facts.arg_loose(1)
    return None


@call_rule("write_executable", JS, order=42, roots=("fs", "graceful-fs"), prefixes=("fs-extra",))
def javascript_chmod_executable(ctx: CallContext) -> bool:
    if _javascript_fs_member(ctx.name) not in _JS_FS_CHMOD or ctx.arg_count < 2:
        return False
    value = ctx.facts.arg_number(1)
    if value is None:
        text = ctx.facts.arg_text(1)
        if text is not None and re.fullmatch(r"[0-7]{3,4}", text):
            value = int(text, 8)
        elif text is not None and "x" in text:
            value = 0o100
    return value is not None and bool(value & 0o111)


@call_rule("write_executable", JS, order=43, roots=("fs", "graceful-fs"), prefixes=("fs-extra",))
def javascript_write_executable(ctx: CallContext) -> bool:
    name = _javascript_destination(ctx)
    return name is not None and _JS_EXECUTABLE_NAME.search(name) is not None


@call_rule("persistence", JS, order=44, roots=("fs", "graceful-fs"), prefixes=("fs-extra",))
def javascript_persistent_write(ctx: CallContext) -> bool:
    name = _javascript_destination(ctx)
    return name is not None and _JS_PERSISTENT_WRITE.search(name) is not None


# --- imports --------------------------------------------------------------------------------
@import_rule("import_process_module", PY, order=10, roots=("subprocess", "pty", "commands", "popen2"))
def python_process_module(ctx: ImportContext) -> bool:
    return True


@import_rule("import_process_module", JS, order=10, roots=("child_process", "execa", "cross-spawn", "shelljs",
                                                           "node-pty"))
def javascript_process_module(ctx: ImportContext) -> bool:
    return True


@import_rule("load_native_code", JS, order=30, roots=JS_NATIVE_MODULES)
def javascript_ffi_module(ctx: ImportContext) -> bool:
    """ffi-napi, koffi...: calling native libraries from JavaScript."""
    return True


# --- what literals name -----------------------------------------------------------------
_PERSISTENCE = gated(re.compile(
    r"(?i)(\bcrontab\b|/etc/cron|Start Menu[/\\]+Programs[/\\]+Startup|CurrentVersion[/\\]+Run(?:Once)?\b|"
    r"(?:^|[/\\~])\.bashrc\b|\.bash_profile\b|(?:^|[/\\~])\.zshrc\b|(?:^|[/\\~])\.profile\b|LaunchAgents|"
    r"LaunchDaemons|systemd[/\\]+system|\bschtasks\b|/etc/rc\.local|\\\\Winlogon\b|autostart[/\\])"
))


@string_rule("persistence", order=100)
def autostart_literal(ctx: StringContext) -> bool:
    """crontab, Startup folder, Run keys, shell rc files, LaunchAgents, systemd units."""
    return _PERSISTENCE.search(ctx.sample) is not None


@string_rule("shell_command", order=140, also=COMMAND_BEHAVIOURS)
def command_literal(ctx: StringContext) -> Sequence[str]:
    """A literal that reads as a shell command: what the command does (malseq.features.commands)."""
    return analyse_command(ctx.sample) if looks_like_command(ctx.sample) else ()


# --- the interpreter started again on inline code -----------------------------------------
# `[sys.executable, "-c", code]` runs code that never sits in a file of the package; the engines
# analyse a literal code string in place (features/python.py, features/javascript.py).
_PY_INTERPRETER = re.compile(r"""(?i)^(?:\S*[/\\])?(?:python[\d.]*w?|py)(?:\.exe)?$""")
_PY_INLINE_COMMAND = re.compile(r"""(?i)(?:^|[\s/\\"'])(?:python[\d.]*w?|py)(?:\.exe)?["']?\s+-c\s""")
_JS_INTERPRETER = re.compile(r"""(?i)^(?:\S*[/\\])?node(?:js)?(?:\.exe)?$""")
_JS_INLINE_COMMAND = re.compile(r"""(?i)(?:^|[\s/\\"'])node(?:js)?(?:\.exe)?["']?\s+(?:-e|--eval|-p|--print)\s""")
JS_INLINE_FLAGS = ("-e", "--eval", "-p", "--print")


def python_inline_code_index(ctx: CallContext) -> int | None:
    """Index of the code string in `[sys.executable | "python", "-c", code, ...]`, else None."""
    items = ctx.facts.arg_items(0)
    if not items or len(items) < 3 or items[1] != "-c":
        return None
    program = items[0]
    if program is None:
        if not re.match(r"[\[(]\s*(?:sys\.)?(?:executable|_base_executable)\b", ctx.facts.arg_source(0, 60)):
            return None
    elif not _PY_INTERPRETER.match(program):
        return None
    return 2


@call_rule("run_inline_interpreter", PY, order=12, names=PY_RUN_EXACT, modules=("subprocess", "os"))
def python_inline_interpreter(ctx: CallContext) -> bool:
    """subprocess.Popen([sys.executable, "-c", code]) or os.system('python -c "..."')."""
    if not python_runs_process(ctx):
        return False
    if ctx.facts.arg_kind(0) is ArgKind.ARRAY:
        return python_inline_code_index(ctx) is not None
    command = ctx.facts.command_line()
    return command is not None and _PY_INLINE_COMMAND.search(command) is not None


def javascript_inline_code_index(ctx: CallContext) -> int | None:
    """Index, in spawn's argument array, of the code after -e/--eval/-p of node or process.execPath."""
    module, attr = js_parts(ctx.name)
    if module != "child_process" or attr not in JS_SPAWN_FAMILY or ctx.arg_count < 2:
        return None
    program = ctx.facts.arg_text(0)
    if program is None:
        if ctx.facts.arg_source(0, 60).strip() not in ("process.execPath", "process.argv[0]", "process.argv0"):
            return None
    elif not _JS_INTERPRETER.match(program):
        return None
    items = ctx.facts.arg_items(1) or ()
    for i, item in enumerate(items[:-1]):
        if item in JS_INLINE_FLAGS:
            return i + 1
    return None


@call_rule("run_inline_interpreter", JS, order=12, modules=("child_process",))
def javascript_inline_interpreter(ctx: CallContext) -> bool:
    """spawn(process.execPath, ['-e', code]) or exec('node -e "..."')."""
    if not javascript_runs_process(ctx):
        return False
    if javascript_inline_code_index(ctx) is not None:
        return True
    command = ctx.facts.command_line()
    return command is not None and _JS_INLINE_COMMAND.search(command) is not None


# --- code kept in a data file ---------------------------------------------------------------
# Payloads hide in files no scanner reads as code (a .txt, a .dat, bytes appended to a .png) and
# are read back, often decoded, and evaluated. Only the argument's own source is looked at:
# eval(open("x.txt").read()), exec(zlib.decompress(pkgutil.get_data(__name__, "logo.png"))).
_DATA_FILE_NAME = re.compile(r"""(?i)\.(?:txt|dat|bin|png|jpe?g|gif|ico|bmp|wav|mp3|log|db|pkl|enc|dll|tmp|"""
                             r"""cfg|ini|xml|csv|md|rst|lock|data)["'`]""")
_PY_READS_FILE = re.compile(r"\b(?:open|read|read_text|read_bytes|get_data|files|load|readlines)\s*\(")
_JS_READS_FILE = re.compile(r"\b(?:readFileSync|readFile|createReadStream)\s*\(")


@call_rule("run_code_from_data_file", PY, order=31, names=PY_EVAL_EXACT)
def python_code_from_data_file(ctx: CallContext) -> bool:
    source = ctx.facts.arg_source(0, 400) if ctx.arg_count else ""
    return _PY_READS_FILE.search(source) is not None and _DATA_FILE_NAME.search(source) is not None


@call_rule("run_code_from_data_file", JS, order=21, names=JS_EVAL)
def javascript_code_from_data_file(ctx: CallContext) -> bool:
    source = ctx.facts.arg_source(ctx.arg_count - 1 if ctx.name == "Function" else 0, 400) if ctx.arg_count else ""
    return _JS_READS_FILE.search(source) is not None and _DATA_FILE_NAME.search(source) is not None


# --- a browser sent to a URL ----------------------------------------------------------------
_PY_BROWSER = frozenset({"webbrowser.open", "webbrowser.open_new", "webbrowser.open_new_tab",
                         "webbrowser.get().open", "webbrowser.get().open_new", "webbrowser.get().open_new_tab"})
_JS_BROWSER = frozenset({"open", "opn", "open.default", "better-opn", "open-url"})
_BROWSER_COMMAND = re.compile(
    r"""(?i)^\s*(?:xdg-open|sensible-browser|x-www-browser|open|start(?:\s+"")?|cmd(?:\.exe)?\s+/c\s+start(?:\s+"")?|"""
    r"""explorer(?:\.exe)?|rundll32(?:\.exe)?\s+url\.dll,FileProtocolHandler)\s+["']?https?://""")


@call_rule("open_browser", PY, order=13, names=_PY_BROWSER | PY_RUN_EXACT, modules=("subprocess", "os"))
def python_open_browser(ctx: CallContext) -> bool:
    if ctx.name in _PY_BROWSER:
        return True
    if not python_runs_process(ctx):
        return False
    command = ctx.facts.command_line()
    return command is not None and _BROWSER_COMMAND.match(command) is not None


@call_rule("open_browser", JS, order=13, names=_JS_BROWSER, modules=("child_process",))
def javascript_open_browser(ctx: CallContext) -> bool:
    if ctx.name in _JS_BROWSER:
        return ctx.arg_count > 0
    if not javascript_runs_process(ctx):
        return False
    command = ctx.facts.command_line()
    return command is not None and _BROWSER_COMMAND.match(command) is not None
