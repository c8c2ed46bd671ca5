"""Encoding: encoders and decoders (base64, hex, zlib, marshal...) and ciphers."""

from __future__ import annotations

import re

from malseq.features.rules.context import CallContext, ImportContext, StringContext
from malseq.features.rules.registry import JS, PY, call_rule, import_rule, js_parts, string_rule
from malseq.features.strings import BASE64_MIN_LENGTH, looks_like_base64

# --- Python -------------------------------------------------------------------------------
# module -> its functions that encode or decode (None: every function of the module does).
PY_ENCODING_MODULE_FUNCS: dict[str, frozenset[str] | None] = {
    "base64": None,
    "binascii": frozenset({"hexlify", "unhexlify", "a2b_base64", "b2a_base64", "a2b_hex", "b2a_hex", "a2b_uu",
                           "b2a_uu"}),
    "codecs": frozenset({"decode", "encode"}),
    "zlib": frozenset({"compress", "decompress", "decompressobj", "compressobj"}),
    "marshal": frozenset({"loads", "dumps", "load"}),
    "lzma": frozenset({"compress", "decompress"}),
    "bz2": frozenset({"compress", "decompress"}),
    "gzip": frozenset({"compress", "decompress"}),
}
_PY_ENCODING_EXACT = ("bytes.fromhex", "bytearray.fromhex")
_PY_CODECS = frozenset({"hex", "base64", "rot13", "rot_13", "zlib", "bz2", "hex_codec", "base64_codec"})
PY_CIPHER_PREFIXES = ("Crypto.Cipher", "Cryptodome.Cipher", "cryptography.fernet",
                      "cryptography.hazmat.primitives.ciphers", "pyaes", "nacl.secret", "Crypto.PublicKey",
                      "rsa.encrypt", "rsa.decrypt")
_PY_BLOCK_CIPHERS = frozenset({"AES", "DES", "DES3", "ARC4", "Blowfish", "ChaCha20", "Salsa20"})


@call_rule("encoding_call", PY, order=170, modules=tuple(PY_ENCODING_MODULE_FUNCS), names=_PY_ENCODING_EXACT,
           funcs=("fromhex", "decode", "encode"))
def python_encoding(ctx: CallContext) -> bool:
    """base64.b64decode, zlib.decompress, marshal.loads, x.decode('hex'), bytes.fromhex..."""
    if ctx.module in PY_ENCODING_MODULE_FUNCS:
        funcs = PY_ENCODING_MODULE_FUNCS[ctx.module]
        if funcs is None or ctx.func in funcs:
            return True
    if ctx.name in _PY_ENCODING_EXACT or ctx.func == "fromhex":
        return True
    return ctx.func in ("decode", "encode") and ctx.arg_count > 0 and (
        ctx.facts.arg_text(0) or "").lower().replace("-", "_") in _PY_CODECS


@call_rule("encryption_call", PY, order=180, prefixes=PY_CIPHER_PREFIXES, funcs=("Fernet", "new"))
def python_cipher(ctx: CallContext) -> bool:
    """PyCryptodome / cryptography / pyaes / nacl ciphers, AES.new(...)."""
    return ctx.name.startswith(PY_CIPHER_PREFIXES) or ctx.func == "Fernet" or (
        ctx.func == "new" and ctx.module.rsplit(".", 1)[-1] in _PY_BLOCK_CIPHERS)


# --- JavaScript ---------------------------------------------------------------------------
JS_ENCODINGS = frozenset({"base64", "hex", "base64url"})  # the text encodings that hide data
_JS_ZLIB_CALLS = re.compile(r"^(?:inflate|deflate|gunzip|gzip|unzip|brotliDecompress|brotliCompress|inflateRaw|"
                            r"deflateRaw|createGunzip|createInflate|createGzip|createDeflate|createUnzip)(?:Sync)?$")
_JS_CIPHER_CALLS = frozenset({"createCipheriv", "createDecipheriv", "createCipher", "createDecipher",
                              "privateDecrypt", "publicEncrypt", "privateEncrypt", "publicDecrypt"})
