# museformer tasks. `just reproduce` runs the main job on the embedded default corpus;
# `just test` runs the test suite. Both set up what they need first.

set shell := ["bash", "-euo", "pipefail", "-c"]

# cargo finds libtorch in .venv/libtorch (see .cargo/config.toml), set up by `setup`.
bin := "target/release/museformer"

# List the recipes.
default:
    @just --list

# Create .venv with the pinned Python packages (idempotent).
setup:
    scripts/setup.sh

# Build the release binary, tests and examples in one go (same profile and
# features, so `test` and `bench` reuse this build instead of compiling again).
build: setup
    cargo build --release --all-targets

# Fetch the default corpus (Bach chorales and folk tunes from music21) into corpora/.
corpus: setup
    .venv/bin/python scripts/fetch_corpus.py --out corpora

# Run the whole test suite (unit, integration, CLI, real-corpus round trips).
test: build corpus
    cargo test --release -- --test-threads 2

# The main job: the mini suite (the seven rows of Table 1 and the full-attention
# control, small, on the default corpus, CPU) into results/mini/; finished stages are cached (docs/reproduce.md).
# `just reproduce experiments/suites/paper.yaml` runs the paper's setting.
reproduce suite="experiments/suites/mini.yaml": build corpus
    {{bin}} reproduce {{suite}}

# Benchmarks; results go to docs/performance.md by hand.
bench: build corpus bench-data bench-structure bench-train bench-attention bench-models bench-decode

# Training and generation tokens/s of the small Transformer on the default corpus.
bench-train: build corpus
    scripts/bench_train.sh

# Figure 4 on the CPU: peak memory and time of a training step of Museformer and
# its full-attention counterpart (fused kernel and explicit scores), 1k to 16k tokens.
bench-attention: build corpus
    {{bin}} data prepare experiments/data/default.yaml
    {{bin}} bench attention --lengths 1024,2048,4096,8192,12288,16384 --repeats 2 --out results/attention-cpu

# Every model's training step time and peak memory at 1k, 4k and 8k tokens (CPU,
# small configs), in one run.
bench-models: build corpus
    {{bin}} data prepare experiments/data/default.yaml
    {{bin}} bench attention --lengths 1024,4096,8192 --repeats 2 --out results/bench-models --experiments experiments/museformer-small.yaml,experiments/transformer-small.yaml,experiments/music-transformer-small.yaml,experiments/transformer-xl-small.yaml,experiments/longformer-small.yaml,experiments/linear-transformer-small.yaml

# Museformer's decoding cache against recomputing the prefix, 4,096 tokens.
bench-decode: build corpus
    {{bin}} data prepare experiments/data/default.yaml
    {{bin}} bench decode --experiment experiments/museformer-small.yaml --length 4096

# Bar pairs per second of the similarity statistics, one core.
bench-structure: build corpus
    {{bin}} data prepare results/similarity/all-meters/dataset.yaml
    cargo build --release --example bench_similarity
    taskset -c 0 target/release/examples/bench_similarity data/all-meters --seconds 5

# Encoding throughput: ours against MidiTok REMI on symusic, over the same files,
# then the peak memory of `data prepare` on growing corpora.
bench-data: build corpus
    .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-bench.txt
    scripts/bench_data.sh corpora
    scripts/bench_prepare_memory.sh

# Format and lint.
lint:
    cargo fmt --all -- --check
    cargo clippy --release --all-targets -- -D warnings
