"""Data transmission: HTTP requests, uploads, sockets, DNS, chat clients."""

from __future__ import annotations

import re
from collections.abc import Sequence

from malseq.features.gate import gated
from malseq.features.rules.context import ArgKind, CallContext, ImportContext, StringContext
from malseq.features.rules.registry import JS, PY, call_rule, import_rule, js_parts, string_rule

# --- Python -------------------------------------------------------------------------------
PY_NETWORK_EXACT = frozenset({
    "urllib.request.urlopen", "urllib.request.urlretrieve", "urllib2.urlopen", "urllib.urlopen",
    "urllib.urlretrieve", "http.client.HTTPConnection", "http.client.HTTPSConnection", "httplib.HTTPConnection",
    "httplib.HTTPSConnection", "urllib3.PoolManager", "urllib3.request", "ftplib.FTP", "ftplib.FTP_TLS",
    "smtplib.SMTP", "smtplib.SMTP_SSL", "telnetlib.Telnet", "paramiko.SSHClient", "wget.download",
    "pycurl.Curl", "websocket.create_connection", "websockets.connect", "aiohttp.request",
    "xmlrpc.client.ServerProxy", "xmlrpclib.ServerProxy",
})
PY_HTTP_CLIENT_ROOTS = ("requests", "httpx")
PY_HTTP_VERBS = frozenset({"get", "post", "put", "patch", "delete", "head", "options", "request", "stream"})
_PY_UPLOAD_VERBS = frozenset({"post", "put", "patch"})
PY_RAW_SOCKET = frozenset({"socket.socket", "socket.create_connection", "socket.fromfd", "socket.socketpair"})
PY_DNS = frozenset({"socket.gethostbyname", "socket.gethostbyname_ex", "socket.getaddrinfo", "socket.gethostbyaddr",
                    "dns.resolver.resolve", "dns.resolver.query", "dns.resolver.Resolver"})


def _python_has_body(ctx: CallContext, min_positional: int) -> bool:
    if any(ctx.facts.keyword_source(k) is not None for k in ("data", "json", "files", "body")):
        return True
    return ctx.arg_count >= min_positional


@call_rule("network_request", PY, order=100, names=PY_NETWORK_EXACT)
def python_network(ctx: CallContext) -> Sequence[str]:
    # urlretrieve(url, filename, reporthook, data): its body is the 4th argument.
    if _python_has_body(ctx, 4 if ctx.name.endswith("urlretrieve") else 2):
        return ("network_request", "upload_data")
    return ("network_request",)


def _python_http_verb(ctx: CallContext) -> str | None:
    """The verb of requests.post / httpx.get / requests.Session().put ..., else None."""
    verb = ctx.func.lower()
    if verb in PY_HTTP_VERBS and (ctx.module in PY_HTTP_CLIENT_ROOTS or ctx.module.endswith("()")
                                  or ctx.module in ("requests.api", "requests.sessions")):
        return verb
    return None


@call_rule("network_request", PY, order=110, roots=PY_HTTP_CLIENT_ROOTS)
def python_http_client(ctx: CallContext) -> bool:
    return _python_http_verb(ctx) is not None


@call_rule("upload_data", PY, order=111, roots=PY_HTTP_CLIENT_ROOTS)
def python_http_upload(ctx: CallContext) -> bool:
    verb = _python_http_verb(ctx)
    if verb is None:
        return False
    if verb in _PY_UPLOAD_VERBS and _python_has_body(ctx, 2):
        return True
    method = ctx.facts.arg_text(0) if ctx.arg_count and verb == "request" else None
    return method is not None and method.upper() in ("POST", "PUT", "PATCH")


@call_rule("upload_data", PY, order=120, names=("urllib.request.Request", "urllib2.Request"))
def python_request_with_body(ctx: CallContext) -> bool:
    return _python_has_body(ctx, 2)


@call_rule("raw_socket", PY, order=130, names=PY_RAW_SOCKET)
def python_socket(ctx: CallContext) -> bool:
    return True


@call_rule("dns_lookup", PY, order=140, names=PY_DNS)
def python_dns(ctx: CallContext) -> bool:
    return True


@call_rule("upload_data", PY, order=150, funcs=("sendall", "sendto", "send"))
def python_socket_send(ctx: CallContext) -> bool:
    if ctx.func in ("sendall", "sendto") and ctx.facts.imported("socket"):
        return True
    return ctx.name.startswith("socket.socket().") and ctx.func in ("send", "sendall", "sendto")


@call_rule("upload_data", PY, order=160, funcs=("sendmail", "send_message", "storbinary", "storlines"))
def python_mail_or_ftp_upload(ctx: CallContext) -> bool:
    return ctx.module.startswith(("smtplib", "ftplib")) or ctx.facts.imported("smtplib") or ctx.facts.imported(
        "ftplib")


