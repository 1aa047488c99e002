//! `scripts/convert_release_checkpoint.py`: the original release's fairseq checkpoint
//! becomes a run folder that `museformer eval` and `generate` read, and our model on
//! the converted weights gives the release's logits.
//!
//! The test makes small synthetic checkpoints with the release's state-dict names
//! and shapes (shared modules twice, as a real state dict has them) and computes
//! their logits with a PyTorch forward pass written from the release's code
//! (`REFERENCE`: its embeddings, beat ids, summary tokens, v2s1 attention, masks
//! from its range commands), not from ours. Our logits on the converted run must
//! match token string by token string within 1e-4.

mod common;

use common::*;
use museformer::model::layout::{Coarse, LayoutConfig};
use museformer::model::museformer::SummaryStream;
use museformer::model::{bar_beat_indices, Batch};
use museformer::registry::ModelSection;
use museformer::run::load_run;
use museformer::tokens::release::release_ids;
use museformer::tokens::vocab::BOS_ID;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use tch::{Device, Kind, Tensor};

/// Eight bars (one a lone `b-1`, the last unfinished), every token in both
/// vocabularies, so that the fine- and coarse-grained bars of both layouts matter.
const PIECE: &str = "t-20 o-0 i-0 p-60 d-4 v-20 o-8 i-25 p-64 d-2 v-16 b-1 \
    o-0 i-0 p-62 d-4 v-20 o-12 i-0 p-65 d-8 v-24 b-1 \
    t-22 o-4 i-43 p-36 d-10 v-20 b-1 \
    b-1 \
    o-0 i-0 p-60 d-4 v-20 o-32 i-48 p-67 d-6 v-18 b-1 \
    o-16 i-80 p-72 d-3 v-25 b-1 \
    o-0 i-128 p-170 d-1 v-30 o-2 i-0 p-60 d-4 v-20 b-1 \
    t-25 o-0 i-0 p-59 d-4 v-20";

/// The logit the converter gives our tokens the release lacks (its default).
const ABSENT_LOGIT: f64 = -1e4;

/// Runs the project's Python with `args`.
fn py(args: &[&str]) -> Output {
    std::process::Command::new(python())
        .args(args)
        .output()
        .unwrap()
}

/// Runs the converter on `checkpoint` into `out` with the dataset file `dataset`.
fn convert(checkpoint: &Path, out: &Path, dataset: &Path, extra: &[&str]) -> Output {
    let script = root().join("scripts/convert_release_checkpoint.py");
    let bin = env!("CARGO_BIN_EXE_museformer");
    let args = [
        arg(&script),
        arg(checkpoint),
        "--out",
        arg(out),
        "--dataset",
        arg(dataset),
        "--museformer",
        bin,
    ];
    py(&[&args[..], extra].concat())
}

