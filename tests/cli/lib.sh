# Helpers for the CLI tests. expect CODE CMD... runs CMD, checks its exit code, keeps stdout/stderr.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../support/python.sh"
FAILED=0
PASSED=0
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
expect() {
  local want=$1; shift
  "$@" >"$OUT/stdout" 2>"$OUT/stderr"
  local got=$?
  if [ "$got" -ne "$want" ]; then
    echo "FAIL: exit $got (wanted $want): $*"; sed 's/^/  stderr: /' "$OUT/stderr" | head -5
    FAILED=$((FAILED + 1))
  else
    PASSED=$((PASSED + 1))
  fi
}
contains() {  # contains stdout|stderr TEXT
  if ! grep -qF -- "$2" "$OUT/$1"; then
    echo "FAIL: $1 lacks '$2'"; sed 's/^/  /' "$OUT/$1" | head -8
    FAILED=$((FAILED + 1))
  else
    PASSED=$((PASSED + 1))
  fi
}
# has_data PATH...: true when every PATH of the shared data exists. Otherwise prints a skip line with
# the reason and counts it: a bare clone (no ../shared/data) runs what it can and reports the rest.
SKIPPED=0
has_data() {
  local p
  for p in "$@"; do
    if [ ! -e "$p" ]; then
      echo "SKIP: $p is missing (shared data: set LATMIX_DATA_DIR or put it at ../shared/data)"
      SKIPPED=$((SKIPPED + 1))
      return 1
    fi
  done
}
# Exit status: 1 when a check failed, else 77 (ctest's SKIP_RETURN_CODE) when a part was skipped, else 0.
finish() {
  echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
  [ "$FAILED" -eq 0 ] || exit 1
  [ "$SKIPPED" -eq 0 ] || exit 77
}
