#!/usr/bin/env python3
"""Reference encoding throughput: MidiTok's REMI tokenizer on symusic, one core.

For every *.mid / *.midi file under DIR (recursively, sorted), load it with
`symusic.Score` and tokenize it with `miditok.REMI()` (default TokenizerConfig),
timing load + tokenize together in a single process pinned to one CPU. The pass
is repeated and the fastest one is reported (files are in the page cache after
the first). Files that fail to load or tokenize are skipped and counted.

Usage:  python scripts/bench_data.py DIR [--repeat 3]

Prints one JSON object to stdout:
  {"tool": "miditok-remi-symusic", "files": N, "seconds": S, "files_per_sec": ...,
   "tokens": T, "tokens_per_sec": ..., "failed": F, "repeats": [...], "versions": {...}}
Requires: pip install miditok symusic
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from importlib.metadata import version
from pathlib import Path

# One core: native thread pools get one thread (set before they load); main() pins the CPU.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import miditok  # noqa: E402
import symusic  # noqa: E402


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def one_pass(files: list[Path], tokenizer: miditok.REMI) -> tuple[float, int, int, int]:
    """Load and tokenize every file once: (seconds, files ok, tokens, files failed)."""
    ok = tokens = failed = 0
    start = time.perf_counter()
    for path in files:
        try:
            seqs = tokenizer.encode(symusic.Score(str(path)))
            seqs = seqs if isinstance(seqs, list) else [seqs]
            tokens += sum(len(seq.ids) for seq in seqs)
            ok += 1
        except Exception:  # noqa: BLE001 - a bad file is counted, not fatal
            failed += 1
    return time.perf_counter() - start, ok, tokens, failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path, help="folder of MIDI files (searched recursively)")
    ap.add_argument("--repeat", type=int, default=3, help="passes; the fastest is reported")
    args = ap.parse_args()

    files = sorted(p for p in args.dir.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    if not files:
        sys.exit(f"bench_data: no .mid/.midi files under {args.dir}")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    warnings.simplefilter("ignore")
    tokenizer = miditok.REMI()  # default TokenizerConfig

    runs = []
    for i in range(max(1, args.repeat)):
        runs.append(one_pass(files, tokenizer))
        print(f"bench_data: pass {i + 1}: {runs[-1][0]:.3f}s", file=sys.stderr)
    seconds, ok, tokens, failed = min(runs)
    print(
        json.dumps(
            {
                "tool": "miditok-remi-symusic",
                "dir": str(args.dir),
                "files": ok,
                "failed": failed,
                "seconds": round(seconds, 4),
                "files_per_sec": round(ok / seconds, 1),
                "tokens": tokens,
                "tokens_per_sec": round(tokens / seconds),
                "repeats": [round(r[0], 4) for r in runs],
                "threads": 1,
                "versions": {
                    "python": platform.python_version(),
                    "miditok": version("miditok"),
                    "symusic": version("symusic"),
                },
                "cpu": cpu_model(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
