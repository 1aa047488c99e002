#!/usr/bin/env python3
"""Build the default MIDI corpora from the corpus that ships inside music21.

Nothing is downloaded: both collections come from the music21 package installed
in the project virtualenv, and are converted to standard MIDI files.

    corpora/bach/  Bach chorales (MusicXML/Humdrum -> MIDI with music21),
                   one file per corpus file, named after it: bwv1.6.mid
    corpora/folk/  O'Neill's Music of Ireland (1850), ABC -> MIDI with Debian's
                   abc2midi when installed (else music21), one file per tune,
                   named after O'Neill's number: oneills1850_0001.mid
    corpora/SOURCES.md  generated: counts, sources, versions, licences

Usage:  python scripts/fetch_corpus.py --out corpora [--only bach|folk]
                                        [--limit N] [--jobs N]

Reruns are idempotent: existing MIDI files are kept, only missing ones are
converted (files that failed before are retried). Output is deterministic:
converting twice gives byte-identical files. Conversion failures are reported
and skipped. Files are written to a temporary name and renamed, so an
interrupted run never leaves a truncated .mid behind.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from multiprocessing import Pool
from pathlib import Path

import music21
from music21 import converter, corpus

CORPUS_DIR = Path(corpus.__file__).resolve().parent
ABC2MIDI = shutil.which("abc2midi")
# Preferred encoding when the corpus holds the same chorale in several formats
# (bwv277/281/366 exist as .mxl and as CCARH .krn); .rntxt analyses are not scores.
BACH_FORMATS = {".mxl": 0, ".xml": 1, ".krn": 2}
FOLK_COLLECTION = "oneills1850"
STAMP = ".converter"  # per-collection record of the converter that made the files


def safe_name(stem: str) -> str:
    """An ASCII file-name stem without spaces: anything unusual becomes '_'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem)


def rel(path: Path) -> str:
    """A corpus path as music21 names it, e.g. 'bach/bwv1.6.mxl'."""
    return path.relative_to(CORPUS_DIR).as_posix()


# --- collections: each lists (output stem, corpus path, ABC text or None) ---


def bach_items() -> list[tuple[str, str, str | None]]:
    best: dict[str, Path] = {}
    for path in sorted(corpus.getComposer("bach")):
        if path.parent.name != "bach" or path.suffix not in BACH_FORMATS:
            continue
        stem = safe_name(path.stem)
        if stem not in best or BACH_FORMATS[path.suffix] < BACH_FORMATS[best[stem].suffix]:
            best[stem] = path
    return [(stem, rel(p), None) for stem, p in sorted(best.items())]


def folk_items() -> list[tuple[str, str, str | None]]:
    """Split the O'Neill files into single tunes, one per O'Neill number.

    The number is the one in the tune's B: field ("B: O'Neill's 1646"), else its
    X: number (they agree except for three mis-numbered X: lines). Several files
    overlap (e.g. 0626-0635 and 0626-0700, or the two transcriptions
    0732-0758_bs/_mh); each number is kept once, from the first file in sorted order.
    """
    chosen: dict[int, tuple[str, str]] = {}
    for path in sorted((CORPUS_DIR / FOLK_COLLECTION).glob("*.abc")):
        header, *tunes = re.split(r"(?m)^(?=X:)", path.read_text(encoding="latin-1"))
        for tune in tunes:
            number = re.search(r"(?m)^B:.*?(\d+)\W*$", tune) or re.match(r"X:\s*(\d+)", tune)
            if number:
                chosen.setdefault(int(number.group(1)), (rel(path), header + tune))
    return [(f"{FOLK_COLLECTION}_{n:04d}", src, text) for n, (src, text) in sorted(chosen.items())]


def folk_converter() -> str:
    if ABC2MIDI:
        ver = subprocess.run([ABC2MIDI, "-ver"], capture_output=True, text=True).stdout.split()
        return f"abc2midi {ver[0] if ver else '?'}"
    return f"music21 {music21.__version__}"


