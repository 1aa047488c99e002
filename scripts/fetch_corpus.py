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

    corpora-long/ryans/  the long collection: the common- and cut-time tunes of
                   Ryan's Mammoth Collection (1883), ABC -> MIDI with abc2midi
                   (repeats expanded), played three times through as dance
                   tunes are played, re-barred in 4/4 with the pickup completed
                   (see `ryans_rounds`): RyansMammoth_<file stem>.mid
    corpora-long/SOURCES.md  the same record for the long collection

Usage:  python scripts/fetch_corpus.py --out corpora [--long-out corpora-long]
                                        [--only bach|folk|ryans] [--limit N] [--jobs N]

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

import mido
import music21
from music21 import converter, corpus

CORPUS_DIR = Path(corpus.__file__).resolve().parent
ABC2MIDI = shutil.which("abc2midi")
# Preferred encoding when the corpus holds the same chorale in several formats
# (bwv277/281/366 exist as .mxl and as CCARH .krn); .rntxt analyses are not scores.
BACH_FORMATS = {".mxl": 0, ".xml": 1, ".krn": 2}
FOLK_COLLECTION = "oneills1850"
LONG_COLLECTION = "ryansMammoth"
# Ryan's Mammoth tunes kept for the long collection: common time (M:C, M:C|, 4/4,
# 2/2; the others are 2/4, 6/8, 9/8, 3/4, which the 4/4 filter would drop anyway).
LONG_METERS = re.compile(r"(?m)^M:\s*(C\|?|4/4|2/2)\s*$")
PLAYS = 3  # times through: a dance tune is played several times over
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


def ryans_items() -> list[tuple[str, str, str | None]]:
    """The common- and cut-time tunes of Ryan's Mammoth, one file per tune."""
    items = []
    for path in sorted((CORPUS_DIR / LONG_COLLECTION).glob("*.abc")):
        text = path.read_text(encoding="latin-1")
        if LONG_METERS.search(text):
            items.append((f"RyansMammoth_{safe_name(path.stem)}", rel(path), text))
    return items


def folk_converter() -> str:
    if ABC2MIDI:
        ver = subprocess.run([ABC2MIDI, "-ver"], capture_output=True, text=True).stdout.split()
        return f"abc2midi {ver[0] if ver else '?'}"
    return f"music21 {music21.__version__}"


