"""Information reading: environment, system and user facts, files, capture."""

from __future__ import annotations

import re
from collections.abc import Sequence

from malseq.features.gate import gated
from malseq.features.rules.context import AttributeContext, CallContext, ImportContext, StringContext
from malseq.features.rules.registry import JS, PY, attribute_rule, call_rule, import_rule, js_parts, string_rule
from malseq.features.strings import classify_capture_name

# --- environment ----------------------------------------------------------------------------
PY_ENV_CALLS = ("os.getenv", "os.putenv", "os.environ.get", "os.getenvb")
PY_ENVIRON = ("os.environ", "os.environb", "posix.environ", "nt.environ")


@call_rule("read_env", PY, order=60, names=PY_ENV_CALLS)
def python_getenv(ctx: CallContext) -> bool:
    return True


@attribute_rule("read_env", PY, names=PY_ENVIRON)
def python_environ(ctx: AttributeContext) -> bool:
    """os.environ[...], os.environ.copy(), `from os import environ` then environ[...]."""
    return True


@call_rule("read_env", JS, order=260, names=("process.env.hasOwnProperty",))
def javascript_env_has(ctx: CallContext) -> bool:
    return True


@attribute_rule("read_env", JS, names=("process.env",))
def javascript_process_env(ctx: AttributeContext) -> bool:
    """process.env.X, process['env'], `const {env} = process`."""
    return True


# --- system and user information ------------------------------------------------------------
PY_SYSINFO = frozenset({
    "os.getlogin", "getpass.getuser", "platform.node", "platform.system", "platform.uname", "platform.platform",
    "platform.version", "platform.release", "platform.machine", "platform.processor", "socket.gethostname",
    "socket.getfqdn", "os.uname", "uuid.getnode", "win32api.GetUserName", "win32api.GetComputerName",
    "psutil.users", "getmac.get_mac_address", "wmi.WMI",
})
JS_OS_SYSINFO = frozenset({"hostname", "userInfo", "networkInterfaces"})


@call_rule("collect_system_info", PY, order=70, names=PY_SYSINFO)
def python_sysinfo(ctx: CallContext) -> bool:
    return True


@call_rule("collect_system_info", JS, order=50, names=("os",), modules=("os",))
def javascript_sysinfo(ctx: CallContext) -> bool:
    module, attr = js_parts(ctx.name)
    return module == "os" and attr in JS_OS_SYSINFO


# --- generic OS calls -----------------------------------------------------------------------
_PY_OS_ORDINARY = frozenset({"path", "fspath", "environ", "fsencode", "fsdecode", "makedirs", "mkdir", "getcwd",
                             "stat", "lstat", "close", "fdopen", "urandom", "getpid"})


@call_rule("os_call", PY, order=999, modules=("os",), alone=True)
def python_os_call(ctx: CallContext) -> bool:
    """Any other os function, when nothing more specific fired at the call."""
    return ctx.module == "os" and ctx.func not in _PY_OS_ORDINARY


@call_rule("os_call", JS, order=51, names=("os",), modules=("os",))
def javascript_os_call(ctx: CallContext) -> bool:
    module, attr = js_parts(ctx.name)
    return module == "os" and attr not in JS_OS_SYSINFO


# --- files ----------------------------------------------------------------------------------
PY_OPENERS = frozenset({"open", "io.open", "codecs.open", "file"})
PY_FS_READ = frozenset({"os.listdir", "os.walk", "os.scandir", "glob.glob", "glob.iglob"})
PY_FS_WRITE = frozenset({
    "shutil.copy", "shutil.copy2", "shutil.copyfile", "shutil.copytree", "shutil.move", "shutil.rmtree",
    "os.remove", "os.unlink", "os.rename", "os.replace", "os.rmdir", "os.removedirs",
})
EXECUTABLE_EXTENSIONS = (".exe", ".dll", ".bat", ".cmd", ".vbs", ".ps1", ".sh", ".scr", ".msi", ".com", ".jar")


