"""Language-independent classification of string literals and raw source text.

Both extractors hand every (folded) string literal to `classify_literal` and every
raw literal token to `classify_raw_literal`; the behaviours these return are the
"what does this data name" half of the vocabulary (URLs, secrets, wallets, shell).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter

from malseq.features.commands import analyse_command, looks_like_command

_URL = re.compile(r"(?i)\b(?:https?|ftp|wss?)://[^\s'\"<>`]+")
_IPV4 = re.compile(r"^(?:(?:https?|tcp|udp)://)?((?:\d{1,3}\.){3}\d{1,3})(?::\d{1,5})?(?:/.*)?$")
# Public resolvers malware pings to test connectivity; they would otherwise look like versions.
_WELL_KNOWN_PUBLIC_IPS = frozenset({"1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4", "9.9.9.9"})
_URL_HOST_IP = re.compile(r"(?i)\b(?:https?|ftp|wss?|tcp)://((?:\d{1,3}\.){3}\d{1,3})\b")

_WEBHOOK = re.compile(
    r"(?i)(discord(?:app)?\.com/api/webhooks|api\.telegram\.org/bot|hooks\.slack\.com/services|"
    r"discord(?:app)?\.com/api/v\d+/webhooks|webhook\.office\.com)"
)
_EXFIL_SERVICE = re.compile(
    r"(?i)(pipedream\.net|burpcollaborator\.net|oastify\.com|interact\.sh|\boast\.(?:fun|me|pro|live|site|online)\b|"
    r"webhook\.site|requestbin|ngrok(?:-free)?\.(?:io|app|dev)|canarytokens\.com|dnslog\.cn|ceye\.io|beeceptor\.com|"
    r"hookbin\.com|\bloca\.lt\b|serveo\.net|trycloudflare\.com|transfer\.sh|bashupload\.com|anonfiles\.com|"
    r"gofile\.io|file\.io\b|ptpb\.pw|requestcatcher\.com|eo[a-z0-9]{10,}\.m\.pipedream)"
)
_PUBLIC_IP_SERVICE = re.compile(
    r"(?i)(ipify\.org|ipinfo\.io|ifconfig\.me|icanhazip\.com|checkip\.amazonaws|ip-api\.com|"
    r"myexternalip|wtfismyip|ipapi\.co|geolocation-db\.com)"
)
_SENSITIVE_FILE = re.compile(
    r"(?i)(\.ssh(?:/|\\\\?|$)|\bid_(?:rsa|dsa|ecdsa|ed25519)\b|authorized_keys|\.aws[/\\]+credentials|"
    r"(?:^|[/\\~])\.npmrc\b|\.pypirc\b|\.git-credentials|(?:^|[/\\~])\.netrc\b|\.bash_history|\.zsh_history|"
    r"/etc/passwd\b|/etc/shadow\b|\.docker[/\\]config\.json|\.kube[/\\]config|\.gnupg|"
    r"gcloud[/\\](?:credentials|application_default)|\.config[/\\]gh[/\\]hosts|\.azure[/\\]|"
    r"login\.keychain|\.vault-token|\.terraform\.d[/\\]credentials)"
)
_BROWSER = re.compile(
    # "Cookies" only as the browser's file name (case-sensitive, alone or as a path part):
    # HTTP libraries say "cookies" everywhere.
    r"(?i)(Login Data|Local State|Web Data|(?-i:(?:^|[/\\])Cookies(?:$|[/\\]))|User Data[/\\]|"
    r"Google[/\\]+Chrome|BraveSoftware|Mozilla[/\\]+Firefox|"
    r"Opera Software|Microsoft[/\\]+Edge|logins\.json|key4\.db|cookies\.sqlite|Yandex[/\\]+YandexBrowser|Vivaldi[/\\]|"
    r"Chromium[/\\]+User Data|CryptUnprotectData)"
)
_WALLET = re.compile(
    r"(?i)(\bExodus\b|\bElectrum\b|wallet\.dat|Atomic[/\\]+Local Storage|\bArmory\b|\bCoinomi\b|\bGuarda\b|\bJaxx\b|"
    r"MetaMask|nkbihfbeogaeaoehlefnkodbefgpgknn|ejbalbakoplchlghecdalmeeeajnimhm|bfnaelmomeimhlpmgjnjophhpkkoljpa|"
    r"ibnejdfjmmkpcnlpebklmnkoeoihofec|fhbohimaelbohpjbbldcngcnapndodjp|hnfanknocfeofbddgcijnmhnfnkdnaad|"
    r"solana[/\\]+id\.json|Ethereum[/\\]+keystore|\.bitcoin[/\\]|\bMonero\b[/\\]|Zcash[/\\]|Bytecoin|"
    r"seed phrase|mnemonic phrase|\bkeystore[/\\])"
)
_APP_TOKENS = re.compile(
    r"(?i)(discord(?:canary|ptb)?[/\\]+Local Storage|Local Storage[/\\]+leveldb|Telegram Desktop[/\\]+tdata|"
    r"[/\\]tdata\b|\.ROBLOSECURITY|launcher_accounts\.json|Steam[/\\]+config[/\\]+loginusers|\bssfn\b|"
    r"[\w-]{24}\.[\w-]{6}\.[\w-]{27}|mfa\.[\w-]{84})"
)
_PERSISTENCE = re.compile(
    r"(?i)(\bcrontab\b|/etc/cron|Start Menu[/\\]+Programs[/\\]+Startup|CurrentVersion[/\\]+Run(?:Once)?\b|"
    r"(?:^|[/\\~])\.bashrc\b|\.bash_profile\b|(?:^|[/\\~])\.zshrc\b|(?:^|[/\\~])\.profile\b|LaunchAgents|"
    r"LaunchDaemons|systemd[/\\]+system|\bschtasks\b|/etc/rc\.local|\\\\Winlogon\b|autostart[/\\])"
)
_CAPTURE = re.compile(r"(?i)(ImageGrab|screenshot|pyautogui\.screenshot|pynput|keylogger|GetAsyncKeyState|"
                      r"clipboard|pyperclip|mss\(\))")
_OBF_IDENT = re.compile(r"\b_0x[0-9a-f]{4,}\b")
_ESCAPES = re.compile(r"\\x[0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\u\{[0-9a-fA-F]+\}|\\[0-7]{3}")
_B64 = re.compile(r"^[A-Za-z0-9+/\r\n]+={0,2}$")
_B64URL = re.compile(r"^[A-Za-z0-9_\-\r\n]+={0,2}$")

# What a literal names, in the order the behaviours are reported.
_NAMED_DATA: tuple[tuple[re.Pattern[str], str], ...] = (
    (_WEBHOOK, "chat_webhook"),
    (_EXFIL_SERVICE, "exfiltration_service"),
    (_PUBLIC_IP_SERVICE, "collect_system_info"),
    (_SENSITIVE_FILE, "read_sensitive_file"),
    (_BROWSER, "read_browser_data"),
    (_WALLET, "read_crypto_wallet"),
    (_APP_TOKENS, "read_app_tokens"),
    (_PERSISTENCE, "persistence"),
)

BASE64_MIN_LENGTH = 40
LONG_STRING_MIN_LENGTH = 300
ENTROPY_MIN_LENGTH = 40
ENTROPY_THRESHOLD = 4.8


def shannon_entropy(text: str) -> float:
    if not text:
        return 0.0
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


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


def looks_like_base64(text: str) -> bool:
    stripped = text.strip()
    if len(stripped) < BASE64_MIN_LENGTH or " " in stripped:
        return False
    if not (_B64.match(stripped) or _B64URL.match(stripped)):
        return False
    compact = stripped.replace("\n", "").replace("\r", "")
    classes = sum((any(c.isupper() for c in compact), any(c.islower() for c in compact),
                   any(c.isdigit() for c in compact)))
    # A long identifier or hex digest is not base64 of anything interesting.
    if classes < 3 or re.fullmatch(r"[0-9a-fA-F]+", compact):
        return False
    return decode_base64(compact) is not None


def decode_base64(text: str) -> bytes | None:
    compact = re.sub(r"\s+", "", text)
    padded = compact + "=" * (-len(compact) % 4)
    for decoder in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            return decoder(padded.encode("ascii"))
        except (binascii.Error, ValueError):
            continue
    return None


def decode_base64_text(text: str) -> str | None:
    """The decoded text of a base64 literal if it decodes to mostly printable text."""
    raw = decode_base64(text)
    if raw is None or not raw:
        return None
    decoded = raw.decode("utf-8", errors="replace")
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in decoded)
    return decoded if printable / len(decoded) > 0.9 else None


def classify_literal(value: str) -> list[str]:
    """Behaviour ids named by the content of one string value (after folding)."""
    found: list[str] = []
    if not value or len(value) < 4:
        return found
    sample = value[:20000]
    if _URL.search(sample):
        found.append("use_url")
    stripped = sample.strip()
    ip = _IPV4.match(stripped)
    if (ip and not _is_private_ip(ip.group(1)) and not _looks_like_version(stripped, ip.group(1))) or any(
        not _is_private_ip(m.group(1)) for m in _URL_HOST_IP.finditer(sample)
    ):
        found.append("use_ip_address")
    found.extend(behaviour for pattern, behaviour in _NAMED_DATA if pattern.search(sample))
    if looks_like_base64(sample):
        found.append("base64_string")
    if len(value) >= LONG_STRING_MIN_LENGTH and sum(ch.isspace() for ch in sample) < len(sample) * 0.02:
        found.append("long_string")
    if (
        len(value) >= ENTROPY_MIN_LENGTH
        and " " not in sample
        and shannon_entropy(sample) >= ENTROPY_THRESHOLD
    ):
        found.append("high_entropy_string")
    if looks_like_command(sample):
        for finding in analyse_command(sample):
            if finding not in found:
                found.append(finding)
    return found


def _escapes_ascii(escape: str) -> bool:
    digits = escape[2:].strip("{}") if escape[1] in "xu" else escape[1:]
    try:
        code = int(digits, 16 if escape[1] in "xu" else 8)
    except ValueError:
        return False
    return 0x20 <= code < 0x7F


def classify_raw_literal(raw: str) -> list[str]:
    """Behaviours visible only in how a literal is written in source (escape-heavy).

    Only escapes of printable ASCII count: `\x63\x68` hides "ch", while non-Latin text written as
    `\u0627\u0644...` (locale tables, i18n bundles) is how many codebases store it.
    """
    escapes = [e for e in _ESCAPES.findall(raw[:20000]) if _escapes_ascii(e)]
    if len(escapes) >= 8 and sum(len(e) for e in escapes) >= 0.5 * len(raw):
        return ["escaped_string"]
    return []


def classify_capture_name(name: str) -> bool:
    return bool(_CAPTURE.search(name))


def count_obfuscated_identifiers(text: str) -> int:
    return len(_OBF_IDENT.findall(text))
