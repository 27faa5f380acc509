#!/usr/bin/env bash
# The Debian package end to end. Builds it with CPack into a temporary folder, checks its contents and
# metadata (Depends from dpkg-shlibdeps, icons, desktop entry, AppStream XML), then installs it (dpkg -i
# when root, as in CI; dpkg -x into the temporary folder otherwise) and runs the installed programs:
# latmix --version (it must find the bundled resources beside itself), latmix info and ppl on the installed
# demo model and calibration text, the installed bash completion, latmix-studio --version and --help without
# a display, and the studio opening the demo model under Xvfb (--screenshot: a PNG of its window, exit 0). dpkg --purge removes the package again.
# Nothing is fetched: every dependency must already be installed (scripts/setup.sh installs them).
# Usage: package_test.sh BUILD_DIR GUI(ON|OFF) VERSION
# Exit 77 (ctest: skipped) with the reason when it cannot run here (no dpkg, a LibTorch that is not a
# Debian package, ...). LATMIX_PACKAGE_TEST_MODE=extract forces dpkg -x even as root.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../support/python.sh"
BUILD=$(realpath "$1"); GUI=${2:-OFF}; VERSION=${3:?version}
SKIP=77
T0=$(date +%s.%N)

skip() { echo "SKIP: $*"; exit "$SKIP"; }
PASSED=0; FAILED=0
ok() { PASSED=$((PASSED + 1)); }
bad() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
check() {  # check DESCRIPTION CMD...: CMD must succeed
  local what=$1; shift
  if "$@" >"$WORK/out" 2>&1; then ok; else bad "$what"; sed 's/^/  | /' "$WORK/out" | tail -15; fi
}
has() {  # has FILE TEXT
  if grep -qF -- "$2" "$1"; then ok; else bad "$(basename "$1") lacks '$2'"; sed 's/^/  | /' "$1" | head -12; fi
}
elapsed() { echo "$(date +%s.%N) $T0" | awk '{printf "%.1f", $1 - $2}'; }

# --- can it run here?
command -v dpkg-deb >/dev/null || skip "dpkg-deb not found: not a Debian system"
command -v cpack >/dev/null || skip "cpack not found"
command -v dpkg-shlibdeps >/dev/null || skip "dpkg-shlibdeps not found: install dpkg-dev (scripts/setup.sh does)"
[ -f "$BUILD/CPackConfig.cmake" ] || skip "$BUILD/CPackConfig.cmake not found: configure the build first"
[ -x "$BUILD/cli/latmix" ] || skip "$BUILD/cli/latmix not built"
[ -w "$BUILD" ] || skip "$BUILD is not writable (CPack writes install_manifest.txt there)"
if [ "$GUI" = ON ] && [ ! -x "$BUILD/app/latmix-studio" ]; then skip "$BUILD/app/latmix-studio not built"; fi
# The engine links LibTorch; `latmix` itself is a launcher without it (cli/launcher).
[ -x "$BUILD/cli/latmix-engine" ] || skip "$BUILD/cli/latmix-engine not built"
TORCH_LIB=$(ldd "$BUILD/cli/latmix-engine" | awk '/libtorch_cpu/ {print $3; exit}')
if [ -z "$TORCH_LIB" ] || ! dpkg -S "$(readlink -f "$TORCH_LIB")" >/dev/null 2>&1; then
  skip "LibTorch (${TORCH_LIB:-not found}) is not from a Debian package, so the package's Depends cannot be computed"
fi