@call_rule("fs_read", PY, order=80, names=PY_OPENERS)
def python_open(ctx: CallContext) -> Sequence[str]:
    """open(path, mode): a read, or a write (of an executable file when the path says so)."""
    if ctx.arg_count >= 2:
        mode: str | None = ctx.facts.arg_text(1)
    elif ctx.facts.keyword_source("mode") is not None:
        mode = ctx.facts.keyword_text("mode")
    else:
        mode = "r"
    if mode is None or not any(c in mode for c in "wax+"):
        return ("fs_read",)
    path = ctx.facts.arg_text(0) if ctx.arg_count else None
    if path is not None and path.lower().rstrip().endswith(EXECUTABLE_EXTENSIONS):
        return ("fs_write", "write_executable")
    return ("fs_write",)


@call_rule("fs_read", PY, order=81, names=PY_FS_READ, funcs=("read_text", "read_bytes"))
def python_fs_read(ctx: CallContext) -> bool:
    return ctx.name not in PY_OPENERS and (ctx.name in PY_FS_READ or ctx.func in ("read_text", "read_bytes"))


@call_rule("fs_write", PY, order=82, names=PY_FS_WRITE, funcs=("write_text", "write_bytes"))
def python_fs_write(ctx: CallContext) -> Sequence[str]:
    if ctx.name in PY_OPENERS or ctx.name in PY_FS_READ or ctx.func in ("read_text", "read_bytes"):
        return ()
    if ctx.func in ("write_text", "write_bytes"):
        # Path(...'x.exe').write_bytes(...): the receiver text names an executable file.
        receiver = ctx.facts.receiver_source(300).lower()
        if any(ext + "'" in receiver or ext + '"' in receiver for ext in EXECUTABLE_EXTENSIONS):
            return ("fs_write", "write_executable")
        return ("fs_write",)
    return ("fs_write",) if ctx.name in PY_FS_WRITE else ()


JS_FS_READ = frozenset({"readFile", "readFileSync", "readdir", "readdirSync", "createReadStream", "readJson",
                        "readJsonSync", "readJSON", "readJSONSync", "opendir", "opendirSync", "readlink",
                        "readlinkSync", "copyFile", "copyFileSync", "cp", "cpSync", "copy", "copySync"})
JS_FS_WRITE = frozenset({"writeFile", "writeFileSync", "appendFile", "appendFileSync", "createWriteStream",
                         "copyFile", "copyFileSync", "rename", "renameSync", "unlink", "unlinkSync", "rm", "rmSync",
                         "rmdir", "rmdirSync", "outputFile", "outputFileSync", "writeJson", "writeJsonSync",
                         "writeJSON", "writeJSONSync", "move", "moveSync", "remove", "removeSync", "cp", "cpSync",
                         "copy", "copySync", "symlink", "symlinkSync", "truncate", "truncateSync"})
JS_FS_ROOTS = ("fs", "graceful-fs")
JS_FS_PREFIXES = ("fs-extra",)


def javascript_fs_member(name: str) -> str | None:
    """The member called on a file-system module (fs, fs/promises, fs-extra, graceful-fs), else None."""
    module, attr = js_parts(name)
    if module == "fs" or module.startswith("fs-extra") or module == "graceful-fs" or module == "fs.promises":
        return attr
    return None


@call_rule("fs_read", JS, order=40, roots=JS_FS_ROOTS, prefixes=JS_FS_PREFIXES)
def javascript_fs_read(ctx: CallContext) -> bool:
    return javascript_fs_member(ctx.name) in JS_FS_READ


@call_rule("fs_write", JS, order=41, roots=JS_FS_ROOTS, prefixes=JS_FS_PREFIXES)
def javascript_fs_write(ctx: CallContext) -> bool:
    return javascript_fs_member(ctx.name) in JS_FS_WRITE