/// Writes the synthetic checkpoints `dir/<variant>.pt` and the reference logits
/// `dir/<variant>.logits.safetensors` of the variants our model must reproduce.
fn make_checkpoints(dir: &Path) {
    let script = write(dir, "reference.py", REFERENCE.as_bytes());
    let dict = root().join("src/tokens/release/dict.txt");
    let scripts = root().join("scripts");
    let out = py(&[arg(&script), arg(dir), arg(&dict), PIECE, arg(&scripts)]);
    assert!(
        out.status.success(),
        "the reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A prepared dataset on the release's grid whose songs are LMD6-normalized (so
/// every token they hold is in the release's dictionary); returns its file.
fn lmd6_dataset(dir: &Path) -> PathBuf {
    write_songs(&dir.join("midi"), 0..8, |i| {
        (format!("s{i:02}.mid"), 3 + u64::from(i % 3))
    });
    let yaml = format!(
        "name: tiny-lmd6\nmidi_dir: {0}/midi\nout: {0}/data\n\
         normalize: {{only_4_4: true, lmd6: true, melody: auto}}\n\
         encoding: {{ignore_ts: true, inst_order: lmd6, remove_empty_bars: true, pos_per_beat: 16}}\n\
         split:\n  hash: {{seed: 0, ratios: [2, 1, 1]}}\n",
        dir.display()
    );
    let data = write(dir, "lmd6.yaml", yaml.as_bytes());
    run(&["data", "prepare", arg(&data)]);
    data
}

/// Our logits on `<s> PIECE` from the converted run against the reference's on
/// `</s> PIECE`, token string by token string: the largest difference over the
/// tokens both vocabularies hold, and the largest distance of the others' logits
/// from [`ABSENT_LOGIT`].
fn compare(run_dir: &Path, reference: &Path) -> (f64, f64) {
    let run = load_run(run_dir, Some(Device::Cpu)).unwrap();
    let vocab = &run.vocab;
    let mut ids = vec![BOS_ID];
    ids.extend(
        museformer::tokens::parse_tokens(PIECE, vocab)
            .unwrap()
            .iter()
            .map(|&t| vocab.id(t)),
    );
    let (bars, beats) = bar_beat_indices(&ids, vocab);
    let ids: Vec<i64> = ids.iter().map(|&x| x as i64).collect();
    let batch = Batch::single(&ids, &bars, &beats, Device::Cpu);
    let ours = tch::no_grad(|| run.model.forward(&batch, false))
        .squeeze_dim(0)
        .to_kind(Kind::Double);
    let theirs: HashMap<String, Tensor> = Tensor::read_safetensors(reference)
        .unwrap()
        .into_iter()
        .collect();
    let theirs = &theirs["logits"];
    assert_eq!(ours.size()[0], theirs.size()[0], "one row per input token");
    let release = release_ids(vocab).unwrap();
    let (mut mine, mut its, mut absent) = (Vec::new(), Vec::new(), Vec::new());
    for (id, r) in release.iter().enumerate() {
        match r {
            Some(r) => {
                mine.push(id as i64);
                its.push(*r as i64);
            }
            None => absent.push(id as i64),
        }
    }
    let cols = |t: &Tensor, c: &[i64]| t.index_select(1, &Tensor::from_slice(c));
    let diff = (cols(&ours, &mine) - cols(theirs, &its))
        .abs()
        .max()
        .double_value(&[]);
    let off = (cols(&ours, &absent) - ABSENT_LOGIT)
        .abs()
        .max()
        .double_value(&[]);
    (diff, off)
}

/// The converted weights hold exactly the parameters our model has.
fn assert_names_are_the_models(run_dir: &Path) {
    let run = load_run(run_dir, Some(Device::Cpu)).unwrap();
    let vs = tch::nn::VarStore::new(Device::Cpu);
    museformer::registry::build(&vs.root(), &run.cfg.model, run.vocab.len() as i64).unwrap();
    let mut want: Vec<String> = vs.variables().into_keys().collect();
    let file = run_dir.join("checkpoints/best/model.safetensors");
    let mut got: Vec<String> = Tensor::read_safetensors(&file)
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
}

fn museformer_section(run_dir: &Path) -> museformer::model::museformer::MuseformerConfig {
    match load_run(run_dir, Some(Device::Cpu))
        .unwrap()
        .cfg
        .model
        .section
    {
        ModelSection::Museformer(m) => m,
        other => panic!("converted to a {}", other.kind()),
    }
}

#[test]
fn converted_checkpoints_give_the_releases_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_checkpoints(dir);
    let data = lmd6_dataset(dir);
    let absent = release_ids(&museformer::tokens::Vocab::new(16))
        .unwrap()
        .iter()
        .filter(|r| r.is_none())
        .count();
    for variant in ["release", "separate"] {
        let run_dir = dir.join("runs").join(variant);
        let out = convert(&dir.join(format!("{variant}.pt")), &run_dir, &data, &[]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{variant}: the converter failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_contains(
            &stdout,
            &[&format!(
                "{absent} of our tokens are not in the release's dictionary"
            )],
        );
        assert_names_are_the_models(&run_dir);
        let (diff, off) = compare(&run_dir, &dir.join(format!("{variant}.logits.safetensors")));
        println!("{variant}: max |logit difference| {diff:.3e}; absent tokens off {off:.3e}");
        assert!(diff < 1e-4, "{variant}: logits differ by up to {diff}");
        assert!(
            off < 1e-4 * ABSENT_LOGIT.abs(),
            "{variant}: absent tokens' logits are {off} off"
        );
    }
    // The release's arch and scheme: shared summary stream, the default layout.
    let release = museformer_section(&dir.join("runs/release"));
    assert_eq!(release.summary_stream, SummaryStream::Shared);
    assert_eq!(release.layout, LayoutConfig::default());
    // Layer norms and FFN of their own; bars 1 and 3 back fine, 2, 4 and 5 coarse.
    let separate = museformer_section(&dir.join("runs/separate"));
    assert_eq!(separate.summary_stream, SummaryStream::Separate);
    assert_eq!(
        separate.layout,
        LayoutConfig {
            fine_grained_bars: vec![1, 3],
            coarse: Coarse::Ranges(vec![(2, 2), (4, 5)]),
        }
    );
    // The commands read the run folder.
    let release = dir.join("runs/release");
    let eval = run(&["eval", arg(&release), "--lengths", "16,64"]);
    assert_contains(&eval, &["first     16 tokens: PPL"]);
    generate(&release, &dir.join("gen"), 1, 60);
    assert!(dir.join("gen/piece-000.mid").exists());
}

#[test]
fn the_converter_refuses_what_our_model_cannot_express() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_checkpoints(dir);
    let lmd6 = root().join("experiments/data/lmd6.yaml");
    for (variant, reason) in [
        ("bad-unshared", "sum_query_proj.weight differs from"),
        (
            "bad-unexpected",
            "unexpected: decoder.layers.0.self_attn.sum_key2_proj.bias",
        ),
        ("bad-missing", "missing: decoder.layers.1.reg_fc1.bias"),
        (
            "bad-shape",
            "reg_fc1.weight has shape [64, 32]; the settings give [48, 32]",
        ),
        ("bad-scheme", "con2con reaches every earlier bar"),
        (
            "bad-overlap",
            "both fine-grained (con2con) and coarse-grained (con2sum)",
        ),
        ("bad-bos-bar", "take_bos_as_bar"),
    ] {
        let out_dir = dir.join("runs").join(variant);
        let out = convert(&dir.join(format!("{variant}.pt")), &out_dir, &lmd6, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{variant} was converted");
        assert_contains(&stderr, &["error: ", reason]);
        assert!(!out_dir.exists(), "{variant}: a run folder was left behind");
    }
    // A dataset on another grid, and a run folder that is already there.
    let grid12 = write(
        dir,
        "grid12.yaml",
        b"name: x\nmidi_dir: m\nout: o\nencoding: {pos_per_beat: 12}\n",
    );
    let release = dir.join("release.pt");
    let out = convert(&release, &dir.join("runs/x"), &grid12, &[]);
    assert!(!out.status.success());
    assert_contains(
        &String::from_utf8_lossy(&out.stderr),
        &["encodes 12 positions per quarter note"],
    );
    let taken = dir.join("runs/taken");
    write(&taken, "keep.txt", b"mine");
    let out = convert(&release, &taken, &lmd6, &[]);
    assert!(!out.status.success());
    assert_contains(
        &String::from_utf8_lossy(&out.stderr),
        &["is not empty (pass --force"],
    );
    assert!(taken.join("keep.txt").exists());
    let out = convert(&release, &taken, &lmd6, &["--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!taken.join("keep.txt").exists() && taken.join("config.yaml").exists());
}

/// The release's Museformer in plain PyTorch (see the module comment), run by
/// [`make_checkpoints`].
const REFERENCE: &str = r###"# The release's Museformer (microsoft/muzic museformer/, arch museformer_lm_v2s1) in
# plain PyTorch, written from its code and not from ours: synthetic checkpoints with
# its state-dict names and shapes, and its logits on one piece (float64).
#
#   python reference.py OUT DICT TOKENS
#
# writes OUT/<variant>.pt (fairseq-like: `args`, `model`, `extra_state`) for every
# variant, and OUT/<variant>.logits.safetensors (`logits`, (n, release vocabulary)) for
# those our model must reproduce, on `</s> TOKENS` (the release's input).
#
# The prefix `</s>` follows ours (docs/museformer.md), which is the release's
# inference path (construct_bar_chunk_info with begin_idx=1, what its generator runs):
# bar id 0, it attends only to itself, no summary reads it. The release's training
# pipeline (ChunkSequenceDataset with offset 0) puts `</s>` into the first bar
# instead: bar id 1, read by the first summary, and its row sees the whole first bar.
import argparse
import math
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, sys.argv[4])  # scripts/: the converter's safetensors writer
from convert_release_checkpoint import write_safetensors  # noqa: E402

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def read_dict(path):
    return SPECIALS + [l.split()[0] for l in Path(path).read_text().splitlines() if l.strip()]


# ---- the release's settings: arch museformer_lm_v2s1 as fairseq saves its args


def release_args(**over):
    a = dict(
        arch="museformer_lm_v2s1", task="museformer_language_modeling",
        attention_mode="v2s1", attention_impl="blocksparse", block_size=64,
        num_layers=2, attention_embed_dim=32, num_attention_heads=(4,), ffn_embed_dim=64,
        token_embed_dim=32, bar_abs_pos_embed_dim=16, beat_abs_pos_embed_dim=8,
        normalize_before=True, dropout=0.1, attention_dropout=0.1, activation_fn="gelu",
        no_final_norm=False, take_bos_as_bar=False, beat_mask_ts=False, eob_token="b-1",
        eoc_token="e-1", chunking_scheme="bar_aware", num_summary_tokens_each_chunk=1,
        share_input_output_embed=False, no_scale_embedding=False, layernorm_embedding=False,
        use_token_in_chunk_abs_pos=False, use_token_abs_pos=False,
        use_bar_abs_pos=True, max_bar_abs_pos=512, use_beat_abs_pos=True, max_beat_abs_pos=64,
        concat_reg_embeddings=True, proj_reg_embeddings=True,
        concat_sum_embeddings=True, proj_sum_embeddings=True,
        attn_query_proj_bias=True, attn_key_proj_bias=True, attn_value_proj_bias=True,
        attn_out_proj_bias=True, add_different_kqv_bias_for_sum_and_reg=True,
        # What the arch function sets but no module reads (it reads
        # attn_sum_key2_proj_bias, absent): no key2/value2 bias.
        sum_key2_proj_bias=True, sum_value2_proj_bias=True,
        share_layernorm_embedding=True, attn_share_query_proj=True, attn_share_key_proj=True,
        attn_share_value_proj=True, attn_share_out_proj=True,
        share_self_attention_layer_norm=True, share_ffn=True, share_final_layer_norm=True,
        # The training command's scheme (b1248).
        con2con=((((-2, 0), -4, -8, -12, -16, -24, -32),),), con2con_self="full",
        con2con_causal=True,
        con2sum=((((None, -32), (-31, -24), (-23, -16), (-15, -12), (-11, -8), (-7, -4), -3),),),
        con2sum_self="none", sum2con=((None,),), sum2con_self="full",
        sum2sum=((None,),), sum2sum_self="full",
        pref2pref_mode="lt", sum2pref_mode="none", pref2sum_mode="none",
        con2pref_mode="full", pref2con_mode="none",
        tokens_per_sample=100000, truncate_train=15360, lr=[5e-4], fp16=True,
    )
    a.update(over)
    return argparse.Namespace(**a)


# ---- a synthetic state dict with the release's names and shapes


def make_state(args, vocab, gen, separate=False, dtype=torch.float16):
    d, f, te = args.attention_embed_dim, args.ffn_embed_dim, args.token_embed_dim
    be, bt = args.bar_abs_pos_embed_dim, args.beat_abs_pos_embed_dim

    def rnd(*shape, std=1.0, mean=0.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * std + mean).to(dtype)

    s = {}
    emb = rnd(vocab, te)
    emb[1] = 0  # nn.Embedding's padding row
    s["decoder.embed_regular_tokens.weight"] = emb
    summ = rnd(2, te)
    summ[0] = 0
    s["decoder.embed_summary_tokens.weight"] = summ
    if getattr(args, "learned_bar_abs_pos", False):
        s["decoder.embed_bar_abs_pos.weight"] = rnd(args.max_bar_abs_pos + 1, be)
    if getattr(args, "learned_beat_abs_pos", False):
        s["decoder.embed_beat_abs_pos.weight"] = rnd(args.max_beat_abs_pos + 1, bt)
    s["decoder.reg_proj_embeddings.weight"] = rnd(d, te + be + bt, std=(te + be + bt) ** -0.5)
    s["decoder.reg_proj_embeddings.bias"] = rnd(d, std=0.3)
    s["decoder.sum_proj_embeddings.weight"] = rnd(d, te + be, std=(te + be) ** -0.5)
    s["decoder.sum_proj_embeddings.bias"] = rnd(d, std=0.3)

    def ln():
        return rnd(d, std=0.2, mean=1.0), rnd(d, std=0.2)

    for l in range(args.num_layers):
        p = f"decoder.layers.{l}."
        a = p + "self_attn."
        for proj in ("query", "key", "value"):  # registration order of the release
            for who in ("sum", "reg"):
                s[f"{a}{who}_{proj}_bias"] = rnd(d, std=0.3)
        for proj in ("query", "key", "value", "out"):
            s[f"{a}reg_{proj}_proj.weight"] = rnd(d, d, std=d ** -0.5)
        s[f"{a}reg_out_proj.bias"] = rnd(d, std=0.3)
        # Shared modules appear twice in a state dict: the same tensors.
        for proj in ("query", "key", "value", "out"):
            s[f"{a}sum_{proj}_proj.weight"] = s[f"{a}reg_{proj}_proj.weight"]
        s[f"{a}sum_out_proj.bias"] = s[f"{a}reg_out_proj.bias"]
        s[f"{a}sum_key2_proj.weight"] = rnd(d, d, std=d ** -0.5)
        s[f"{a}sum_value2_proj.weight"] = rnd(d, d, std=d ** -0.5)
        for who in ("reg", "sum"):
            if who == "sum" and not separate:
                for name in ("self_attn_layer_norm", "fc1", "fc2", "final_layer_norm"):
                    for t in ("weight", "bias"):
                        s[f"{p}sum_{name}.{t}"] = s[f"{p}reg_{name}.{t}"]
                continue
            w, b = ln()
            s[f"{p}{who}_self_attn_layer_norm.weight"], s[f"{p}{who}_self_attn_layer_norm.bias"] = w, b
            s[f"{p}{who}_fc1.weight"] = rnd(f, d, std=d ** -0.5)
            s[f"{p}{who}_fc1.bias"] = rnd(f, std=0.3)
            s[f"{p}{who}_fc2.weight"] = rnd(d, f, std=f ** -0.5)
            s[f"{p}{who}_fc2.bias"] = rnd(d, std=0.3)
            w, b = ln()
            s[f"{p}{who}_final_layer_norm.weight"], s[f"{p}{who}_final_layer_norm.bias"] = w, b
    w, b = ln()
    s["decoder.layer_norm.weight"], s["decoder.layer_norm.bias"] = w, b
    s["decoder.output_projection.weight"] = rnd(vocab, d, std=d ** -0.5)
    return s


# A class of a package that is not installed where the converter runs (fairseq keeps
# such objects in `extra_state`): the converter must read the checkpoint anyway.
_fake = types.ModuleType("fairseq_meters_stub")


class StopwatchMeter:
    def __init__(self):
        self.sum = 1.5


StopwatchMeter.__module__ = "fairseq_meters_stub"
_fake.StopwatchMeter = StopwatchMeter
sys.modules["fairseq_meters_stub"] = _fake


def save(path, args, state):
    torch.save({"args": args, "model": state, "optimizer_history": [],
                "extra_state": {"train_meters": {"wall": StopwatchMeter()}, "epoch": 3}}, path)


# ---- the release's forward pass


def construct_types(symbols):
    """CompoundDictionary.construct_types: the id range of each token kind."""
    import re
    type_dict, type_token, begin = {}, None, None
    for idx, symbol in enumerate(symbols):
        m = re.fullmatch(r"([a-z]+)\-\d+", symbol)
        if m is None:
            if begin is not None:
                type_dict[type_token] = (begin, idx)
            type_token, begin = None, None
        else:
            now = m.group(1)
            if begin is not None:
                if type_token == now:
                    continue
                type_dict[type_token] = (begin, idx)
            type_token, begin = now, idx
    if begin is not None:
        type_dict[type_token] = (begin, len(symbols))
    return type_dict


def get_beat_ids(ids, types_):
    """add_beat_dataset.get_beat_ids (tempo tokens reset the beat)."""
    o0, o1 = types_["o"]
    t0, t1 = types_["t"]
    b0, b1 = types_["b"]
    out, cur = [], 0
    for x in ids:
        if o0 <= x < o1:
            cur = x - (o0 - 1)
            v = cur
        else:
            v = cur
        if t0 <= x < t1 or b0 <= x < b1 or x < 4:
            v = 0
        out.append(v)
    return out


def sinusoids(ids, dim):
    """SinusoidalEmbedding (tensor2tensor variant), padding row 0 zero."""
    half = dim // 2
    emb = math.log(10000) / (half - 1)
    freq = torch.exp(torch.arange(half, dtype=torch.float64) * -emb)
    table_rows = max(ids) + 1 if ids else 1
    ang = torch.arange(table_rows, dtype=torch.float64)[:, None] * freq[None]
    table = torch.cat([torch.sin(ang), torch.cos(ang)], dim=1)
    if dim % 2 == 1:
        table = torch.cat([table, torch.zeros(table_rows, 1, dtype=torch.float64)], dim=1)
    table[0] = 0
    return table[torch.tensor(ids, dtype=torch.long)]


def get_item(schemes, idx):
    if schemes is None:
        return None
    if len(schemes) > idx:
        return schemes[idx]
    return schemes[0]


def generate_mask(command, n):
    """block_selection_template_manager.generate_mask: (query chunk, key chunk)."""
    if command is None:
        return torch.zeros(n, n, dtype=torch.bool)
    template = torch.ones(n, n, dtype=torch.bool)
    mask = torch.zeros(n, n, dtype=torch.bool)
    for item in command:
        if isinstance(item, int):
            item = (item, item + 1)
        begin, end = item
        begin = -n + 1 if begin is None else begin
        end = n if end is None else end
        if begin >= end:
            continue
        mask |= torch.triu(template, begin) & torch.tril(template, end - 1)
    return mask


def select_self(sel, mode):
    sel = sel.clone()
    eye = torch.eye(sel.shape[0], dtype=torch.bool)
    if mode == "none":
        sel[eye] = False
    elif mode in ("full", "lt"):
        sel[eye] = True
    return sel


def forward(args, state, symbols, tokens):
    W = {k: v.to(torch.float64) for k, v in state.items()}
    index = {s: i for i, s in enumerate(symbols)}
    ids = [2] + [index[t] for t in tokens]  # `</s>` starts a piece
    n = len(ids)
    eob = index[args.eob_token]
    # get_bar_chunk_points(begin_idx=1): a bar ends after its `b-1`.
    points = [1] + [i + 1 for i, x in enumerate(ids) if x == eob]
    complete = ids[-1] == eob
    if not complete:
        points.append(n)
    ranges = list(zip(points[:-1], points[1:]))
    chunks = len(ranges)
    done = chunks if complete else chunks - 1  # num_complete_chunks: bars with a summary
    bar_ids = [0] * n
    for k, (a, b) in enumerate(ranges):
        for t in range(a, b):
            bar_ids[t] = k + 1
    beat_ids = get_beat_ids(ids, construct_types(symbols))

    te = args.token_embed_dim
    scale = math.sqrt(te)
    learned_bar = getattr(args, "learned_bar_abs_pos", False)
    learned_beat = getattr(args, "learned_beat_abs_pos", False)

    def bar_embed(b):
        if learned_bar:
            return W["decoder.embed_bar_abs_pos.weight"][torch.tensor(b)]
        return sinusoids(b, args.bar_abs_pos_embed_dim)

    def beat_embed(b):
        if learned_beat:
            return W["decoder.embed_beat_abs_pos.weight"][torch.tensor(b)]
        return sinusoids(b, args.beat_abs_pos_embed_dim)

    def linear(x, name, bias=True):
        y = x @ W[name + ".weight"].T
        return y + W[name + ".bias"] if bias else y

    reg = torch.cat([W["decoder.embed_regular_tokens.weight"][torch.tensor(ids)] * scale,
                     bar_embed(bar_ids), beat_embed(beat_ids)], dim=-1)
    reg = linear(reg, "decoder.reg_proj_embeddings")
    summ = torch.cat([W["decoder.embed_summary_tokens.weight"][torch.ones(done, dtype=torch.long)] * scale,
                      bar_embed(list(range(1, done + 1)))], dim=-1)
    summ = linear(summ, "decoder.sum_proj_embeddings")

    # The layer's masks (True: attended), from the scheme of layer 0, head 0.
    def command(name):
        return get_item(get_item(getattr(args, name), 0), 0)

    rr = torch.zeros(n, n, dtype=torch.bool)
    sel = select_self(generate_mask(command("con2con"), chunks), args.con2con_self)
    for i, (qa, qb) in enumerate(ranges):
        for j, (ka, kb) in enumerate(ranges):
            if sel[i, j]:
                rr[qa:qb, ka:kb] = True
    rr[1:, 1:] &= torch.ones(n - 1, n - 1, dtype=torch.bool).tril()  # con2con_causal
    rr[0, 0] = True  # pref2pref `lt`, one prefix token: itself (and nothing else; see top)
    rr[1:, 0] = True  # con2pref `full`
    rs = torch.zeros(n, done, dtype=torch.bool)
    sel = select_self(generate_mask(command("con2sum"), chunks), args.con2sum_self)[:, :done]
    for i, (qa, qb) in enumerate(ranges):
        for j in range(done):
            if sel[i, j]:
                rs[qa:qb, j] = True
    sr = torch.zeros(done, n, dtype=torch.bool)
    sel = select_self(generate_mask(command("sum2con"), done), args.sum2con_self)
    for i in range(done):
        for j, (ka, kb) in enumerate(ranges[:done]):
            if sel[i, j]:
                sr[i, ka:kb] = True
    ss = select_self(generate_mask(command("sum2sum"), done), args.sum2sum_self)

    h = args.num_attention_heads[0]
    d = args.attention_embed_dim
    dh = d // h

    def attend(q, k, v, mask):
        q, k, v = (x.view(x.shape[0], h, dh).transpose(0, 1) for x in (q, k, v))
        scores = (q @ k.transpose(1, 2)) * dh ** -0.5
        scores = scores.masked_fill(~mask[None], float("-inf"))
        return (scores.softmax(-1) @ v).transpose(0, 1).reshape(-1, d)

    def ln(x, name):
        return F.layer_norm(x, (d,), W[name + ".weight"], W[name + ".bias"], 1e-5)

    for l in range(args.num_layers):
        p = f"decoder.layers.{l}."
        a = p + "self_attn."
        s_in, r_in = ln(summ, p + "sum_self_attn_layer_norm"), ln(reg, p + "reg_self_attn_layer_norm")
        reg_k = r_in @ W[a + "reg_key_proj.weight"].T + W[a + "reg_key_bias"]
        reg_v = r_in @ W[a + "reg_value_proj.weight"].T + W[a + "reg_value_bias"]
        sum_q = s_in @ W[a + "sum_query_proj.weight"].T + W[a + "sum_query_bias"]
        sum_k = s_in @ W[a + "sum_key_proj.weight"].T + W[a + "sum_key_bias"]
        sum_v = s_in @ W[a + "sum_value_proj.weight"].T + W[a + "sum_value_bias"]
        # Summarization: keys [summaries; tokens] under [ss | sr].
        sum_x2 = attend(sum_q, torch.cat([sum_k, reg_k]), torch.cat([sum_v, reg_v]),
                        torch.cat([ss, sr], dim=1))
        k2 = sum_x2 @ W[a + "sum_key2_proj.weight"].T
        v2 = sum_x2 @ W[a + "sum_value2_proj.weight"].T
        reg_q = r_in @ W[a + "reg_query_proj.weight"].T + W[a + "reg_query_bias"]
        # Aggregation: keys [summaries' key2; tokens] under [rs | rr].
        reg_o = attend(reg_q, torch.cat([k2, reg_k]), torch.cat([v2, reg_v]),
                       torch.cat([rs, rr], dim=1))
        reg = reg + linear(reg_o, a + "reg_out_proj")
        summ = summ + linear(sum_x2, a + "sum_out_proj")

        def ffn(x, who):
            y = linear(ln(x, f"{p}{who}_final_layer_norm"), f"{p}{who}_fc1")
            return x + linear(F.gelu(y), f"{p}{who}_fc2")

        reg, summ = ffn(reg, "reg"), ffn(summ, "sum")
    return ln(reg, "decoder.layer_norm") @ W["decoder.output_projection.weight"].T


def main():
    out, dict_path, tokens = Path(sys.argv[1]), sys.argv[2], sys.argv[3].split()
    symbols = read_dict(dict_path)
    gen = torch.Generator().manual_seed(12)
    base = release_args()
    variants = {}
    # The release's arch and scheme, float16 weights (the release trains with --fp16).
    variants["release"] = (base, make_state(base, len(symbols), gen), True)
    # Summaries with their own layer norms and FFN, learned positions, another scheme:
    # fine-grained bars 1 and 3 back, summaries of bars 2, 4 and 5 back, none further.
    other = release_args(
        con2con=((((-1, 0), -3),),), con2sum=((((-5, -3), -2),),),
        share_self_attention_layer_norm=False, share_ffn=False, share_final_layer_norm=False,
        learned_bar_abs_pos=True, learned_beat_abs_pos=True, max_bar_abs_pos=20,
    )
    variants["separate"] = (other, make_state(other, len(symbols), gen, separate=True,
                                              dtype=torch.float32), True)
    # What the converter must refuse.
    st = make_state(base, len(symbols), gen)
    st["decoder.layers.1.self_attn.sum_query_proj.weight"] = st[
        "decoder.layers.1.self_attn.sum_query_proj.weight"].clone() + 0.5
    variants["bad-unshared"] = (base, st, False)
    st = make_state(base, len(symbols), gen)
    st["decoder.layers.0.self_attn.sum_key2_proj.bias"] = torch.zeros(32)
    variants["bad-unexpected"] = (base, st, False)
    st = make_state(base, len(symbols), gen)
    del st["decoder.layers.1.reg_fc1.bias"], st["decoder.layers.1.sum_fc1.bias"]
    variants["bad-missing"] = (base, st, False)
    variants["bad-shape"] = (release_args(ffn_embed_dim=48), make_state(base, len(symbols), gen), False)
    unbounded = release_args(con2con=((((None, 0),),),), con2sum=((None,),))
    variants["bad-scheme"] = (unbounded, make_state(base, len(symbols), gen), False)
    overlap = release_args(con2sum=((((None, -1),),),))
    variants["bad-overlap"] = (overlap, make_state(base, len(symbols), gen), False)
    variants["bad-bos-bar"] = (release_args(take_bos_as_bar=True), make_state(base, len(symbols), gen), False)
    for name, (args, state, good) in variants.items():
        save(out / f"{name}.pt", args, state)
        if good:
            logits = forward(args, state, symbols, tokens)
            write_safetensors(out / f"{name}.logits.safetensors", {"logits": logits.contiguous()})


if __name__ == "__main__":
    main()
"###;
