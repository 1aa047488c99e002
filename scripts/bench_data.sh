#!/usr/bin/env bash
# Encoding throughput side by side, one core each, over the same MIDI files:
# museformer (read + parse + REMIGEN2 encode) against MidiTok's REMI on symusic.
# Usage: scripts/bench_data.sh DIR [REPEAT]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-corpora}
repeat=${2:-3}
ours=$(taskset -c 0 target/release/museformer data bench "$dir" --repeat "$repeat")
theirs=$(.venv/bin/python scripts/bench_data.py "$dir" --repeat "$repeat")
python3 - "$ours" "$theirs" "$dir" <<'PY'
import json, platform, subprocess, sys
ours, theirs, d = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
print(f"encoding throughput over {d} (one core, best of repeats; {cpu})")
print(f"| tool | files | failed | tokens | seconds | files/s | tokens/s |")
print(f"| --- | --- | --- | --- | --- | --- | --- |")
for r in (ours, theirs):
    print(f"| {r['tool']} | {r['files']} | {r['failed']} | {r['tokens']} | {r['seconds']:.3f} | {r['files_per_sec']:.0f} | {r['tokens_per_sec']:.0f} |")
print(f"speed-up per file: {ours['files_per_sec'] / theirs['files_per_sec']:.1f}x")
PY
