# Sourced by the CLI tests that take ADAPTERTUNE PROJECT_DIR WORK_DIR: sets cli, project, work,
# base (the shipped model) and glue, empties WORK_DIR, and gives fail MESSAGE (counted, the test
# goes on) and finish (prints PASS, or the count of failures and exits 1).
set -uo pipefail
cli=$1 project=$2 work=$3
base=$project/models/adaptertune-base-uncased-L4-H256
glue=$project/data/glue
rm -rf "$work"
mkdir -p "$work"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
finish() {
  [ "$failures" -eq 0 ] || { echo "$failures failure(s)" >&2; exit 1; }
  echo "PASS"
}