# --- names of secrets -----------------------------------------------------------------------
@call_rule("read_browser_data", PY, order=190, funcs=("CryptUnprotectData",))
def python_dpapi(ctx: CallContext) -> Sequence[str]:
    """win32crypt.CryptUnprotectData: how stealers decrypt Chrome's saved passwords and cookies."""
    return ("encryption_call", "read_browser_data")


# --- screen, clipboard, keys ----------------------------------------------------------------
JS_CAPTURE_MODULES = frozenset({"screenshot-desktop", "clipboardy", "node-screenshots", "iohook", "robotjs",
                                "node-global-key-listener", "copy-paste", "uiohook-napi", "node-clipboard"})


@call_rule("capture_screen_or_clipboard", PY, order=210, every=True, by_name=True)
def python_capture(ctx: CallContext) -> bool:
    """ImageGrab.grab, pyautogui.screenshot, pyperclip.paste, pynput listeners..."""
    return not ctx.name.startswith("?.") and classify_capture_name(ctx.name)


@call_rule("capture_screen_or_clipboard", JS, order=240, roots=JS_CAPTURE_MODULES)
def javascript_capture(ctx: CallContext) -> bool:
    module, _ = js_parts(ctx.name)
    return module.split(".", 1)[0] in JS_CAPTURE_MODULES or ctx.name in JS_CAPTURE_MODULES




# --- imports --------------------------------------------------------------------------------
@import_rule("import_os_module", PY, order=10, roots=("os", "platform", "getpass", "nt", "posix", "pwd"))
def python_os_module(ctx: ImportContext) -> bool:
    return True


@import_rule("import_os_module", JS, order=10, roots=("os",))
def javascript_os_module(ctx: ImportContext) -> bool:
    return True


@import_rule("import_fs_module", PY, order=10, roots=("shutil", "pathlib", "glob"))
def python_fs_module(ctx: ImportContext) -> bool:
    return True


@import_rule("import_fs_module", JS, order=10, roots=("fs", "fs-extra", "graceful-fs"))
def javascript_fs_module(ctx: ImportContext) -> bool:
    return True


@import_rule("capture_screen_or_clipboard", PY, order=20, every=True)
def python_capture_module(ctx: ImportContext) -> bool:
    """PIL.ImageGrab, pyautogui, pynput, pyperclip..."""
    return classify_capture_name(ctx.module)


@import_rule("capture_screen_or_clipboard", JS, order=20, roots=JS_CAPTURE_MODULES)
def javascript_capture_module(ctx: ImportContext) -> bool:
    return True