# --- JavaScript ---------------------------------------------------------------------------
_JS_HTTP_REQUESTS = frozenset({"request", "get"})
JS_RAW_SOCKET = frozenset({"net.Socket", "net.connect", "net.createConnection", "tls.connect",
                           "dgram.createSocket", "tls.TLSSocket"})
JS_HTTP_CLIENT_MODULES = frozenset({"axios", "got", "request", "superagent", "needle", "node-fetch", "cross-fetch",
                                    "isomorphic-fetch", "undici", "request-promise", "phin", "bent"})
_JS_FETCH = frozenset({"fetch", "node-fetch", "cross-fetch", "isomorphic-fetch", "undici.fetch", "undici.request"})
_JS_CONNECTIONS = frozenset({"XMLHttpRequest", "WebSocket", "ws", "ws.WebSocket", "nodemailer.createTransport"})
_JS_CHAT_CLIENTS = frozenset({"discord.js.WebhookClient", "node-telegram-bot-api", "telegraf.Telegraf", "telegraf"})
_JS_DNS_CALLS = frozenset({"lookup", "lookupService", "resolve", "resolve4", "resolve6", "resolveAny", "resolveCname",
                           "resolveMx", "resolveNs", "resolveTxt", "resolveSrv", "resolvePtr", "resolveSoa",
                           "resolveNaptr", "resolveCaa", "reverse"})
_JS_CLIENT_VERBS = frozenset({"get", "post", "put", "patch", "delete", "head", "request", "options", "create", "fetch",
                              "stream", "send"})
_JS_UPLOAD_METHODS = frozenset({"post", "put", "patch"})


def javascript_request_uploads(ctx: CallContext, first: int = 0) -> bool:
    """An options object with an upload method or a body, from argument `first` on."""
    for i in range(first, ctx.arg_count):
        kind = ctx.facts.arg_kind(i)
        if kind is ArgKind.OBJECT:
            text = ctx.facts.arg_source(i, None)
            if re.search(r"""\bmethod\s*:\s*['"`](?:POST|PUT|PATCH)['"`]""", text, re.IGNORECASE) or \
                    re.search(r"\b(?:body|data|json|form)\s*:", text):
                return True
        elif kind is ArgKind.IDENTIFIER and ctx.facts.upload_method_in_file():
            return True
    return False


def _javascript_http_module_request(ctx: CallContext) -> bool:
    module, attr = js_parts(ctx.name)
    return module in ("http", "https") and attr in _JS_HTTP_REQUESTS


@call_rule("network_request", JS, order=70, modules=("http", "https"))
def javascript_http_request(ctx: CallContext) -> bool:
    return _javascript_http_module_request(ctx)


@call_rule("upload_data", JS, order=71, modules=("http", "https"))
def javascript_http_upload(ctx: CallContext) -> bool:
    return _javascript_http_module_request(ctx) and javascript_request_uploads(ctx)


@call_rule("network_request", JS, order=80, names=("http2.connect", *_JS_CONNECTIONS))
def javascript_connection(ctx: CallContext) -> bool:
    return True


@call_rule("raw_socket", JS, order=90, names=JS_RAW_SOCKET, modules=("net",))
def javascript_socket(ctx: CallContext) -> bool:
    module, attr = js_parts(ctx.name)
    return ctx.name in JS_RAW_SOCKET or (module == "net" and attr in ("connect", "createConnection", "Socket"))


@call_rule("dns_lookup", JS, order=60, roots=("dns",))
def javascript_dns(ctx: CallContext) -> bool:
    module, attr = js_parts(ctx.name)
    return (module == "dns" and (attr in _JS_DNS_CALLS or attr == "Resolver")) or module == "dns.Resolver" \
        or (module.startswith("dns.") and attr in _JS_DNS_CALLS)


@call_rule("network_request", JS, order=100, names=_JS_FETCH)
def javascript_fetch(ctx: CallContext) -> bool:
    return True


@call_rule("upload_data", JS, order=101, names=_JS_FETCH)
def javascript_fetch_upload(ctx: CallContext) -> bool:
    return javascript_request_uploads(ctx, 1)


@call_rule("chat_webhook", JS, order=120, names=_JS_CHAT_CLIENTS)
def javascript_chat_client(ctx: CallContext) -> Sequence[str]:
    """Chat clients used as the exfiltration channel: a webhook client or a bot."""
    return ("chat_webhook", "network_request")


def _javascript_client_verb(ctx: CallContext) -> str | None:
    """The verb of axios.post / got(...) / request(...) (a module called directly: ""), else None."""
    if ctx.name in _JS_FETCH:
        return None  # fetch and friends have their own rule: the body is their second argument
    module, attr = js_parts(ctx.name)
    if module not in JS_HTTP_CLIENT_MODULES and ctx.name not in JS_HTTP_CLIENT_MODULES:
        return None
    if ctx.name not in JS_HTTP_CLIENT_MODULES and attr.lower() not in _JS_CLIENT_VERBS:
        return None
    return attr.lower()


