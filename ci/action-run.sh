#!/usr/bin/env bash
# The step of action.yml that runs malseq. GitHub sets GITHUB_WORKSPACE, GITHUB_OUTPUT and the
# INPUT_* variables (action.yml passes them); tests/test_integrations.py sets them to run it locally.
#
# It writes the SARIF report to INPUT_SARIF_FILE and malseq's exit code to the step outputs, and
# exits 0 so that the upload step still runs after a finding; the action's last step exits with
# the recorded code.
set -euo pipefail

# the project audit: lockfiles and installed packages (tests/test_integrations.py reads this line)
MALSEQ_SUBCOMMAND="audit"

workspace="${GITHUB_WORKSPACE:-$PWD}"
output="${GITHUB_OUTPUT:-/dev/null}"
target="${INPUT_PATH:-.}"
sarif="${INPUT_SARIF_FILE:-malseq.sarif}"
case "$sarif" in /*) ;; *) sarif="$workspace/$sarif" ;; esac

args=(--format sarif)
if [ -n "${INPUT_OPERATING_POINT:-}" ]; then args+=(--operating-point "$INPUT_OPERATING_POINT"); fi
if [ -n "${INPUT_FAIL_ON:-}" ]; then args+=(--fail-on "$INPUT_FAIL_ON"); fi

# from the workspace, so the project's malseq.toml or [tool.malseq] applies and `path` is relative to it
cd "$workspace"
mkdir -p "$(dirname "$sarif")"
status=0
malseq "$MALSEQ_SUBCOMMAND" "${args[@]}" -- "$target" > "$sarif" || status=$?

written=false
if [ -s "$sarif" ]; then written=true; fi
{
  echo "exit-code=$status"
  echo "sarif-file=$sarif"
  echo "sarif-written=$written"
} >> "$output"

case "$status" in
  0) echo "malseq: clean" ;;
  # malseq's own last stderr lines ("malseq: exit N: ...") name what decided the code
  1) echo "::error title=malseq::a dependency was flagged as malicious, or failed an integrity check (lockfile hash, installed files): see the SARIF report / code scanning" ;;
  2) echo "::error title=malseq::usage error: check the action's inputs and the malseq config file" ;;
  3) echo "::error title=malseq::some dependencies could not be scanned, or (fail-on not-scanned) were not scanned: see the report" ;;
  *) echo "::error title=malseq::malseq exited with $status" ;;
esac
exit 0
