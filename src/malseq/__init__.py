"""malseq: static detection of malicious npm and PyPI packages from behaviour sequences."""

__version__ = "0.1.0"
