# Sourced by the shell tests: `python3` is the system's /usr/bin/python3 when it exists (scripts/setup.sh
# installs it; the tests need only its standard library). A python3 found first on PATH may be a version
# manager's shim: pyenv's costs 0.3 s a start on the CI machine, and the suite starts Python ~60 times.
# LATMIX_TEST_PYTHON names another interpreter.
if [ -n "${LATMIX_TEST_PYTHON:-}" ]; then
  python3() { "$LATMIX_TEST_PYTHON" "$@"; }
elif [ -x /usr/bin/python3 ]; then
  python3() { /usr/bin/python3 "$@"; }
fi
export -f python3 2>/dev/null || true