@call_rule("network_request", JS, order=130, names=JS_HTTP_CLIENT_MODULES, modules=JS_HTTP_CLIENT_MODULES)
def javascript_http_client(ctx: CallContext) -> bool:
    return _javascript_client_verb(ctx) is not None


@call_rule("upload_data", JS, order=131, names=JS_HTTP_CLIENT_MODULES, modules=JS_HTTP_CLIENT_MODULES)
def javascript_http_client_upload(ctx: CallContext) -> bool:
    verb = _javascript_client_verb(ctx)
    return verb is not None and (verb in _JS_UPLOAD_METHODS or javascript_request_uploads(ctx))


@call_rule("upload_data", JS, order=330, funcs=("write", "end", "send", "sendMail"))
def javascript_stream_write(ctx: CallContext) -> bool:
    """req.write(data) / socket.write(data) / transport.sendMail(...) on a request or socket."""
    if not ctx.member or not ctx.arg_count or js_parts(ctx.name)[1] not in ("write", "end", "send", "sendMail"):
        return False
    kind = ctx.facts.receiver_kind()
    if kind is ArgKind.IDENTIFIER:
        return ctx.facts.receiver_holds("sender")
    if kind is ArgKind.CALL:
        callee = ctx.facts.receiver_callee()
        return callee is not None and (callee in ("http.request", "https.request") or callee in JS_RAW_SOCKET)
    return False


@import_rule("import_network_module", PY, order=10, roots=(
    "socket", "requests", "urllib", "urllib2", "urllib3", "http", "httplib", "httpx", "aiohttp", "ftplib", "smtplib",
    "telnetlib", "paramiko", "websocket", "websockets", "pycurl", "dns", "socketserver", "SocketServer", "xmlrpc",
    "xmlrpclib", "wget"))
def python_network_module(ctx: ImportContext) -> bool:
    return True


@import_rule("import_network_module", JS, order=10, roots=(
    "http", "https", "http2", "net", "dgram", "dns", "tls", "axios", "node-fetch", "got", "request", "ws", "superagent",
    "needle", "undici", "cross-fetch", "isomorphic-fetch", "socket.io-client", "request-promise", "phin", "bent",
    "discord.js", "node-telegram-bot-api", "telegraf", "nodemailer"))
def javascript_network_module(ctx: ImportContext) -> bool:
    return True


# --- what literals name -----------------------------------------------------------------
_URL = gated(re.compile(r"(?i)\b(?:https?|ftp|wss?)://[^\s'\"<>`]+"))
_IPV4 = re.compile(r"^(?:(?:https?|tcp|udp)://)?((?:\d{1,3}\.){3}\d{1,3})(?::\d{1,5})?(?:/.*)?$")
# Public resolvers malware pings to test connectivity; they would otherwise look like versions.
_WELL_KNOWN_PUBLIC_IPS = frozenset({"1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4", "9.9.9.9"})
_URL_HOST_IP = re.compile(r"(?i)\b(?:https?|ftp|wss?|tcp)://((?:\d{1,3}\.){3}\d{1,3})\b")


_WEBHOOK = gated(re.compile(
    r"(?i)(discord(?:app)?\.com/api/webhooks|api\.telegram\.org/bot|hooks\.slack\.com/services|"
    r"discord(?:app)?\.com/api/v\d+/webhooks|webhook\.office\.com)"
))
_EXFIL_SERVICE = gated(re.compile(
    r"(?i)(pipedream\.net|burpcollaborator\.net|oastify\.com|interact\.sh|\boast\.(?:fun|me|pro|live|site|online)\b|"
    r"webhook\.site|requestbin|ngrok(?:-free)?\.(?:io|app|dev)|canarytokens\.com|dnslog\.cn|ceye\.io|beeceptor\.com|"
    r"hookbin\.com|\bloca\.lt\b|serveo\.net|trycloudflare\.com|transfer\.sh|bashupload\.com|anonfiles\.com|"
    r"gofile\.io|file\.io\b|ptpb\.pw|requestcatcher\.com|eo[a-z0-9]{10,}\.m\.pipedream)"
))


def _looks_like_version(literal: str, ip: str) -> bool:
    """A bare dotted quad such as "1.2.3.4" or "4.19.0.0" is far more often a version than a host.

    Only bare literals (no scheme, port or path) are judged: a URL or host:port is meant as an address.
    """
    if literal != ip or ip in _WELL_KNOWN_PUBLIC_IPS:
        return False
    parts = [int(p) for p in ip.split(".")]
    return parts[-1] == 0 or all(p < 30 for p in parts)