# --- what literals name -----------------------------------------------------------------
_PUBLIC_IP_SERVICE = gated(re.compile(
    r"(?i)(ipify\.org|ipinfo\.io|ifconfig\.me|icanhazip\.com|checkip\.amazonaws|ip-api\.com|"
    r"myexternalip|wtfismyip|ipapi\.co|geolocation-db\.com)"
))
_SENSITIVE_FILE = gated(re.compile(
    r"(?i)(\.ssh(?:/|\\\\?|$)|\bid_(?:rsa|dsa|ecdsa|ed25519)\b|authorized_keys|\.aws[/\\]+credentials|"
    r"(?:^|[/\\~])\.npmrc\b|\.pypirc\b|\.git-credentials|(?:^|[/\\~])\.netrc\b|\.bash_history|\.zsh_history|"
    r"/etc/passwd\b|/etc/shadow\b|\.docker[/\\]config\.json|\.kube[/\\]config|\.gnupg|"
    r"gcloud[/\\](?:credentials|application_default)|\.config[/\\]gh[/\\]hosts|\.azure[/\\]|"
    r"login\.keychain|\.vault-token|\.terraform\.d[/\\]credentials)"
))
_BROWSER = gated(re.compile(
    # "Cookies" only as the browser's file name (case-sensitive, alone or as a path part):
    # HTTP libraries say "cookies" everywhere.
    r"(?i)(Login Data|Local State|Web Data|(?-i:(?:^|[/\\])Cookies(?:$|[/\\]))|User Data[/\\]|"
    r"Google[/\\]+Chrome|BraveSoftware|Mozilla[/\\]+Firefox|"
    r"Opera Software|Microsoft[/\\]+Edge|logins\.json|key4\.db|cookies\.sqlite|Yandex[/\\]+YandexBrowser|Vivaldi[/\\]|"
    r"Chromium[/\\]+User Data|CryptUnprotectData)"
))
_WALLET = gated(re.compile(
    r"(?i)(\bExodus\b|\bElectrum\b|wallet\.dat|Atomic[/\\]+Local Storage|\bArmory\b|\bCoinomi\b|\bGuarda\b|\bJaxx\b|"
    r"MetaMask|nkbihfbeogaeaoehlefnkodbefgpgknn|ejbalbakoplchlghecdalmeeeajnimhm|bfnaelmomeimhlpmgjnjophhpkkoljpa|"
    r"ibnejdfjmmkpcnlpebklmnkoeoihofec|fhbohimaelbohpjbbldcngcnapndodjp|hnfanknocfeofbddgcijnmhnfnkdnaad|"
    r"solana[/\\]+id\.json|Ethereum[/\\]+keystore|\.bitcoin[/\\]|\bMonero\b[/\\]|Zcash[/\\]|Bytecoin|"
    r"seed phrase|mnemonic phrase|\bkeystore[/\\])"
))
_APP_TOKENS = gated(re.compile(
    r"(?i)(discord(?:canary|ptb)?[/\\]+Local Storage|Local Storage[/\\]+leveldb|Telegram Desktop[/\\]+tdata|"
    r"[/\\]tdata\b|\.ROBLOSECURITY|launcher_accounts\.json|Steam[/\\]+config[/\\]+loginusers|\bssfn\b|"
    r"mfa\.[\w-]{84})"
))
# A Discord token: no literal to gate on, but 59 characters at least and two dots.
_DISCORD_TOKEN = re.compile(r"[\w-]{24}\.[\w-]{6}\.[\w-]{27}")
_DISCORD_TOKEN_LENGTH = 24 + 1 + 6 + 1 + 27


@string_rule("collect_system_info", order=50)
def public_ip_service_literal(ctx: StringContext) -> bool:
    """ipify, ipinfo, ifconfig.me...: asking the world for this machine's public address."""
    return _PUBLIC_IP_SERVICE.search(ctx.sample) is not None


@string_rule("read_sensitive_file", order=60)
def sensitive_file_literal(ctx: StringContext) -> bool:
    return _SENSITIVE_FILE.search(ctx.sample) is not None


@string_rule("read_browser_data", order=70)
def browser_data_literal(ctx: StringContext) -> bool:
    return _BROWSER.search(ctx.sample) is not None


@string_rule("read_crypto_wallet", order=80)
def crypto_wallet_literal(ctx: StringContext) -> bool:
    return _WALLET.search(ctx.sample) is not None


@string_rule("read_app_tokens", order=90)
def app_token_literal(ctx: StringContext) -> bool:
    sample = ctx.sample
    return _APP_TOKENS.search(sample) is not None or (
        len(sample) >= _DISCORD_TOKEN_LENGTH and "." in sample and _DISCORD_TOKEN.search(sample) is not None)


# Instance metadata services hand out the credentials of the machine's cloud role; a package
# that names one reaches for them (cloud SDKs that legitimately do are few and named alike).
_CLOUD_METADATA = gated(re.compile(
    r"(?i)(169\.254\.169\.254|metadata\.google\.internal|100\.100\.100\.200|\[?fd00:ec2::254\]?|"
    r"/computeMetadata/v1|/latest/meta-data/iam|/metadata/identity/oauth2/token)"
))


@string_rule("read_cloud_metadata", order=270, min_length=12)
def cloud_metadata_literal(ctx: StringContext) -> bool:
    return _CLOUD_METADATA.search(ctx.sample) is not None
