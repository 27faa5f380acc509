#!/usr/bin/env bash
# `latmix completion` against the help text: at the first word it completes exactly the commands that
# `latmix --help` lists, after each command exactly the options its --help lists, the subcommands of a
# group ("mx"), option values (cpu|cuda, file names), and it leaves out options already given.
# Usage: completion_test.sh PATH/TO/latmix
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../support/python.sh"
LATMIX=$1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PASSED=0; FAILED=0
same() {  # same WHAT EXPECTED ACTUAL (word lists, order ignored)
  local want got
  want=$(tr ' ' '\n' <<<"$2" | sed '/^$/d' | sort | tr '\n' ' ')
  got=$(tr ' ' '\n' <<<"$3" | sed '/^$/d' | sort | tr '\n' ' ')
  if [ "$want" = "$got" ]; then PASSED=$((PASSED + 1)); else
    echo "FAIL: $1"; echo "  expected: $want"; echo "  completed: $got"; FAILED=$((FAILED + 1)); fi
}
"$LATMIX" completion >"$WORK/latmix.bash" || { echo "FAIL: latmix completion exited with $?"; exit 1; }
complete_words() {  # complete_words WORD... (the last one is the word being completed)
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _latmix; echo "${COMPREPLY[*]}"' \
    _ "$WORK/latmix.bash" "$@"
}
# The command table as `latmix --help` shows it; a line's command is the registered name (latmix completion
# --json) it starts with, so that "mx quantize" is one command. Every line has one, every name one line.
"$LATMIX" --help | sed -n '/^Commands:$/,/^$/p' | sed '1d;/^$/d' >"$WORK/table"
[ -s "$WORK/table" ] || { echo "FAIL: no commands in latmix --help"; exit 1; }
"$LATMIX" completion --json >"$WORK/table.json" || { echo "FAIL: latmix completion --json exited with $?"; exit 1; }
mapfile -t names < <(python3 - "$WORK/table" "$WORK/table.json" <<'PY'
import json, sys
lines = [l.strip() for l in open(sys.argv[1]) if l.strip()]
registered = [c["name"] for c in json.load(open(sys.argv[2]))["commands"]]
names = []
for line in lines:
    match = [n for n in registered if line == n or line.startswith(n + " ")]
    match = max(match, key=len) if match else None
    if match is None:
        sys.exit(f"latmix --help lists '{line}', which latmix completion --json does not have")
    names.append(match)
if sorted(names) != sorted(registered):
    sys.exit(f"latmix --help lists {names}, latmix completion --json {registered}")
print("\n".join(names))
PY
)
[ ${#names[@]} -gt 0 ] || { echo "FAIL: latmix --help and latmix completion --json disagree"; exit 1; }
first_words=$(printf '%s\n' "${names[@]}" | awk '{print $1}' | sort -u | tr '\n' ' ')
same "first word: every command of latmix --help" "--help --version $first_words" "$(complete_words latmix '')"

for name in "${names[@]}"; do
  read -ra words <<<"$name"
  if [ ${#words[@]} -eq 2 ]; then
    subs=$(for n in "${names[@]}"; do [[ $n == "${words[0]} "* ]] && echo "${n#* }"; done | tr '\n' ' ')
    same "latmix ${words[0]} <TAB>" "$subs" "$(complete_words latmix "${words[0]}" '')"
  fi
  opts=$("$LATMIX" $name --help | sed -n 's/^  \(--[a-z0-9-]*\).*/\1/p' | tr '\n' ' ')
  same "latmix $name --<TAB>: the options of its --help" "$opts" "$(complete_words latmix $name --)"
done
echo "${#names[@]} commands checked"

same "an option already given is not offered again" "" "$(complete_words latmix info --model m --json --j)"
same "latmix info --model m --t<TAB>" "--threads --tokenizer" "$(complete_words latmix info --model m --t)"
same "latmix info --device <TAB>" "cpu cuda" "$(complete_words latmix info --device '')"
mkdir -p "$WORK/files/sub" && touch "$WORK/files/model.bin"
same "latmix info --model <file name>" "$WORK/files/model.bin" "$(complete_words latmix info --model "$WORK/files/mo")"
same "latmix completion --shell <TAB>" "bash" "$(complete_words latmix completion --shell '')"
same "latmix ppl --seqlen <TAB>: a number, nothing to offer" "" "$(complete_words latmix ppl --seqlen '')"

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