COLLECTIONS = {
    "bach": dict(
        items=bach_items,
        converter=lambda: f"music21 {music21.__version__}",
        title="J. S. Bach, four-part chorales",
        source="`music21.corpus.getComposer('bach')`: `bach/*.mxl`, `bach/*.xml`, `bach/*.krn`; "
        "`bach/choraleAnalyses/*.rntxt` (Roman-numeral analyses) excluded; where a chorale "
        "exists in two encodings (bwv277, bwv281, bwv366: .mxl and .krn) only the .mxl is used.",
        licence="Compositions: public domain (J. S. Bach, 1685-1750). Encodings: shipped in "
        "music21's core corpus, which carries no blanket licence. Its `corpus/license.txt` says "
        "the works are distributed with the permission of the encoders and, to the best of the "
        "music21 authors' knowledge, are out of copyright in the US or licensed for use, possibly "
        "with restrictions on commercial use, and points to licences embedded in individual files. "
        "The MusicXML files used here carry no embedded rights statement (the excluded CCARH "
        '.krn files do: "Rights to all derivative electronic formats reserved").',
    ),
    "folk": dict(
        items=folk_items,
        converter=folk_converter,
        title="O'Neill's Music of Ireland (1850 tunes, Chicago 1903)",
        source=f"`music21.corpus.getComposer('{FOLK_COLLECTION}')`: `{FOLK_COLLECTION}/*.abc` "
        "(files with overlapping number ranges and some duplicate transcriptions), split into "
        "single tunes, one per O'Neill number (from the B: field, else X:; the first file in "
        "sorted order wins). A few of the book's 1850 numbers are absent from music21's files.",
        licence="Tunes: traditional Irish music collected by Francis O'Neill (d. 1936) and "
        "published in Chicago in 1903, public domain. ABC transcriptions: by volunteers "
        "(credited in each tune's Z: field, e.g. Norbert Paap, Bob Safranek, Henrik Norbeck, "
        "John Chambers); no licence is stated in the files. They ship in music21's core corpus "
        "under the same `corpus/license.txt` statement as above (distributed with permission; "
        "possible restrictions on commercial use). abc2midi keeps each tune's B:/N:/Z: header "
        "text (book, notes, transcriber) in the MIDI file as text events.",
    ),
}


# --- conversion (runs in worker processes) ---


def music21_abc(text: str) -> music21.stream.Score:
    """Parse one ABC tune with music21 (the fallback when abc2midi is missing).

    music21's ABC reader can put one TimeSignature object into two measures (after a
    split pickup bar), which its MIDI writer then rejects; give each measure its own.
    """
    score = converter.parseData(text, format="abc")
    seen = set()
    for measure in score.recurse().getElementsByClass(music21.stream.Measure):
        ts = measure.timeSignature
        if ts is not None:
            if id(ts) in seen:
                measure.timeSignature = copy.deepcopy(ts)
            seen.add(id(ts))
    return score


def convert(job: tuple[str, str, str | None, str]) -> tuple[str, str | None]:
    """Convert one item to MIDI at `dst`; returns (dst, error message or None)."""
    dst, src, abc_text, how = job
    part = dst + ".part"
    warnings.simplefilter("ignore")
    try:
        if abc_text is None:
            converter.parse(CORPUS_DIR / src, forceSource=True).write("midi", fp=part)
        elif how.startswith("abc2midi"):
            with tempfile.TemporaryDirectory() as tmp:
                abc = Path(tmp) / "tune.abc"
                abc.write_text(abc_text, encoding="latin-1")
                run = subprocess.run(
                    [ABC2MIDI, str(abc), "-o", part, "-silent"], capture_output=True, text=True
                )
                if run.returncode != 0 or not os.path.exists(part):
                    tail = run.stdout[-200:].strip()
                    raise RuntimeError(f"abc2midi exit {run.returncode}: {tail}")
        else:
            music21_abc(abc_text).write("midi", fp=part)
        os.replace(part, dst)
        return dst, None
    except Exception as e:  # noqa: BLE001 - any failure just skips this file
        if os.path.exists(part):
            os.remove(part)
        return dst, f"{type(e).__name__}: {str(e)[:160]}"