def ryans_converter() -> str:
    return f"{folk_converter()}, {PLAYS} rounds, mido {mido.__version__}"


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
    "ryans": dict(
        items=ryans_items,
        converter=ryans_converter,
        long=True,
        title="Ryan's Mammoth Collection (Boston 1883), common- and cut-time tunes, "
        f"played {PLAYS} times through",
        source=f"`music21.corpus.getComposer('{LONG_COLLECTION}')`: `{LONG_COLLECTION}/*.abc`, "
        "one tune per file; the tunes in M:C, M:C|, 4/4 or 2/2 (reels, hornpipes, "
        "strathspeys, clogs, marches; 2/4, 6/8, 9/8 and 3/4 tunes are left out). abc2midi "
        "expands the repeats and endings; the script then plays the tune "
        f"{PLAYS} times through, each round's pickup taking the place of the end of the "
        "round before, re-notates cut time (2/2) as 4/4 (the same bar length) and completes "
        "the first bar's pickup with a rest so that bar lines fall on whole bars.",
        licence="Tunes: Ryan's Mammoth Collection, 1050 Reels and Jigs, Hornpipes, Clogs, "
        "Walk-arounds, Essences, Strathspeys, Highland Flings and Contra Dances (Elias Howe / "
        "William Bradbury Ryan, Boston 1883), public domain. ABC transcriptions: by volunteers "
        "(credited in each tune's Z: field, e.g. Ray Davies, John Chambers); no licence is "
        "stated in the files. They ship in music21's core corpus under the same "
        "`corpus/license.txt` statement as above.",
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


def abc2midi(abc_text: str, dst: str) -> None:
    """Convert one ABC tune to MIDI at `dst` with abc2midi (repeats expanded)."""
    with tempfile.TemporaryDirectory() as tmp:
        abc = Path(tmp) / "tune.abc"
        abc.write_text(abc_text, encoding="latin-1")
        run = subprocess.run([ABC2MIDI, str(abc), "-o", dst, "-silent"], capture_output=True, text=True)
        if run.returncode != 0 or not os.path.exists(dst):
            tail = run.stdout[-200:].strip()
            raise RuntimeError(f"abc2midi exit {run.returncode}: {tail}")


def last_note_tick(midi: "mido.MidiFile") -> int:
    end = 0
    for track in midi.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type in ("note_on", "note_off"):
                end = max(end, tick)
    return end


def pickup_ticks(abc_text: str) -> int:
    """The length in ticks of what comes before the first bar line of the tune (0 if
    no note does): the pickup, when it is shorter than a bar. abc2midi measures it,
    on the tune cut after that bar line, so that note lengths, tuplets and broken
    rhythm are read the way the whole tune is."""
    lines = abc_text.splitlines(keepends=True)
    k = next(i for i, line in enumerate(lines) if line.startswith("K:"))
    body = "".join(lines[k + 1 :])
    # Chord symbols, annotations, decorations, inline fields and comments hold no notes
    # (and may hold '|'); what is left before the first '|' is the first bar.
    clean = re.sub(r'"[^"]*"|![^!]*!|\+[^+]*\+|\[[A-Za-z]:[^\]]*\]|%[^\n]*', "", body)
    first = clean.split("|", 1)[0]
    if not re.search(r"[A-Ga-gz]", first):
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        part = os.path.join(tmp, "pickup.mid")
        abc2midi("".join(lines[: k + 1]) + first + "|]\n", part)
        return last_note_tick(mido.MidiFile(part))


def ryans_rounds(abc_text: str, dst: str) -> None:
    """One Ryan's Mammoth tune, played PLAYS times through, as a 4/4 MIDI file.

    abc2midi (music21 when abc2midi is missing) writes the tune once with its repeats
    expanded, starting with the pickup (if any) and no bar lines (MIDI bars are
    implied from tick 0). Here:
    - the pickup p (shorter than three quarters of a bar; a longer first bar is a
      full bar whose last notes are short) is completed by a rest of bar - p, so
      that the tune's first full bar starts at bar 1;
    - a round lasts the L whole bars after the pickup (L = the tune's length after
      the pickup, rounded up to whole bars, 1/8 beat tolerance); round k starts at
      k * L bars, so its pickup sounds in the last p ticks of round k - 1's last bar,
      whose notes there are cut (dropped, or shortened to end where the pickup
      starts), as players do between rounds;
    - the time signature is written as 4/4 (cut time, 2/2, has the same bar length).
    Events other than notes at tick 0 (tempo, key, program, text) are kept once;
    later ones are repeated with their round.
    """
    with tempfile.TemporaryDirectory() as tmp:
        once = os.path.join(tmp, "once.mid")
        if ABC2MIDI:
            abc2midi(abc_text, once)
            pickup, origin = pickup_ticks(abc_text), 1  # abc2midi starts at tick 1
        else:
            score = music21_abc(abc_text).expandRepeats()
            score.write("midi", fp=once)
            first = score.parts[0].getElementsByClass(music21.stream.Measure)[0]
            pickup, origin = round(first.duration.quarterLength * music21.defaults.ticksPerQuarter), 0
        midi = mido.MidiFile(once)
    tpb = midi.ticks_per_beat
    bar = 4 * tpb
    # the grid is 1/16 beat
    grid = max(1, tpb // 16)
    pickup = round(max(0, pickup - origin) / grid) * grid
    if pickup >= 3 * bar // 4:
        pickup = 0
    shift = (bar - pickup) % bar
    end = last_note_tick(midi) - origin
    bars = max(1, -(-(end - pickup - tpb // 8) // bar))
    period = bars * bar
    out = mido.MidiFile(type=midi.type, ticks_per_beat=tpb)
    for track in midi.tracks:
        events: list[tuple[int, int, mido.Message]] = []  # (tick, order, message)
        notes, fixed, later, open_notes, tick = [], [], [], {}, 0
        for msg in track:
            tick += msg.time
            if msg.type == "end_of_track":
                continue
            if msg.type == "note_on" and msg.velocity > 0:
                open_notes.setdefault((msg.channel, msg.note), []).append((tick, msg))
            elif msg.type in ("note_on", "note_off"):
                starts = open_notes.get((msg.channel, msg.note))
                if starts:
                    start, on = starts.pop(0)
                    notes.append((start, tick, on, msg))
            elif msg.is_meta and msg.type == "time_signature":
                fixed.append((tick, msg.copy(numerator=4, denominator=4)))
            elif tick == 0:
                fixed.append((tick, msg))
            else:
                later.append((tick, msg))
        for i, (at, msg) in enumerate(fixed):
            events.append((at, 0, msg))
        for k in range(PLAYS):
            base = shift + k * period
            # where the next round's pickup starts: this round's notes stop there
            cut = (k + 1) * period + shift if k + 1 < PLAYS else None
            for at, msg in later:
                events.append((base + at, 2, msg))
            for start, stop, on, off in notes:
                a, b = base + start, base + stop
                if cut is not None and pickup > 0:
                    if a >= cut:
                        continue
                    b = min(b, cut)
                events.append((a, 3, on))
                events.append((b, 1, off))
        events.sort(key=lambda e: (e[0], e[1]))
        new, last = mido.MidiTrack(), 0
        for at, _, msg in events:
            new.append(msg.copy(time=at - last))
            last = at
        new.append(mido.MetaMessage("end_of_track", time=0))
        out.tracks.append(new)
    out.save(dst)


def convert(job: tuple[str, str, str | None, str]) -> tuple[str, str | None]:
    """Convert one item to MIDI at `dst`; returns (dst, error message or None)."""
    dst, src, abc_text, how = job
    part = dst + ".part"
    warnings.simplefilter("ignore")
    try:
        if abc_text is None:
            converter.parse(CORPUS_DIR / src, forceSource=True).write("midi", fp=part)
        elif "rounds" in how:
            ryans_rounds(abc_text, part)
        elif how.startswith("abc2midi"):
            abc2midi(abc_text, part)
        else:
            music21_abc(abc_text).write("midi", fp=part)
        os.replace(part, dst)
        return dst, None
    except Exception as e:  # noqa: BLE001 - any failure just skips this file
        if os.path.exists(part):
            os.remove(part)
        return dst, f"{type(e).__name__}: {str(e)[:160]}"


def fetch(name: str, out: Path, limit: int | None, jobs: int) -> None:
    """Convert collection `name` into `out/name`."""
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


def write_sources(out: Path, names: list[str]) -> None:
    lines = [
        "# Corpora sources",
        "",
        "Generated by `scripts/fetch_corpus.py`; do not edit. These collections come from the",
        f"core corpus shipped inside the music21 Python package (version {music21.__version__},",
        "BSD-3-Clause software licence; the corpus itself has no single licence, see below).",
        "music21's corpus documentation: \"music21 does not own most of the music in the corpus -",
        "it has been licensed to us (or in a free license). It may not be free in all parts of",
        'the world, but to the best of our knowledge is true for the US."',
    ]
    for name in names:
        spec = COLLECTIONS[name]
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
    ap.add_argument(
        "--long-out",
        type=Path,
        default=Path("corpora-long"),
        help="output folder of the long collection (ryans)",
    )
    ap.add_argument("--only", choices=sorted(COLLECTIONS), help="fetch one collection only")
    ap.add_argument("--limit", type=int, help="at most N items per collection (for quick tests)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    args = ap.parse_args()
    start = time.perf_counter()
    names = [args.only] if args.only else list(COLLECTIONS)
    for long, out in ((False, args.out), (True, args.long_out)):
        chosen = [n for n in names if COLLECTIONS[n].get("long", False) == long]
        if not chosen:
            continue
        for name in chosen:
            fetch(name, out, args.limit, max(1, args.jobs))
        write_sources(out, [n for n in COLLECTIONS if COLLECTIONS[n].get("long", False) == long])
        print(f"wrote {out / 'SOURCES.md'}")
    print(f"total {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    sys.exit(main())
