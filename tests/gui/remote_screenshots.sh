#!/usr/bin/env bash
# Runs remote_screenshots.cpp (the studio connected to an in-process `latmix serve` engine, the
# screens docs/remote.md shows) under Xvfb and checks that each screenshot exists and is not blank.
# Usage: remote_screenshots.sh PROGRAM DIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../support/python.sh"
PROGRAM=$1; DIR=$2
rm -rf "$DIR"; mkdir -p "$DIR"
export XDG_CONFIG_HOME=$(mktemp -d) XDG_DATA_HOME=$(mktemp -d)   # fresh settings, no recovery copy
trap 'rm -rf "$XDG_CONFIG_HOME" "$XDG_DATA_HOME"' EXIT
xvfb-run -a -s "-screen 0 1280x720x24" "$PROGRAM" "$DIR"
python3 "$(dirname "$0")/check_screenshots.py" "$DIR" remote-connect remote-browse remote-explorer remote-learn