WORK=$(mktemp -d)
INSTALLED=0
cleanup() {
  if [ "$INSTALLED" = 1 ]; then
    dpkg --purge latmix >"$WORK/remove.log" 2>&1 || { echo "FAIL: dpkg -r latmix"; cat "$WORK/remove.log"; }
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- build the package
echo "== cpack ($BUILD)"
# gzip instead of the release's xz: the same files and metadata, built in 13 s instead of 33 s on 2
# cores (the compressor is dpkg-deb's; LATMIX_PACKAGE_TEST_XZ=1 builds the package as released).
COMPRESSION=(-D CPACK_DEBIAN_COMPRESSION_TYPE=gzip)
[ "${LATMIX_PACKAGE_TEST_XZ:-0}" = 1 ] && COMPRESSION=()
if ! cpack --config "$BUILD/CPackConfig.cmake" -B "$WORK/pkg" "${COMPRESSION[@]}" >"$WORK/cpack.log" 2>&1; then
  echo "FAIL: cpack"; tail -30 "$WORK/cpack.log"; exit 1
fi
DEB=$(ls "$WORK"/pkg/*.deb)
echo "package $(basename "$DEB"): $(stat -c %s "$DEB") bytes," \
     "installed size $(dpkg-deb -f "$DEB" Installed-Size) KiB, built in $(elapsed) s"
DEPENDS=$(dpkg-deb -f "$DEB" Depends)
echo "Depends: $DEPENDS"

# --- contents and metadata
dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's|^\./||' >"$WORK/contents"
expected=(usr/bin/latmix usr/share/latmix/resources/models/gutenberg-llama-6M/model.safetensors
          usr/share/latmix/resources/models/gutenberg-llama-6M/config.json
          usr/share/latmix/resources/models/gutenberg-llama-6M/tokenizer.json
          usr/share/latmix/resources/calibration/pride_and_prejudice_ch1-6.txt
          usr/share/bash-completion/completions/latmix usr/share/doc/latmix/copyright
          usr/share/doc/latmix/examples/latmix-serve.service)
if [ "$GUI" = ON ]; then
  expected+=(usr/bin/latmix-studio usr/share/applications/latmix-studio.desktop
             usr/share/metainfo/latmix-studio.metainfo.xml usr/share/icons/hicolor/scalable/apps/latmix-studio.svg)
  for s in 16 22 24 32 48 64 128 256; do expected+=("usr/share/icons/hicolor/${s}x${s}/apps/latmix-studio.png"); done
fi
for p in "${expected[@]}"; do
  if grep -qxF "$p" "$WORK/contents"; then ok; else bad "the package lacks /$p"; fi
done
for dep in libc6 libtorch libpcre2-8 libutf8proc libssl3 libpng16 libcpp-httplib; do
  if [[ "$DEPENDS" == *"$dep"* ]]; then ok; else bad "Depends lacks $dep"; fi
done
# SentencePiece models are read by latmix itself since session 6 (libsentencepiece's protobuf clashed).
if [[ "$DEPENDS" != *libsentencepiece* ]]; then ok; else bad "Depends still lists libsentencepiece"; fi
if [[ "$(dpkg-deb -f "$DEB" Recommends)" == *libopenblas0* ]]; then ok; else bad "Recommends lacks libopenblas0"; fi
if [ "$GUI" = ON ]; then
  for dep in libqt6widgets6 libqt6openglwidgets6 qt6-qpa-plugins; do
    if [[ "$DEPENDS" == *"$dep"* ]]; then ok; else bad "Depends lacks $dep"; fi
  done
fi

ROOT=$WORK/root
dpkg-deb -x "$DEB" "$ROOT"
if [ "$GUI" = ON ]; then
  check "icons: PNG sizes" python3 - "$ROOT/usr/share/icons/hicolor" <<'PY'
import struct, sys, pathlib
for png in sorted(pathlib.Path(sys.argv[1]).glob("*x*/apps/latmix-studio.png")):
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{png}: not a PNG"
    w, h = struct.unpack(">II", data[16:24])
    size = png.parent.parent.name
    assert size == f"{w}x{h}", f"{png}: {w}x{h} in the {size} folder"
PY
  check "AppStream metainfo: well-formed XML naming the desktop entry" python3 - \
      "$ROOT/usr/share/metainfo/latmix-studio.metainfo.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "component" and root.get("type") == "desktop-application", root.tag
for tag in ("id", "name", "summary", "description", "metadata_license", "project_license"):
    assert root.find(tag) is not None, f"no <{tag}>"
assert root.findtext("launchable") == "latmix-studio.desktop", root.findtext("launchable")
PY
  if command -v appstreamcli >/dev/null; then
    # Errors fail; the warning that the id is not a reverse domain name is known (the project has no domain).
    appstreamcli validate --no-net "$ROOT/usr/share/metainfo/latmix-studio.metainfo.xml" >"$WORK/as.log" 2>&1
    if grep -q '^E:' "$WORK/as.log"; then bad "appstreamcli validate"; cat "$WORK/as.log"; else ok; fi
  else
    echo "(appstreamcli not installed: AppStream checked for well-formed XML only)"
  fi
  if command -v desktop-file-validate >/dev/null; then
    check "desktop-file-validate" desktop-file-validate "$ROOT/usr/share/applications/latmix-studio.desktop"
    [ -s "$WORK/out" ] && cat "$WORK/out"
  else
    echo "(desktop-file-validate not installed: the .desktop file was not validated)"
  fi
fi

# --- every dependency installed? (nothing is fetched)
missing=()
IFS=',' read -ra items <<<"$DEPENDS"
for item in "${items[@]}"; do
  found=0
  IFS='|' read -ra alts <<<"$item"
  for alt in "${alts[@]}"; do
    name=$(echo "$alt" | awk '{print $1}'); name=${name%%:*}
    if dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed"; then found=1; break; fi
  done
  [ "$found" = 1 ] || missing+=("$(echo "$item" | xargs)")
done
if [ ${#missing[@]} -gt 0 ]; then
  bad "dependencies not installed: ${missing[*]} (scripts/setup.sh must install them)"
fi

# --- install
MODE=${LATMIX_PACKAGE_TEST_MODE:-}
if [ -z "$MODE" ]; then
  if [ "$(id -u)" -eq 0 ]; then MODE=install; else MODE=extract; fi
fi
if [ "$MODE" = install ] && dpkg-query -W -f='${Status}' latmix 2>/dev/null | grep -q "install ok installed"; then
  echo "(a latmix package is already installed on this machine: testing the unpacked package instead)"
  MODE=extract
fi
if [ "$MODE" = install ] && [ ${#missing[@]} -eq 0 ]; then
  # Two runs of this test on one machine must not install and remove the package under each other.
  exec 9>/tmp/latmix-package-test.lock
  flock -w 600 9 || { echo "FAIL: another package test held /tmp/latmix-package-test.lock for 10 min"; exit 1; }
  echo "== dpkg -i $(basename "$DEB")"
  # dpkg takes no lock waits: retry while another dpkg or apt holds the lock.
  for try in $(seq 1 60); do
    if dpkg -i "$DEB" >"$WORK/install.log" 2>&1; then INSTALLED=1; break; fi
    grep -q "lock" "$WORK/install.log" || break
    sleep 2
  done
  if [ "$INSTALLED" = 1 ]; then
    ok; PREFIX=/usr
  else
    bad "dpkg -i"; cat "$WORK/install.log"
    dpkg --purge latmix >/dev/null 2>&1  # a half-configured package must not stay behind
    exit 1
  fi
else
  echo "== dpkg -x (not root, or LATMIX_PACKAGE_TEST_MODE=extract): running the unpacked programs"
  PREFIX=$ROOT/usr
fi

# --- the installed programs
unset LATMIX_RESOURCES
L=$PREFIX/bin/latmix
RES=$(realpath "$PREFIX/share/latmix/resources")
MODEL=$RES/models/gutenberg-llama-6M
check "latmix --version" "$L" --version; cp "$WORK/out" "$WORK/version"; cat "$WORK/version"
has "$WORK/version" "latmix $VERSION (commit "
has "$WORK/version" "LibTorch "
has "$WORK/version" "CUDA: "
has "$WORK/version" "bundled demo model and calibration text: $RES"
check "latmix --version --json" bash -c "'$L' --version --json | python3 -c \
  'import json,sys; j=json.load(sys.stdin); assert j[\"version\"]==\"$VERSION\" and j[\"resources\"]==\"$RES\", j'"
check "latmix info on the installed demo model" "$L" info --model "$MODEL"; cp "$WORK/out" "$WORK/info"
has "$WORK/info" "LlamaForCausalLM"
has "$WORK/info" "parameters     6524160 (6.52 M)"
check "latmix info --json" bash -c "'$L' info --model '$MODEL' --json | python3 -c \
  'import json,sys; assert json.load(sys.stdin)[\"parameters\"]==6524160'"
check "latmix ppl on the installed calibration text" bash -c "'$L' ppl --model '$MODEL' \
  --data '$RES/calibration/pride_and_prejudice_ch1-6.txt' --seqlen 128 --max-windows 4 --json | python3 -c \
  'import json,math,sys; p=json.load(sys.stdin)[\"perplexity\"]; assert math.isfinite(p) and p > 1, p'"
COMPLETION=$PREFIX/share/bash-completion/completions/latmix
check "the installed completion is latmix completion's" bash -c "cmp <('$L' completion) '$COMPLETION'"
check "the installed completion loads" bash -c "source '$COMPLETION' && complete -p latmix"
check "the installed latmix serve answers latmix --engine" bash -c '
  export XDG_CONFIG_HOME="$2/serve-config"
  "$0" serve --root "$1" --listen 127.0.0.1:0 --port-file "$2/serve.port" --quiet & pid=$!
  for _ in $(seq 100); do [ -s "$2/serve.port" ] && break; sleep 0.1; done
  "$0" --engine "http://127.0.0.1:$(cat "$2/serve.port")" info --model "$1/models/gutenberg-llama-6M" --json; rc=$?
  kill -INT $pid; wait $pid; exit $rc' "$L" "$RES" "$WORK"
has "$WORK/out" '"parameters": 6524160'

if [ "$GUI" = ON ]; then
  S=$PREFIX/bin/latmix-studio
  check "latmix-studio --version without a display" env -u DISPLAY -u WAYLAND_DISPLAY "$S" --version
  has "$WORK/out" "LATMiX Studio $VERSION"
  check "latmix-studio --help without a display" env -u DISPLAY -u WAYLAND_DISPLAY "$S" --help
  has "$WORK/out" "--model"
  if command -v xvfb-run >/dev/null; then
    # The installed studio opens the demo model from the installed resources, saves a screenshot of its
    # window once it is open (--screenshot) and exits 0: started, model opened, window drawn.
    mkdir -p "$WORK/config"
    check "latmix-studio opens the demo model under Xvfb (--screenshot)" env XDG_CONFIG_HOME="$WORK/config" \
      timeout 120 xvfb-run -a -s "-screen 0 1280x800x24" "$S" --screenshot "$WORK/studio.png"
    check "the studio's screenshot is a PNG of the window" python3 -c '
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
w, h = struct.unpack(">II", data[16:24])
assert w >= 800 and h >= 500 and len(data) > 20000, (w, h, len(data))' "$WORK/studio.png"
  else
    echo "(xvfb-run not installed: the studio was not started)"
  fi
fi

if [ "$INSTALLED" = 1 ]; then
  echo "== dpkg --purge latmix"
  if dpkg --purge latmix >"$WORK/remove.log" 2>&1 && [ ! -e /usr/bin/latmix ]; then ok
  else bad "dpkg --purge"; cat "$WORK/remove.log"; fi
  INSTALLED=0
fi
echo "$PASSED passed, $FAILED failed ($MODE, $(elapsed) s)"
[ "$FAILED" -eq 0 ]
