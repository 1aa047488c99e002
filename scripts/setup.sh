#!/usr/bin/env bash
# Idempotent set-up: the project virtual environment `.venv` with the pinned Python
# packages of requirements.txt (libtorch for tch comes from the torch wheel).
# Prints what it does; does nothing when everything is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null; then
    echo "setup: $PY not found; install Python 3.9 or newer" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating the virtual environment .venv"
    "$PY" -m venv .venv
fi
# abc2midi converts the folk tunes of the default corpus in seconds (music21, the
# fallback, takes minutes). Install Debian's package where we can.
install_abcmidi() {
    command -v abc2midi >/dev/null && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing Debian's abcmidi (ABC to MIDI for the folk tunes)"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq abcmidi >/dev/null) \
            || echo "setup: could not install abcmidi; folk tunes will convert through music21 (slower)"
    else
        echo "setup: abc2midi not found; folk tunes will convert through music21 (slower; apt-get install abcmidi)"
    fi
}
install_abcmidi

link_libtorch() {
    local dir
    dir=$(.venv/bin/python -c 'import os, torch; print(os.path.dirname(torch.__file__))')
    if [ "$(readlink .venv/libtorch 2>/dev/null)" != "$dir" ]; then
        echo "setup: linking .venv/libtorch to $dir (where cargo finds libtorch)"
        ln -sfn "$dir" .venv/libtorch
    fi
}
stamp=.venv/.museformer-requirements
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    link_libtorch
    echo "setup: .venv is up to date (torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'))"
    exit 0
fi
echo "setup: installing requirements.txt into .venv (torch with its CUDA libraries is about 4.6 GB; a few minutes)"
.venv/bin/python -m pip install --disable-pip-version-check -q -r requirements.txt
echo "$want" > "$stamp"
link_libtorch
echo "setup: done (torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'))"
