#!/usr/bin/env bash
# Peak memory (max RSS) and wall time of `museformer data prepare` on the default
# corpus repeated 1, 2, 4 and 8 times (copies under distinct names: every copy is
# read, parsed and encoded; the duplicates are then rejected). Memory should stay
# flat: files go through in fixed-size batches and only small per-song rows are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-corpora}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "| copies | files | max RSS (MB) | wall (s) |"
echo "| --- | --- | --- | --- |"
for n in 1 2 4 8; do
    for i in $(seq 1 "$n"); do
        [ -e "$work/midi/copy$i" ] || { mkdir -p "$work/midi"; cp -rl "$(realpath "$src")" "$work/midi/copy$i" 2>/dev/null || cp -r "$(realpath "$src")" "$work/midi/copy$i"; }
    done
    files=$(find "$work/midi" -iname '*.mid' | wc -l)
    /usr/bin/time -f '%M %e' -o "$work/time" target/release/museformer data prepare \
        --midi-dir "$work/midi" --out "$work/out" --force >/dev/null
    read -r rss wall < "$work/time"
    echo "| $n | $files | $((rss / 1024)) | $wall |"
done