def fetch(name: str, out: Path, limit: int | None, jobs: int) -> None:
    spec = COLLECTIONS[name]
    items = spec["items"]()[:limit]
    how = spec["converter"]()
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / STAMP
    if stamp.exists() and stamp.read_text().strip() != how:
        print(
            f"[{name}] warning: existing files were made by {stamp.read_text().strip()}, "
            f"now using {how}; delete {folder} to regenerate them consistently"
        )
    todo = [
        (str(folder / f"{stem}.mid"), src, text, how)
        for stem, src, text in items
        if not (folder / f"{stem}.mid").exists()
    ]
    if not todo:
        print(f"[{name}] all {len(items)} files present in {folder}, nothing to do")
        return
    print(f"[{name}] converting {len(todo)} of {len(items)} with {how}, {jobs} processes")
    start, failed, step = time.perf_counter(), [], max(1, len(todo) // 10)
    with Pool(jobs) as pool:
        for i, (dst, err) in enumerate(pool.imap_unordered(convert, todo, chunksize=4), 1):
            if err:
                failed.append((Path(dst).name, err))
            if i % step == 0 or i == len(todo):
                print(
                    f"[{name}] {i}/{len(todo)} done, {len(failed)} failed, "
                    f"{time.perf_counter() - start:.1f}s",
                    flush=True,
                )
    if not stamp.exists():
        stamp.write_text(how + "\n")
    for file, err in sorted(failed):
        print(f"[{name}] FAILED {file}: {err}")
    print(
        f"[{name}] {len(todo) - len(failed)} converted, {len(failed)} failed, "
        f"{time.perf_counter() - start:.1f}s"
    )


# --- SOURCES.md (regenerated from what is on disk, so it is always current) ---


def write_sources(out: Path) -> None:
    lines = [
        "# Corpora sources",
        "",
        "Generated by `scripts/fetch_corpus.py`; do not edit. Both collections come from the",
        f"core corpus shipped inside the music21 Python package (version {music21.__version__},",
        "BSD-3-Clause software licence; the corpus itself has no single licence, see below).",
        "music21's corpus documentation: \"music21 does not own most of the music in the corpus -",
        "it has been licensed to us (or in a free license). It may not be free in all parts of",
        'the world, but to the best of our knowledge is true for the US."',
    ]
    for name, spec in COLLECTIONS.items():
        folder = out / name
        if not folder.is_dir():
            continue
        stems = [stem for stem, _, _ in spec["items"]()]
        present = {p.stem for p in folder.glob("*.mid")}
        missing = [s for s in stems if s not in present]
        stamp = folder / STAMP
        how = stamp.read_text().strip() if stamp.exists() else spec["converter"]()
        count = f"- Files: {len(stems) - len(missing)} MIDI files of {len(stems)} source items"
        if missing:
            more = f" and {len(missing) - 30} more" if len(missing) > 30 else ""
            count += f"; missing (failed or not fetched): {', '.join(missing[:30])}{more}"
        lines += [
            "",
            f"## {name}/: {spec['title']}",
            "",
            count,
            f"- Source: music21 {music21.__version__} core corpus, {spec['source']}",
            f"- Converted with: {how}",
            f"- Licence: {spec['licence']}",
        ]
    (out / "SOURCES.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("corpora"), help="output folder")
    ap.add_argument("--only", choices=sorted(COLLECTIONS), help="fetch one collection only")
    ap.add_argument("--limit", type=int, help="at most N items per collection (for quick tests)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    args = ap.parse_args()
    start = time.perf_counter()
    for name in [args.only] if args.only else COLLECTIONS:
        fetch(name, args.out, args.limit, max(1, args.jobs))
    write_sources(args.out)
    print(f"wrote {args.out / 'SOURCES.md'}; total {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    sys.exit(main())
