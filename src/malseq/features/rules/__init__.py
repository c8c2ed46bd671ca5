"""Detection rules as registered units, grouped by catalogue dimension.

Each module registers rules for the behaviours of one dimension (see `registry` for the
decorators and `context` for what a rule sees). Importing this package registers them
all; the extractors ask `REGISTRY` at every call and attribute read they resolve.
"""

from __future__ import annotations

from malseq.features.rules import (  # noqa: F401 - imported for their registrations
    data_transmission,
    encoding,
    information_reading,
    install_hook,
    obfuscation,
    payload_execution,
)
from malseq.features.rules.context import (
    UNKNOWN,
    ArgKind,
    AttributeContext,
    CallContext,
    CallFacts,
    CommandClassContext,
    FileContext,
    FileFacts,
    FileFinding,
    ImportContext,
    ManifestContext,
    ManifestEntry,
    SetupStepContext,
    StringContext,
)
from malseq.features.rules.registry import REGISTRY, Registry, Rule, RuleKind

__all__ = ["REGISTRY", "UNKNOWN", "ArgKind", "AttributeContext", "CallContext", "CallFacts", "CommandClassContext",
           "FileContext", "FileFacts", "FileFinding", "ImportContext", "ManifestContext", "ManifestEntry", "Registry",
           "Rule", "RuleKind", "SetupStepContext", "StringContext"]
