# Helpers for the CLI tests. expect CODE CMD... runs CMD, checks its exit code, keeps stdout/stderr.
set -u
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
finish() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
}