def _is_private_ip(ip: str) -> bool:
    try:
        parts = [int(p) for p in ip.split(".")]
    except ValueError:
        return True
    if any(p > 255 for p in parts):
        return True
    a, b = parts[0], parts[1]
    return (
        a in (0, 10, 127, 255)
        or (a == 169 and b == 254)
        or (a == 172 and 16 <= b <= 31)
        or (a == 192 and b == 168)
        or a >= 224
    )


@string_rule("use_url", order=10)
def url_literal(ctx: StringContext) -> bool:
    return _URL.search(ctx.sample) is not None


@string_rule("use_ip_address", order=20, min_length=7)
def public_ip_literal(ctx: StringContext) -> bool:
    """A public IPv4 address, bare (not a version number) or as a URL's host."""
    stripped = ctx.sample.strip()
    ip = _IPV4.match(stripped)
    if ip and not _is_private_ip(ip.group(1)) and not _looks_like_version(stripped, ip.group(1)):
        return True
    return any(not _is_private_ip(m.group(1)) for m in _URL_HOST_IP.finditer(ctx.sample))


@string_rule("chat_webhook", order=30)
def webhook_literal(ctx: StringContext) -> bool:
    return _WEBHOOK.search(ctx.sample) is not None


@string_rule("exfiltration_service", order=40)
def exfiltration_service_literal(ctx: StringContext) -> bool:
    return _EXFIL_SERVICE.search(ctx.sample) is not None


# --- beacons: a host name built from who and where the code runs ---------------------------
# A dependency-confusion probe reports where it landed by resolving `<user>.<host>.<collector>`:
# the DNS query itself is the message. Ordinary code resolves a configured or literal host.
_PY_SYSTEM_DATA = re.compile(r"\b(?:gethostname|getfqdn|getuser|getlogin|environ|getenv|getcwd|uname|getpid|"
                             r"expanduser|node|__name__|__package__|__file__)\b")
_JS_SYSTEM_DATA = re.compile(r"\b(?:hostname|userInfo|homedir|networkInterfaces|cwd|platform|process\.env|"
                             r"__dirname|__filename)\b")
_PY_FSTRING = re.compile(r"(?i)[rbu]?f[rb]?['\"]")
_FORMATTING_CALL = re.compile(r"\.(?:format|join)\(")
_PY_BEACON_CALLS = PY_DNS | {"socket.create_connection", "socket.getfqdn"}


def _built_host(ctx: CallContext, system_data: re.Pattern[str]) -> bool:
    """The first argument is built at run time (not a plain literal) from host, user, environment
    or package data."""
    if not ctx.arg_count or ctx.facts.arg_kind(0) in (ArgKind.NUMBER, ArgKind.IDENTIFIER, ArgKind.MISSING):
        return False
    source = ctx.facts.arg_source(0, 400)
    if ctx.facts.arg_kind(0) is ArgKind.STRING and not _PY_FSTRING.match(source):
        return False  # a plain literal names a fixed host
    if ctx.facts.arg_kind(0) is ArgKind.CALL and not _FORMATTING_CALL.search(source):
        return False  # gethostbyname(gethostname()): the machine's own address, not a built name
    return system_data.search(source) is not None


@call_rule("beacon_host_name", PY, order=141, names=_PY_BEACON_CALLS)
def python_beacon_host(ctx: CallContext) -> bool:
    """socket.gethostbyname(f"{getpass.getuser()}.{socket.gethostname()}.x.oast.fun")."""
    return _built_host(ctx, _PY_SYSTEM_DATA)


@call_rule("beacon_host_name", JS, order=61, roots=("dns",))
def javascript_beacon_host(ctx: CallContext) -> bool:
    """dns.lookup(os.hostname() + '.' + collector) and the other resolver calls."""
    return bool(javascript_dns(ctx)) and _built_host(ctx, _JS_SYSTEM_DATA)


# Interaction (OAST) collectors that the pattern above does not name; kept apart so that the
# older rule's matches stay what they were.
_INTERACTION_DOMAINS = gated(re.compile(
    r"(?i)(\binteractsh\.(?:com|net)\b|requestrepo\.com|\bdnslog\.(?:link|pw)\b|canarytokens\.(?:org|net)\b|"
    r"\beyes\.sh\b|\bbxss\.me\b|\bxss\.ht\b|\bpingb\.in\b|\bdnsbin\.zhack\.ca\b|\boast\.[a-z]{2,6}\b)"
))


@string_rule("exfiltration_service", order=41, min_length=7)
def interaction_domain_literal(ctx: StringContext) -> bool:
    return _EXFIL_SERVICE.search(ctx.sample) is None and _INTERACTION_DOMAINS.search(ctx.sample) is not None
