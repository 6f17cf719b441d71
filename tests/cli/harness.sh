# Sourced by the CLI tests that take ADAPTERTUNE PROJECT_DIR WORK_DIR: sets cli, project, work,
# base (the shipped model) and glue, empties WORK_DIR, and gives fail MESSAGE (counted, the test
# goes on), refused PATTERN COMMAND... (the command must exit 1 with one line of stderr matching
# PATTERN) and finish (prints PASS, or the count of failures and exits 1).
set -uo pipefail
cli=$1 project=$2 work=$3
base=$project/models/adaptertune-base-uncased-L4-H256
glue=$project/data/glue
rm -rf "$work"
mkdir -p "$work"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
# A mistake gets exit 1 and one line naming it.
refused() { # PATTERN COMMAND...
  local pattern=$1
  shift
  "$@" >/dev/null 2>"$work/err"
  local code=$?
  [ $code -eq 1 ] && [ "$(wc -l <"$work/err")" -eq 1 ] && grep -q -- "$pattern" "$work/err" ||
    fail "expected exit 1 and one line with \"$pattern\", got $code: $(cat "$work/err")"
}
finish() {
  [ "$failures" -eq 0 ] || { echo "$failures failure(s)" >&2; exit 1; }
  echo "PASS"
}
