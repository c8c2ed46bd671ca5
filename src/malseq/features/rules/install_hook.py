"""Install hooks: code a package runs because it is installed (npm scripts, setup.py, .pth files).

These rules decide over facts a whole-package or whole-file pass computes (registry.py):
features/manifest.py builds the `ManifestContext`s, the Python engine the setup.py contexts.
"""

from __future__ import annotations

import re

from malseq.features.commands import is_npm_build_script
from malseq.features.rules.context import CommandClassContext, ManifestContext, ManifestEntry, SetupStepContext
from malseq.features.rules.registry import command_class_rule, manifest_rule, setup_step_rule

# Scripts npm runs by itself when the package is installed as a dependency.
INSTALL_TIME_SCRIPTS = ("preinstall", "install", "postinstall")

# Behaviours that mean "setup.py did something" when they happen at module level (or in what
# module-level code calls).
SETUP_EXECUTION_BEHAVIOURS = frozenset({
    "run_command", "eval_code", "dynamic_import", "network_request", "upload_data", "raw_socket", "dns_lookup",
    "hidden_process", "write_executable", "load_native_code", "reverse_shell", "capture_screen_or_clipboard",
    "encryption_call",
})
# Commands pip runs on install: a class registered for one runs code at install time.
SETUP_COMMANDS = frozenset({
    "install", "develop", "egg_info", "build", "build_py", "build_ext", "build_scripts", "install_lib",
    "install_scripts", "install_data", "install_egg_info", "sdist", "dist_info", "editable_wheel", "bdist_wheel",
    "bdist_egg"})
# C-extension packages customise these routinely.
BUILD_COMMANDS = frozenset({"build", "build_ext", "build_clib", "build_scripts", "build_src"})
# Base classes of the install-time commands (as written in a base list).
_INSTALL_BASES = re.compile(r"\b(install|develop|egg_info|build_py|sdist|bdist_\w+|_install|_develop|_egg_info)\b")


@manifest_rule("npm_install_script", order=10, entries=(ManifestEntry.NPM_SCRIPT,))
def npm_lifecycle_script(ctx: ManifestContext) -> bool:
    """A script npm runs by itself on install (the scripts they chain to report only what they do);
    not one that only builds the native addon or fetches its prebuilt binary (`node-gyp rebuild`,
    `prebuild-install || node-gyp rebuild`, `husky install`, `chmod +x ./bin/tool`)."""
    return ctx.name in INSTALL_TIME_SCRIPTS and not is_npm_build_script(ctx.text, ctx.shipped)


@manifest_rule("pth_code_execution", order=20, entries=(ManifestEntry.PTH_LINE,))
def pth_import_line(ctx: ManifestContext) -> bool:
    # site.py executes .pth lines that start with "import" at every interpreter start.
    return ctx.text.startswith(("import ", "import\t"))


# What an overridden command does that a build or a registration (compile, copy files, write a
# kernel spec) does not: a class doing none of these is a build step, not an install hook to report.
_OVERRIDE_CONCERNS = SETUP_EXECUTION_BEHAVIOURS | frozenset({
    "persistence", "read_sensitive_file", "read_browser_data", "read_crypto_wallet", "read_app_tokens",
    "chat_webhook", "exfiltration_service", "download_and_execute", "shell_command", "use_ip_address",
    "read_env", "collect_system_info", "encoding_call", "base64_string", "write_executable", "hidden_process"})


# Not a behaviour: the engine adds it to what a scope does when it calls into another file of the
# package, whose behaviour a one-file pass cannot see (a dropper's helper module).
CALLS_PACKAGE_CODE = "<calls package code>"


# What an install/develop/egg_info override may do and still read as a build step: look around, read.
# Writing files (the "0wned" marker of install-hook demos) keeps it reported.
_QUIET_INSTALL_OVERRIDE = frozenset({"os_call", "fs_read", "import_os_module", "import_fs_module",
                                     "import_process_module"})


@command_class_rule("setup_command_override", order=10)
def setup_command_class(ctx: CommandClassContext) -> bool:
    builds = ctx.command in BUILD_COMMANDS
    if CALLS_PACKAGE_CODE not in ctx.does and (
            ctx.does <= _QUIET_INSTALL_OVERRIDE or (builds and not ctx.does & _OVERRIDE_CONCERNS)):
        return False
    if ctx.command is None:
        # Not found registered under a key: an install-command subclass with its own run(), in a
        # file that builds a cmdclass somehow.
        return ctx.cmdclass_in_file and _INSTALL_BASES.search(ctx.bases) is not None and "run" in ctx.methods
    if ctx.command not in SETUP_COMMANDS and not ctx.command.startswith("bdist"):
        return False
    # C-extension packages customise build_ext/build routinely: only report one
    # whose methods do something an install hook should not.
    if ctx.command in BUILD_COMMANDS and not ctx.does & SETUP_EXECUTION_BEHAVIOURS:
        return False
    return "run" in ctx.methods or _INSTALL_BASES.search(ctx.bases) is not None


@setup_step_rule("setup_code_execution", order=10)
def setup_module_level_code(ctx: SetupStepContext) -> bool:
    return not ctx.ordinary and bool(ctx.does & SETUP_EXECUTION_BEHAVIOURS)
