#!/usr/bin/env bash
# Creates local/.venv with the pinned tools of local/requirements.txt (moto
# server, AWS CLI, cfn-lint, cargo-lambda). Idempotent: a stamp holding the hash
# of requirements.txt and the Python version makes a re-run a no-op.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

command -v python3 >/dev/null || die "python3 is required"
req="$LOCAL_DIR/requirements.txt"
stamp="$VENV/.requirements.sha256"
py_version="$(python3 -c 'import sys; print(sys.version.split()[0])')"
want="$( { cat "$req"; echo "python $py_version"; } | sha256sum | cut -d' ' -f1)"

mkdir -p "$STATE_DIR"
exec 9>"$STATE_DIR/setup.lock"
flock 9 # concurrent callers (scripts, tests) wait for one install

if [[ -x $VENV/bin/python && -f $stamp && "$(<"$stamp")" == "$want" ]]; then
  log "venv up to date: $VENV"
  exit 0
fi

start=$SECONDS
if [[ -x $VENV/bin/python ]] \
  && [[ "$("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)" == "$py_version" ]]; then
  log "updating venv $VENV"
else
  log "creating venv $VENV (python $py_version)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
fi
rm -f "$stamp"
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --quiet -r "$req"
printf '%s\n' "$want" >"$stamp"
log "installed $(grep -cEv '^\s*(#|$)' "$req") pinned packages in $((SECONDS - start)) s"