_JS_BASE64_MODULES = ("js-base64.Base64", "js-base64", "base-64")
_JS_BASE64_FUNCS = frozenset({"decode", "encode", "atob", "btoa", "fromBase64", "toBase64"})


@call_rule("encoding_call", JS, order=150, names=("Buffer.from", "Buffer"))
def javascript_buffer_decode(ctx: CallContext) -> bool:
    """Buffer.from(data, 'base64' | 'hex')."""
    if ctx.arg_count < 2:
        return False
    encoding = ctx.facts.arg_text(1)
    return encoding is not None and encoding.lower() in JS_ENCODINGS


@call_rule("encoding_call", JS, order=160, names=("atob", "btoa"))
def javascript_atob(ctx: CallContext) -> bool:
    return True


@call_rule("encoding_call", JS, order=170, modules=("zlib",))
def javascript_zlib(ctx: CallContext) -> bool:
    module, attr = js_parts(ctx.name)
    return module == "zlib" and _JS_ZLIB_CALLS.match(attr) is not None


@call_rule("encryption_call", JS, order=180, modules=("crypto",))
def javascript_cipher(ctx: CallContext) -> bool:
    module, attr = js_parts(ctx.name)
    return module == "crypto" and attr in _JS_CIPHER_CALLS


def _javascript_crypto_js(name: str) -> tuple[str, str] | None:
    module, attr = js_parts(name)
    return (module, attr) if module.startswith(("crypto-js", "CryptoJS")) else None


@call_rule("encryption_call", JS, order=190, prefixes=("crypto-js", "CryptoJS"))
def javascript_crypto_js_cipher(ctx: CallContext) -> bool:
    parts = _javascript_crypto_js(ctx.name)
    return parts is not None and parts[1] in ("encrypt", "decrypt")


@call_rule("encoding_call", JS, order=191, prefixes=("crypto-js", "CryptoJS"))
def javascript_crypto_js_encoding(ctx: CallContext) -> bool:
    """CryptoJS.enc.Base64.parse / .stringify."""
    parts = _javascript_crypto_js(ctx.name)
    return parts is not None and ".enc." in f".{parts[0]}." and parts[1] in ("parse", "stringify")


@call_rule("encoding_call", JS, order=200, modules=_JS_BASE64_MODULES)
def javascript_base64_module(ctx: CallContext) -> bool:
    module, attr = js_parts(ctx.name)
    return module in _JS_BASE64_MODULES and attr in _JS_BASE64_FUNCS


@call_rule("encoding_call", JS, order=300, funcs=("toString",))
def javascript_to_string_encoded(ctx: CallContext) -> bool:
    """x.toString('base64' | 'hex')."""
    if not ctx.member or not ctx.arg_count or js_parts(ctx.name)[1] != "toString":
        return False
    encoding = ctx.facts.arg_text(0)
    return encoding is not None and encoding.lower() in JS_ENCODINGS


@import_rule("import_encoding_module", PY, order=10, roots=(
    "base64", "binascii", "codecs", "zlib", "marshal", "lzma", "bz2", "Crypto", "Cryptodome", "cryptography", "pyaes",
    "nacl", "fernet", "rsa"))
def python_encoding_module(ctx: ImportContext) -> bool:
    return True


@import_rule("import_encoding_module", JS, order=10, roots=(
    "zlib", "crypto", "crypto-js", "js-base64", "base-64", "base64-js", "bcrypt", "node-forge", "tweetnacl", "aes-js",
    "jsencrypt", "node-rsa"))
def javascript_encoding_module(ctx: ImportContext) -> bool:
    return True


# --- literals -----------------------------------------------------------------------------
LONG_STRING_MIN_LENGTH = 300


@string_rule("base64_string", order=110, min_length=BASE64_MIN_LENGTH)
def base64_literal(ctx: StringContext) -> bool:
    return looks_like_base64(ctx.sample)


@string_rule("long_string", order=120, min_length=LONG_STRING_MIN_LENGTH)
def long_literal(ctx: StringContext) -> bool:
    """A long literal that is not prose (almost no white space)."""
    return len(ctx.value) >= LONG_STRING_MIN_LENGTH and sum(ch.isspace() for ch in ctx.sample) < len(
        ctx.sample) * 0.02
