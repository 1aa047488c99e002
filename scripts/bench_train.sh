#!/usr/bin/env bash
# Training and generation throughput of the small full-attention Transformer on the
# default corpus (CPU unless a GPU is present): trains 60 steps in a scratch runs
# folder, then generates a 1,024-token piece with the decoding cache and one
# recomputing the prefix at every step. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/museformer
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
$bin data prepare experiments/data/default.yaml >/dev/null
out=$($bin train experiments/transformer-small.yaml --runs "$runs" --set train.steps=60 --set train.valid_every=0)
run=$(sed -n 's/^run folder: //p' <<<"$out")
train_tps=$(awk -F, 'NR > 11 { t += $5; s += $5 / $6 } END { printf "%.0f", t / s }' "$run/train.csv")
gen() { $bin generate "$run" --num 1 --max-len 1024 --seed 1 --out "$runs/gen$1" $2 | sed -n 's/.*, \([0-9]*\) tokens\/s$/\1/p'; }
cached=$(gen 1 "")
uncached=$(gen 2 --no-cache)
echo "| measure | tokens/s |"
echo "| --- | --- |"
echo "| training (steps 11-60, forward + backward + update) | $train_tps |"
echo "| generation, 1,024 tokens, with the decoding cache | $cached |"
echo "| generation, 1,024 tokens, recomputing the prefix | $uncached |"
