"""The behaviour catalogue: one vocabulary for Python and JavaScript.

Cerebro's 16 features (Table 2) are kept as ids of their own or refined into finer
ones where the finer id separates malware from ordinary code (reading an SSH key is
not the same as reading a config file). Phrases are plain English words because the
language model reads them; keep them short and stable: changing a phrase changes the
model's input and needs retraining.
"""

from __future__ import annotations

from malseq.features.types import Behaviour, Dimension

_I = Dimension.INFORMATION_READING
_T = Dimension.DATA_TRANSMISSION
_E = Dimension.ENCODING
_X = Dimension.PAYLOAD_EXECUTION
_H = Dimension.INSTALL_HOOK
_O = Dimension.OBFUSCATION

BEHAVIOURS: tuple[Behaviour, ...] = (
    # --- information reading
    Behaviour("import_os_module", _I, "import operating system module",
              "Imports the OS interface (Python os/platform/getpass, Node os).",
              "import operating-system module"),
    Behaviour("os_call", _I, "call operating system function",
              "Calls into the OS module other than for environment, processes or files.",
              "use operating-system module call"),
    Behaviour("import_fs_module", _I, "import file system module",
              "Imports a file-system module (Python shutil/pathlib/glob, Node fs).",
              "import file-system module"),
    Behaviour("fs_read", _I, "read file", "Reads a file or lists a directory.", "use file-system module call"),
    Behaviour("fs_write", _I, "write file", "Writes, copies, moves or deletes a file.", "use file-system module call"),
    Behaviour("read_env", _I, "read environment variables",
              "Reads environment variables (os.environ, os.getenv, process.env).", "read sensitive information"),
    Behaviour("collect_system_info", _I, "collect system and user information",
              "Reads host name, user name, platform, network interfaces or public IP.",
              "read sensitive information"),
    Behaviour("read_sensitive_file", _I, "read credentials file",
              "Names a credential or system secret file: SSH keys, .npmrc, .pypirc, cloud credentials, "
              "/etc/passwd, /etc/shadow, shell history, .git-credentials.", "read sensitive information"),
    Behaviour("read_browser_data", _I, "read browser profile data",
              "Names browser profile stores: Login Data, Cookies, Local State, Firefox profiles.",
              "read sensitive information"),
    Behaviour("read_crypto_wallet", _I, "read cryptocurrency wallet",
              "Names cryptocurrency wallet files or extension ids (Exodus, Electrum, MetaMask, wallet.dat).",
              "read sensitive information"),
    Behaviour("read_app_tokens", _I, "read chat application tokens",
              "Names Discord/Telegram/Slack local token storage (Local Storage/leveldb, tdata).",
              "read sensitive information"),
    Behaviour("read_cloud_metadata", _I, "read cloud instance metadata",
              "Names a cloud instance metadata endpoint (169.254.169.254, metadata.google.internal): "
              "credentials of the machine's cloud role.", "read sensitive information"),
    Behaviour("capture_screen_or_clipboard", _I, "capture screen or clipboard",
              "Takes screenshots, reads the clipboard or logs keys.", None),
    # --- data transmission
    Behaviour("import_network_module", _T, "import network module",
              "Imports a network module (requests, urllib, socket, http, https, net, axios...).",
              "import network module"),
    Behaviour("network_request", _T, "send network request",
              "Makes an HTTP request or opens a URL.", "use network module call"),
    Behaviour("upload_data", _T, "upload data to server",
              "Sends data out: HTTP POST/PUT with a body, socket send, form upload.", "use network module call"),
    Behaviour("raw_socket", _T, "open network socket", "Opens a raw TCP/UDP socket.", "use network module call"),
    Behaviour("dns_lookup", _T, "perform dns lookup",
              "Resolves names (dns.lookup/resolve, gethostbyname, nslookup, dig): a DNS exfiltration channel.",
              "use network module call"),
    Behaviour("use_url", _T, "use url",
              "Contains an http(s)/ftp URL, or names one as Node http(s).request/get options ({hostname, path}).",
              "use URL"),
    Behaviour("use_ip_address", _T, "use raw ip address", "Contains a literal public IPv4 address.", "use URL"),
    Behaviour("chat_webhook", _T, "send to chat webhook",
              "Names a Discord/Slack webhook or the Telegram bot API.", "use URL"),
    Behaviour("exfiltration_service", _T, "use data collection service",
              "Names a request-capture or tunnelling service (pipedream, interactsh, burpcollaborator, "
              "webhook.site, ngrok, requestbin, oast).", "use URL"),
    Behaviour("beacon_host_name", _T, "look up host name built from system data",
              "Resolves or connects to a host name built from the host, user, environment or package name "
              "(a dependency-confusion beacon over DNS).", "use network module call"),
    # --- encoding
    Behaviour("import_encoding_module", _E, "import encoding module",
              "Imports base64, codecs, binascii, zlib, marshal, crypto modules.", "import encoding module"),
    Behaviour("encoding_call", _E, "encode or decode data",
              "Calls an encoder/decoder: base64, hex, zlib, marshal, Buffer.from(..., 'base64'), atob/btoa.",
              "use encoding module call"),
    Behaviour("encryption_call", _E, "encrypt or decrypt data", "Uses a cipher (AES, Fernet, createCipheriv).",
              "use encoding module call"),
    Behaviour("base64_string", _E, "use base64 string", "Contains a long base64 literal.", "use base64 string"),
    Behaviour("long_string", _E, "use long string", "Contains a very long string literal.", "use long string"),
    # --- payload execution
    Behaviour("import_process_module", _X, "import process module",
              "Imports subprocess, pty, child_process or similar.", "import process module"),
    Behaviour("run_command", _X, "run external command",
              "Starts a process: subprocess, os.system, os.popen, child_process.exec/spawn.",
              "use process module call"),
    Behaviour("shell_command", _X, "use shell command",
              "Contains a shell command string (curl, wget, chmod, powershell, bash -c).", "use bash script"),
    Behaviour("download_and_execute", _X, "download and run payload",
              "Downloads a file and runs it: curl|sh, wget && chmod +x, Invoke-WebRequest then Start-Process.",
              "use bash script"),
    Behaviour("eval_code", _X, "evaluate code at run time",
              "eval, exec, compile, new Function, vm.runIn*.", "evaluate code at run-time"),
    Behaviour("dynamic_import", _X, "import module by computed name",
              "__import__/importlib/require of a name computed at run time.", "evaluate code at run-time"),
    Behaviour("hidden_process", _X, "launch hidden process",
              "Starts a detached, windowless or background process (detached+unref, CREATE_NO_WINDOW, nohup, "
              "pythonw, start /b).", "use process module call"),
    Behaviour("write_executable", _X, "write executable file",
              "Makes a file executable or writes .exe/.dll/.bat/.vbs/.ps1/.sh content.", "use process module call"),
    Behaviour("persistence", _X, "install persistence",
              "Adds autostart: crontab, Startup folder, Run registry keys, shell rc files, LaunchAgents, systemd.",
              None),
    Behaviour("reverse_shell", _X, "spawn reverse shell",
              "Connects a shell to a socket: /dev/tcp, nc -e, socket + dup2 + shell.", None),
    Behaviour("load_native_code", _X, "load native code", "ctypes, cffi, process.dlopen, ffi-napi.", None),
    Behaviour("run_inline_interpreter", _X, "run interpreter with inline code",
              "Starts its own interpreter on code given inline: sys.executable/python -c, process.execPath/node -e; "
              "a literal code string is analysed too.", None),
    Behaviour("run_code_from_data_file", _X, "run code read from data file",
              "Evaluates code read from a non-source file (.txt, .dat, .png...), decoded or not.", None),
    Behaviour("open_browser", _X, "open web browser",
              "Opens a URL in the user's browser: webbrowser, the open/opn packages, xdg-open/start/open commands.",
              None),
    # --- install hooks
    Behaviour("npm_install_script", _H, "run script at install",
              "package.json declares a preinstall/install/postinstall script.", None),
    Behaviour("setup_command_override", _H, "override setup install command",
              "setup.py replaces a setuptools command (install, develop, egg_info...) through cmdclass.", None),
    Behaviour("setup_code_execution", _H, "run code in setup script",
              "setup.py does something at module level beyond calling setup().", None),
    Behaviour("pth_code_execution", _H, "run code from pth file",
              "A .pth file holds an import line, which Python runs at every interpreter start.", None),
    # --- obfuscation
    Behaviour("obfuscated_identifiers", _O, "use obfuscated identifiers",
              "Machine-generated names such as _0x1a2b or long runs of O0Il.", None),
    Behaviour("char_code_assembly", _O, "build string from character codes",
              "String.fromCharCode, chr() joins, arrays of byte values turned into text.", None),
    Behaviour("escaped_string", _O, "use escaped string", "A literal written mostly as \\x or \\u escapes.", None),
    Behaviour("string_reversal", _O, "reverse string", "A string reversed at run time ([::-1], split/reverse/join).",
              None),
    Behaviour("high_entropy_string", _O, "use random looking string", "A long literal with high Shannon entropy.",
              None),
    Behaviour("minified_code", _O, "contain minified code", "Very long lines or a single-line file.", None),
)

BY_ID: dict[str, Behaviour] = {b.id: b for b in BEHAVIOURS}
# Derived, read-only views; the `features` stage never hands dicts across its boundary.
IDS: frozenset[str] = frozenset(BY_ID)


def behaviour(behaviour_id: str) -> Behaviour:
    try:
        return BY_ID[behaviour_id]
    except KeyError:
        raise KeyError(f"unknown behaviour id {behaviour_id!r}") from None


def dimension_of(behaviour_id: str) -> Dimension:
    return behaviour(behaviour_id).dimension


def render_markdown_table() -> str:
    """The catalogue as a Markdown table (docs/behaviours.md is generated from this)."""
    lines = [
        "| id | dimension | phrase | Cerebro feature | what it matches |",
        "|---|---|---|---|---|",
    ]
    for b in BEHAVIOURS:
        lines.append(
            f"| `{b.id}` | {b.dimension.value} | {b.phrase} | {b.cerebro or '(new)'} | {b.description} |"
        )
    return "\n".join(lines) + "\n"
