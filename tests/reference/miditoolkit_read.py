#!/usr/bin/env python3
"""Reads MIDI files as the original Museformer release does, for tests/release_reader.rs.

The release's tokenizer (MidiProcessor) loads a file with miditoolkit 0.1.16, which
parses it with mido 1.2.10, then checks it (MidiProcessor's `default_check_midi`:
note times, time-signature values and ticks per beat below 2^31, at least one note).
This script does exactly that and prints one JSON object per file, in order:

  {"ok": true, "ticks_per_beat": T,
   "instruments": [{"program": P, "is_drum": D, "name": N,
                    "notes": [[start, end, pitch, velocity], ...]}, ...],
   "tempos": [[tick, "bpm"], ...], "time_signatures": [[tick, num, den], ...],
   "key_signatures": [[tick, key_number], ...]}
  {"ok": false, "error": "ExceptionType: message"}

Usage:  python tests/reference/miditoolkit_read.py FILE...

Two shims let miditoolkit 0.1.16 run on today's Python packages without changing
what it computes: numpy 1.24 removed the `np.int` alias its reader uses (restored
as `int`), and its package `__init__` imports its piano-roll tools (scipy,
matplotlib), which reading does not need (only `miditoolkit.midi` is loaded).
"""

import importlib.metadata
import importlib.util
import json
import os
import sys
import types

WANTED = {"miditoolkit": "0.1.16", "mido": "1.2.10"}


def load_parser():
    for name, version in WANTED.items():
        try:
            found = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            sys.exit(f"{name} is not installed: run `just setup` (requirements.txt pins {name}=={version})")
        if found != version:
            sys.exit(f"{name} {found} is installed, the reference needs {version}: run `just setup`")
    import numpy as np

    if not hasattr(np, "int"):
        np.int = int
    spec = importlib.util.find_spec("miditoolkit")
    package = types.ModuleType("miditoolkit")
    package.__path__ = [os.path.dirname(spec.origin)]
    sys.modules["miditoolkit"] = package
    from miditoolkit.midi import parser

    return parser


def check(midi):
    """MidiProcessor's checks after loading (midi_utils.default_check_midi)."""
    limit = 2**31
    for inst in midi.instruments:
        for n in inst.notes:
            assert 0 <= n.start < limit and 0 <= n.end < limit, "Bad note time"
    for ts in midi.time_signature_changes:
        assert 0 < ts.numerator < limit and 0 < ts.denominator < limit, "Bad time signature value"
    assert 0 < midi.ticks_per_beat < limit, "Bad ticks per beat"
    assert sum(len(i.notes) for i in midi.instruments) > 0, "Blank note."


def read(parser, path):
    try:
        midi = parser.MidiFile(filename=path)
        check(midi)
    except Exception as e:  # noqa: BLE001 - every failure is a result here
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    return {
        "ok": True,
        "ticks_per_beat": int(midi.ticks_per_beat),
        "instruments": [
            {
                "program": int(i.program),
                "is_drum": bool(i.is_drum),
                "name": i.name,
                "notes": [[int(n.start), int(n.end), int(n.pitch), int(n.velocity)] for n in i.notes],
            }
            for i in midi.instruments
        ],
        # repr: the shortest string that reads back as the same double.
        "tempos": [[int(t.time), repr(float(t.tempo))] for t in midi.tempo_changes],
        "time_signatures": [[int(t.time), int(t.numerator), int(t.denominator)] for t in midi.time_signature_changes],
        "key_signatures": [[int(k.time), int(k.key_number)] for k in midi.key_signature_changes],
    }


def main():
    parser = load_parser()
    for path in sys.argv[1:]:
        print(json.dumps(read(parser, path)))


if __name__ == "__main__":
    main()
