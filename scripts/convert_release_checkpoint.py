#!/usr/bin/env python3
"""Convert the original Museformer release's checkpoint into a museformer run folder.

The release (microsoft/muzic `museformer/`, fairseq, arch `museformer_lm_v2s1`)
publishes `checkpoint_best.pt`. This script reads it with torch alone (no fairseq)
and writes a run folder that `museformer eval` and `museformer generate` read:

    OUT/config.yaml                          model.kind: museformer at the checkpoint's sizes
    OUT/checkpoints/best/model.safetensors   the weights, float32, under our names
    OUT/conversion.json                      what was converted and how

Usage:

    .venv/bin/python scripts/convert_release_checkpoint.py checkpoint_best.pt \\
        --out runs/museformer-release [--dataset experiments/data/lmd6.yaml]
        [--dict src/tokens/release/dict.txt] [--museformer target/release/museformer]
        [--absent-logit -10000] [--name museformer-release] [--force]

What it does (docs/museformer.md, "Converting the release's checkpoint"):

- Reads the settings from the checkpoint's `args` (fairseq 0.10; `cfg.model` of newer
  fairseq), with the defaults the release's code applies where an argument is absent,
  and refuses settings our model cannot express (naming them).
- Maps the attention scheme (`con2con`, `con2sum`, ...) to our `layout`.
- Takes every tensor under its own name: our parameter names are the release's. With
  the default arch the summaries share the query, key, value and output projections,
  the layer norms and the feed-forward block with the music tokens, so those appear
  twice in the state dict (`sum_query_proj.weight` is `reg_query_proj.weight`, ...):
  the `reg_` copy is kept after checking that the `sum_` copy equals it. Shared
  projections that differ are an error; layer norms or feed-forward blocks that
  differ give `summary_stream: separate`, which keeps the `sum_` copies as well.
- Remaps the vocabulary by token string: for each of our ids, the release's row of
  the same token in `embed_regular_tokens` and `output_projection`. The release starts
  a piece with `</s>`, we with `<s>`: our input row of `<s>` is the release's `</s>`
  row. Our tokens the release lacks get a zero input row and an output row whose
  logit is the constant `--absent-logit` whatever the input (possible because the
  head reads a layer norm's output; see `absent_rows`), so they take no probability.

Any unexpected or missing tensor, or a tensor of the wrong shape, is an error.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import hashlib
import json
import math
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DICT = REPO / "src" / "tokens" / "release" / "dict.txt"
DEFAULT_DATASET = "experiments/data/lmd6.yaml"
# The release's grid (REMIGEN2 with 16 positions per quarter note).
RELEASE_POS_PER_BEAT = 16
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
BOS, PAD, EOS = 0, 1, 2


class ConversionError(Exception):
    """A checkpoint this script cannot convert, with the reason."""


# --------------------------------------------------------------------------------------
# Reading the checkpoint


class _Stub:
    """Stands in for a class of a package that is not installed (fairseq, omegaconf)."""

    def __init__(self, *args, **kwargs):
        self._args = args

    def __setstate__(self, state):
        self._state = state

    def __call__(self, *args, **kwargs):
        return _Stub(*args)


class _LenientUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return type(name, (_Stub,), {"__module__": "stub." + module})


_lenient_pickle = types.ModuleType("lenient_pickle")
_lenient_pickle.Unpickler = _LenientUnpickler
_lenient_pickle.load = pickle.load
_lenient_pickle.loads = pickle.loads


def load_checkpoint(path: Path):
    """The state dict and the settings (a dict) of a fairseq checkpoint."""
    if not path.is_file():
        raise ConversionError(f"{path} does not exist")
    try:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
        except (ModuleNotFoundError, AttributeError):
            # Classes of fairseq or omegaconf in the pickle (`extra_state`, `cfg`): stubs
            # stand in for them; tensors and an argparse.Namespace load as they are.
            ckpt = torch.load(
                path, map_location="cpu", weights_only=False, pickle_module=_lenient_pickle
            )
    except Exception as e:  # noqa: BLE001 - any reading error is the file's
        raise ConversionError(f"cannot read {path} as a torch checkpoint: {e}") from e
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ConversionError(
            f"{path} is not a fairseq checkpoint (a dict with `model`, the state dict, "
            f"and `args`); its top level is {type(ckpt).__name__}"
            + (f" with keys {sorted(ckpt)}" if isinstance(ckpt, dict) else "")
        )
    state = ckpt["model"]
    if not isinstance(state, dict) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ConversionError(f"{path}: `model` is not a state dict of tensors")
    return state, settings_of(ckpt, path)


def _as_dict(obj, what: str, path: Path) -> dict:
    if obj is None:
        return None
    if isinstance(obj, argparse.Namespace):
        return dict(vars(obj))
    if isinstance(obj, dict):
        return dict(obj)
    if isinstance(obj, _Stub):
        raise ConversionError(
            f"{path}: the settings are stored as {what} of a package that is not installed "
            f"({type(obj).__module__[5:]}); install it into the virtual environment "
            f"(`.venv/bin/python -m pip install omegaconf`) and run this again"
        )
    try:  # omegaconf's DictConfig, when omegaconf is installed
        from omegaconf import OmegaConf  # type: ignore

        return OmegaConf.to_container(obj, resolve=True)
    except Exception:  # noqa: BLE001
        pass
    try:
        return dict(obj)
    except Exception as e:  # noqa: BLE001
        raise ConversionError(f"{path}: cannot read the settings ({what}): {e}") from e


def settings_of(ckpt: dict, path: Path) -> dict:
    """The model's arguments: `args` (fairseq 0.10) or `cfg.model` (newer fairseq)."""
    args = _as_dict(ckpt.get("args"), "`args`", path)
    if args is None and ckpt.get("cfg") is not None:
        cfg = _as_dict(ckpt["cfg"], "`cfg`", path)
        args = _as_dict(cfg.get("model"), "`cfg.model`", path)
    if not args:
        raise ConversionError(
            f"{path} holds neither `args` nor `cfg.model`: the model's settings are unknown"
        )
    return args


# --------------------------------------------------------------------------------------
# The settings the release's code builds the model from

# `getattr(args, name, default)` as the release's modules read them, after the arch
# `museformer_lm_v2s1` (museformer_lm.py) filled in its defaults. Where the arch sets a
# name that the modules do not read (`sum_key2_proj_bias`), the modules' reading counts:
# the layer reads `attn_sum_key2_proj_bias`, absent by default, so the release's
# key2/value2 projections have no bias.
DEFAULTS = {
    "arch": "museformer_lm_v2s1",
    "attention_mode": "v2s1",
    "attention_embed_dim": 512,
    "num_layers": 4,
    "num_attention_heads": (8,),
    "normalize_before": True,
    "ffn_embed_dim": 2048,
    "dropout": 0.1,
    "attention_dropout": 0.1,
    "activation_fn": "gelu",
    "no_final_norm": False,
    "take_bos_as_bar": False,  # the task's argument, default False (always present)
    "beat_mask_ts": False,
    "eob_token": "b-1",
    "chunking_scheme": "bar_aware",
    "num_summary_tokens_each_chunk": 1,
    "max_summary_tokens": None,
    "share_input_output_embed": False,
    "no_scale_embedding": False,
    "layernorm_embedding": False,
    "token_embed_dim": None,  # attention_embed_dim
    "use_token_in_chunk_abs_pos": False,
    "use_token_abs_pos": False,
    "use_bar_abs_pos": True,
    "learned_bar_abs_pos": False,
    "max_bar_abs_pos": 512,
    "bar_abs_pos_embed_dim": 256,
    "valid_parts_for_bar_abs_pos": None,
    "use_beat_abs_pos": True,
    "learned_beat_abs_pos": False,
    "max_beat_abs_pos": 64,
    "beat_abs_pos_embed_dim": 128,
    "beat_abs_pos_padding_on_sum": False,
    "concat_reg_embeddings": True,
    "proj_reg_embeddings": True,
    "concat_sum_embeddings": True,
    "proj_sum_embeddings": True,
    "share_embedding_projection": False,
    "attn_query_proj_bias": True,
    "attn_key_proj_bias": True,
    "attn_value_proj_bias": True,
    "attn_out_proj_bias": True,
    "attn_sum_key2_proj_bias": False,
    "attn_sum_value2_proj_bias": False,
    "attn_share_key2_value2_proj_weight": False,
    "add_different_kqv_bias_for_sum_and_reg": True,
    "add_different_out_bias_for_sum_and_reg": False,
    # b1248_lm_scheme
    "con2con": ((((-2, 0), -4, -8, -12, -16, -24, -32),),),
    "con2con_self": "full",
    "con2con_causal": True,
    "con2sum": (
        (((None, -32), (-31, -24), (-23, -16), (-15, -12), (-11, -8), (-7, -4), -3),),
    ),
    "con2sum_self": "none",
    "sum2con": ((None,),),
    "sum2con_self": "full",
    "sum2sum": ((None,),),
    "sum2sum_self": "full",
    "pref2pref_mode": "lt",
    "sum2pref_mode": "none",
    "pref2sum_mode": "none",
    "con2pref_mode": "full",
    "pref2con_mode": "none",
}

SCHEME_KEYS = ("con2con", "con2sum", "sum2con", "sum2sum")


def setting(args: dict, name: str):
    value = args.get(name)
    if value is None:
        value = DEFAULTS[name]
    if name in SCHEME_KEYS and isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError) as e:
            raise ConversionError(f"args.{name} = {value!r} is not a tuple literal") from e
    return value


def require(args: dict, name: str, wanted, why: str):
    value = setting(args, name)
    ok = value in wanted if isinstance(wanted, (list, set)) else value == wanted
    if not ok:
        raise ConversionError(f"args.{name} is {value!r}; our Museformer needs {wanted!r} ({why})")


def heads_of(args: dict, layers: int) -> int:
    heads = setting(args, "num_attention_heads")
    if isinstance(heads, str):
        heads = ast.literal_eval(heads)
    if isinstance(heads, int):
        heads = (heads,)
    heads = tuple(heads)
    per_layer = heads * layers if len(heads) == 1 else heads
    if len(per_layer) != layers or len(set(per_layer)) != 1:
        raise ConversionError(
            f"args.num_attention_heads is {heads!r}: our model has one head count for every layer"
        )
    return per_layer[0]


def model_settings(args: dict) -> dict:
    """What our config needs, after refusing what our model cannot express."""
    arch = setting(args, "arch")
    if not str(arch).startswith("museformer_lm"):
        raise ConversionError(f"args.arch is {arch!r}, not a Museformer (museformer_lm_v2s1)")
    require(args, "attention_mode", "v2s1", "the release's v2s1 attention")
    require(args, "normalize_before", True, "a pre-norm Transformer")
    require(args, "no_final_norm", False, "a final layer norm")
    require(args, "activation_fn", "gelu", "exact GELU in the feed-forward block")
    require(args, "take_bos_as_bar", False, "`</s>` is a prefix, not a bar of its own")
    require(args, "beat_mask_ts", False, "beat ids reset on tempo tokens, as get_beat_ids does by default")
    require(args, "eob_token", "b-1", "bars end at `b-1`")
    require(args, "chunking_scheme", "bar_aware", "one chunk per bar")
    require(args, "num_summary_tokens_each_chunk", 1, "one summary token per bar")
    if setting(args, "max_summary_tokens") not in (None, 1):
        raise ConversionError("args.max_summary_tokens must be 1 (one summary token per bar)")
    require(args, "layernorm_embedding", False, "no layer norm on the embeddings")
    require(args, "use_token_in_chunk_abs_pos", False, "no in-bar token positions")
    require(args, "use_token_abs_pos", False, "no absolute token positions")
    require(args, "valid_parts_for_bar_abs_pos", None, "bar embeddings on tokens and summaries")
    require(args, "beat_abs_pos_padding_on_sum", False, "summaries have no beat embedding")
    for name in ("concat_reg_embeddings", "proj_reg_embeddings",
                 "concat_sum_embeddings", "proj_sum_embeddings"):
        require(args, name, True, "concatenated and projected embeddings")
    require(args, "share_embedding_projection", False, "separate token and summary input projections")
    require(args, "add_different_kqv_bias_for_sum_and_reg", True, "own query/key/value biases per stream")
    require(args, "add_different_out_bias_for_sum_and_reg", False, "one output-projection bias")
    require(args, "attn_share_key2_value2_proj_weight", False, "separate key2 and value2 projections")
    require(args, "attn_sum_key2_proj_bias", False, "no key2 bias")
    require(args, "attn_sum_value2_proj_bias", False, "no value2 bias")
    require(args, "attn_out_proj_bias", True, "an output-projection bias")

    layers = int(setting(args, "num_layers"))
    hidden = int(setting(args, "attention_embed_dim"))
    token = setting(args, "token_embed_dim")
    token = hidden if token is None else int(token)
    bar = int(setting(args, "bar_abs_pos_embed_dim")) if setting(args, "use_bar_abs_pos") else 0
    beat = int(setting(args, "beat_abs_pos_embed_dim")) if setting(args, "use_beat_abs_pos") else 0
    learned = set()
    if bar:
        learned.add(bool(setting(args, "learned_bar_abs_pos")))
    if beat:
        learned.add(bool(setting(args, "learned_beat_abs_pos")))
    if len(learned) > 1:
        raise ConversionError(
            "args.learned_bar_abs_pos and learned_beat_abs_pos differ: our model's bar and "
            "beat embeddings are both sinusoidal or both learned (model.positions.embedding)"
        )
    heads = heads_of(args, layers)
    if hidden % heads:
        raise ConversionError(f"attention_embed_dim {hidden} is not a multiple of {heads} heads")
    return {
        "layers": layers,
        "hidden": hidden,
        "heads": heads,
        "ffn": int(setting(args, "ffn_embed_dim")),
        "token_embed": token,
        "bar_embed": bar,
        "beat_embed": beat,
        "dropout": float(setting(args, "dropout")),
        "attention_dropout": float(setting(args, "attention_dropout")),
        "scale_embedding": not bool(setting(args, "no_scale_embedding")),
        "learned_positions": learned == {True},
        "max_bars": int(setting(args, "max_bar_abs_pos")),
        "max_beats": int(setting(args, "max_beat_abs_pos")),
        "layout": layout_of(args, layers, heads),
    }


# --------------------------------------------------------------------------------------
# The attention scheme as our layout

INF = math.inf


def _item(schemes, idx):
    """The release's `get_item`: per layer (or per head), one for all when there is one."""
    if schemes is None:
        return None
    if len(schemes) > idx:
        return schemes[idx]
    if len(schemes) == 1:
        return schemes[0]
    raise ConversionError(f"scheme {schemes!r} has no entry {idx}")


def scheme_command(args: dict, name: str, layers: int, heads: int):
    """The one range command of every layer and head (ours is the same everywhere)."""
    scheme = setting(args, name)
    commands = {
        repr(_item(_item(scheme, layer), head)) for layer in range(layers) for head in range(heads)
    }
    if len(commands) != 1:
        raise ConversionError(
            f"args.{name} differs between layers or heads ({sorted(commands)}); "
            "our model has one layout for every layer and head"
        )
    return _item(_item(scheme, 0), 0)


def bar_offsets(command, self_mode: str, name: str):
    """The bar offsets i - j (query bar i, key bar j) a range command selects, as
    inclusive intervals `(lo, hi)` (`hi` may be infinite), after the `*_self` mode.

    The release's `generate_mask`: an int k selects j - i = k; `(b, e)` selects
    b <= j - i <= e - 1, with `None` for no bound.
    """
    intervals = []
    for item in command or ():
        if isinstance(item, int):
            item = (item, item + 1)
        begin, end = item
        lo = -INF if end is None else 1 - end  # offset i - j = -(j - i)
        hi = INF if begin is None else -begin
        if lo <= hi:
            intervals.append((lo, hi))
    has_self = any(lo <= 0 <= hi for lo, hi in intervals)
    if self_mode in ("full", "lt"):
        has_self = True
    elif self_mode == "none":
        has_self = False
    elif self_mode != "default":
        raise ConversionError(f"args.{name}_self is {self_mode!r}")
    # Offsets other than 0, then 0 as the mode says.
    out = []
    for lo, hi in intervals:
        if lo < 0:
            out.append((lo, min(hi, -1)))
        if hi > 0:
            out.append((max(lo, 1), hi))
    if has_self:
        out.append((0, 0))
    return [(lo, hi) for lo, hi in out if lo <= hi]


def _finite(intervals, what):
    offsets = set()
    for lo, hi in intervals:
        if hi == INF:
            raise ConversionError(f"{what} reaches every earlier bar, which a list of bar offsets cannot express")
        offsets.update(range(int(lo), int(hi) + 1))
    return offsets


def layout_of(args: dict, layers: int, heads: int) -> dict:
    """Our `layout` (fine-grained bar offsets, coarse bars) of the release's scheme."""
    for name, wanted in (("pref2pref_mode", ["lt", "full"]), ("sum2pref_mode", "none"),
                         ("pref2sum_mode", "none"), ("con2pref_mode", "full"),
                         ("pref2con_mode", "none")):
        require(args, name, wanted, "the prefix sees itself, every token sees the prefix")
    require(args, "con2con_causal", True, "a causal language model")

    con2con = bar_offsets(scheme_command(args, "con2con", layers, heads),
                          setting(args, "con2con_self"), "con2con")
    # With con2con_causal, tokens of later bars are masked anyway.
    con2con = [(lo, hi) for lo, hi in con2con if hi >= 0]
    if (0, 0) not in con2con:
        raise ConversionError("con2con does not select a token's own bar, which ours always attends")
    fine = sorted(_finite([(lo, hi) for lo, hi in con2con if lo > 0], "con2con"))

    con2sum = bar_offsets(scheme_command(args, "con2sum", layers, heads),
                          setting(args, "con2sum_self"), "con2sum")
    if any(lo <= 0 for lo, _ in con2sum):
        raise ConversionError(
            "con2sum lets tokens read the summary of their own or a later bar (future tokens); "
            "ours reads summaries of earlier bars only"
        )
    tail = min((lo for lo, hi in con2sum if hi == INF), default=None)
    coarse = _finite([iv for iv in con2sum if iv[1] != INF], "con2sum")
    if tail is not None:
        coarse |= set(range(int(tail), max(fine + [int(tail)]) + 1))
    both = sorted(coarse & set(fine))
    if both:
        raise ConversionError(
            f"bars at offsets {both} are both fine-grained (con2con) and coarse-grained (con2sum); "
            "ours sees such a bar token by token only"
        )

    for name in ("sum2con", "sum2sum"):
        offsets = bar_offsets(scheme_command(args, name, layers, heads),
                              setting(args, f"{name}_self"), name)
        if offsets != [(0, 0)]:
            raise ConversionError(
                f"{name} selects bar offsets {offsets}; ours lets a summary read its own bar's "
                "tokens and itself only"
            )

    if tail is None and not coarse:
        coarse_cfg = "none"
    elif tail is not None and all(k in coarse or k in fine for k in range(1, int(tail))):
        coarse_cfg = "all_other"
    elif tail is None:
        ranges, run = [], None
        for k in sorted(coarse):
            if run and k == run[1] + 1:
                run[1] = k
            else:
                run = [k, k]
                ranges.append(run)
        coarse_cfg = {"ranges": ranges}
    else:
        raise ConversionError(
            f"con2sum reaches every bar from offset {int(tail)} on but leaves out "
            f"{[k for k in range(1, int(tail)) if k not in coarse and k not in fine]}: our layout "
            "has `all_other` or finite ranges"
        )
    return {"fine_grained_bars": fine, "coarse": coarse_cfg}


# --------------------------------------------------------------------------------------
# Tensor names

LAYER = "decoder.layers.{l}."
SHARED_PROJECTIONS = [  # (the release's duplicate, the copy we keep)
    ("self_attn.sum_query_proj.weight", "self_attn.reg_query_proj.weight"),
    ("self_attn.sum_key_proj.weight", "self_attn.reg_key_proj.weight"),
    ("self_attn.sum_value_proj.weight", "self_attn.reg_value_proj.weight"),
    ("self_attn.sum_out_proj.weight", "self_attn.reg_out_proj.weight"),
    ("self_attn.sum_out_proj.bias", "self_attn.reg_out_proj.bias"),
]
STREAM = [
    "self_attn_layer_norm.weight", "self_attn_layer_norm.bias",
    "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
    "final_layer_norm.weight", "final_layer_norm.bias",
]


def expected_shapes(m: dict, release_vocab: int) -> dict:
    """Our parameter names (the release's, `RELEASE_NAMES` in src/model/museformer.rs)
    with the shapes the settings give, summary stream shared."""
    d, f, te, be, bt = m["hidden"], m["ffn"], m["token_embed"], m["bar_embed"], m["beat_embed"]
    shapes = {
        "decoder.embed_regular_tokens.weight": (release_vocab, te),
        "decoder.embed_summary_tokens.weight": (2, te),
        "decoder.reg_proj_embeddings.weight": (d, te + be + bt),
        "decoder.reg_proj_embeddings.bias": (d,),
        "decoder.sum_proj_embeddings.weight": (d, te + be),
        "decoder.sum_proj_embeddings.bias": (d,),
        "decoder.layer_norm.weight": (d,),
        "decoder.layer_norm.bias": (d,),
        "decoder.output_projection.weight": (release_vocab, d),
    }
    if m["learned_positions"]:
        if be:
            shapes["decoder.embed_bar_abs_pos.weight"] = (m["max_bars"] + 1, be)
        if bt:
            shapes["decoder.embed_beat_abs_pos.weight"] = (m["max_beats"] + 1, bt)
    for l in range(m["layers"]):
        p = LAYER.format(l=l)
        for who in ("sum", "reg"):
            for what in ("query", "key", "value"):
                shapes[f"{p}self_attn.{who}_{what}_bias"] = (d,)
        for what in ("query", "key", "value", "out"):
            shapes[f"{p}self_attn.reg_{what}_proj.weight"] = (d, d)
        shapes[f"{p}self_attn.reg_out_proj.bias"] = (d,)
        shapes[f"{p}self_attn.sum_key2_proj.weight"] = (d, d)
        shapes[f"{p}self_attn.sum_value2_proj.weight"] = (d, d)
        for name in STREAM:
            shape = {"fc1.weight": (f, d), "fc1.bias": (f,), "fc2.weight": (d, f)}.get(name, (d,))
            shapes[f"{p}reg_{name}"] = shape
    return shapes


def convert_tensors(state: dict, m: dict, release_vocab: int):
    """Our tensors (float32, release vocabulary still) and the summary stream."""
    shapes = expected_shapes(m, release_vocab)
    duplicates = {}  # duplicate name -> kept name
    stream = {}  # the summaries' own layer norms and FFN -> the tokens'
    for l in range(m["layers"]):
        p = LAYER.format(l=l)
        for dup, kept in SHARED_PROJECTIONS:
            duplicates[p + dup] = p + kept
        for name in STREAM:
            stream[f"{p}sum_{name}"] = f"{p}reg_{name}"
    missing = [n for n in list(shapes) + list(duplicates) + list(stream) if n not in state]
    unexpected = [n for n in state if n not in shapes and n not in duplicates and n not in stream]
    if missing or unexpected:
        lines = []
        if missing:
            lines.append(f"missing: {', '.join(missing[:12])}" + (" ..." if len(missing) > 12 else ""))
        if unexpected:
            lines.append(
                f"unexpected: {', '.join(unexpected[:12])}" + (" ..." if len(unexpected) > 12 else "")
            )
        raise ConversionError(
            "the state dict does not hold the tensors of the release's museformer_lm_v2s1 at "
            f"these settings ({m['layers']} layers, width {m['hidden']}); " + "; ".join(lines)
        )
    for name, shape in list(shapes.items()) + [
        (n, shapes[k]) for n, k in list(duplicates.items()) + list(stream.items())
    ]:
        got = tuple(state[name].shape)
        if got != tuple(shape):
            raise ConversionError(f"{name} has shape {list(got)}; the settings give {list(shape)}")
    out = {n: state[n].detach().to(torch.float32).contiguous() for n in shapes}
    for dup, kept in duplicates.items():
        if not torch.equal(state[dup].to(torch.float32), out[kept]):
            diff = (state[dup].to(torch.float32) - out[kept]).abs().max().item()
            raise ConversionError(
                f"{dup} differs from {kept} (by up to {diff:g}): the summaries have their own "
                "projection, which our model shares with the music tokens"
            )
    separate = [n for n, k in stream.items() if not torch.equal(state[n].to(torch.float32), out[k])]
    if separate:
        for n in stream:
            out[n] = state[n].detach().to(torch.float32).contiguous()
    return out, bool(separate), sorted(duplicates) + ([] if separate else sorted(stream))


# --------------------------------------------------------------------------------------
# Vocabulary


def read_fairseq_dict(path: Path) -> list:
    """A fairseq dictionary's symbols by id: the four specials, then the file's lines."""
    symbols = list(SPECIALS)
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.split()
        if parts[-1] == "#fairseq:overwrite":
            parts = parts[:-1]
        if len(parts) != 2 or not parts[1].isdigit():
            raise ConversionError(f"{path}:{n}: not a fairseq dictionary line (`token count`): {line!r}")
        symbols.append(parts[0])
    return symbols


def our_vocabulary(binary: str | None, vocab_file: Path | None) -> list:
    """Our symbols by id: `museformer vocab --pos-per-beat 16` (`id token` lines)."""
    if vocab_file is not None:
        text = Path(vocab_file).read_text()
        where = str(vocab_file)
    else:
        exe = binary or (
            str(REPO / "target" / "release" / "museformer")
            if (REPO / "target" / "release" / "museformer").is_file()
            else shutil.which("museformer")
        )
        if not exe:
            raise ConversionError(
                "cannot find the museformer binary for our vocabulary: build it "
                "(cargo build --release) or pass --museformer PATH or --vocab FILE"
            )
        cmd = [exe, "vocab", "--pos-per-beat", str(RELEASE_POS_PER_BEAT)]
        try:
            text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        except (OSError, subprocess.CalledProcessError) as e:
            raise ConversionError(f"`{' '.join(cmd)}` failed: {getattr(e, 'stderr', '') or e}") from e
        where = " ".join(cmd)
    symbols = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if len(parts) != 2 or parts[0] != str(len(symbols)):
            raise ConversionError(f"{where}: line {n} is not `{len(symbols)} TOKEN`: {line!r}")
        symbols.append(parts[1])
    if symbols[:4] != SPECIALS:
        raise ConversionError(f"{where}: our vocabulary does not start with {SPECIALS}")
    return symbols


def absent_rows(ln_weight: torch.Tensor, ln_bias: torch.Tensor, logit: float):
    """An output row `w` whose logit `w · LN(x)` is `logit` for every `x`, or None.

    The head reads `h = γ ⊙ n + β` with `n` the normalized input, whose entries sum to
    zero. With `w = c / γ`, `w · h = c Σ n + c Σ β/γ = c Σ β/γ`: a constant, `logit`
    for `c = logit / Σ β/γ`. Needs every `γ` and `Σ β/γ` away from zero.
    """
    g, b = ln_weight.double(), ln_bias.double()
    if logit == 0:
        return torch.zeros_like(g).float()
    if (g.abs() < 1e-6 * g.abs().max().clamp_min(1e-30)).any():
        return None
    ratio = b / g
    s = ratio.sum()
    if s.abs() < 1e-3 * ratio.abs().sum().clamp_min(1e-30):
        return None
    w = (logit / s) / g
    # Check it in float32 on random normalized inputs.
    n = torch.randn(256, g.numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    n = torch.nn.functional.layer_norm(n, (g.numel(),))
    h = (n * g + b).float()
    got = h @ w.float()
    if (got - logit).abs().max() > 1e-3 * max(1.0, abs(logit)):
        return None
    return w.float()


def remap_vocabulary(out: dict, release: list, ours: list, absent_logit: float) -> dict:
    """Rows of the token embedding and the head in our vocabulary's order."""
    index = {s: i for i, s in enumerate(release)}
    if len(index) != len(release):
        raise ConversionError("the release's dictionary lists a token twice")
    emb = out["decoder.embed_regular_tokens.weight"]
    head = out["decoder.output_projection.weight"]
    new_emb = torch.zeros(len(ours), emb.shape[1])
    new_head = torch.zeros(len(ours), head.shape[1])
    absent = [i for i, s in enumerate(ours) if s not in index]
    for i, s in enumerate(ours):
        if s in index:
            # The release starts a piece with `</s>`; we input `<s>` there.
            new_emb[i] = emb[index["</s>" if i == BOS else s]]
            new_head[i] = head[index[s]]
    row = absent_rows(out["decoder.layer_norm.weight"], out["decoder.layer_norm.bias"], absent_logit)
    for i in absent:
        if row is not None:
            new_head[i] = row
    out["decoder.embed_regular_tokens.weight"] = new_emb
    out["decoder.output_projection.weight"] = new_head
    ours_set = set(ours)
    return {
        "ours": len(ours),
        "release": len(release),
        "mapped": len(ours) - len(absent),
        "absent_from_release": [ours[i] for i in absent],
        "absent_rows": "constant" if row is not None else "zero",
        "absent_logit": absent_logit if row is not None else 0.0,
        "release_only": [s for s in release if s not in ours_set],
    }


# --------------------------------------------------------------------------------------
# Writing


def write_safetensors(path: Path, tensors: dict, metadata: dict | None = None):
    """A safetensors file (float32/float64/int64 tensors), without the safetensors package."""
    dtypes = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.float16: "F16"}
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in dtypes:
            raise ConversionError(f"{name}: cannot write dtype {t.dtype}")
        data = t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for data in blobs:
            f.write(data)


def _yaml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a YAML string


def config_yaml(name: str, dataset: str, m: dict, separate: bool, source: str) -> str:
    layout = m["layout"]
    coarse = layout["coarse"]
    if isinstance(coarse, dict):
        coarse = "{ranges: [" + ", ".join(f"[{a}, {b}]" for a, b in coarse["ranges"]) + "]}"
    fine = "[" + ", ".join(str(k) for k in layout["fine_grained_bars"]) + "]"
    embedding = "learned" if m["learned_positions"] else "sinusoidal"
    return f"""\
# Converted from the original release's checkpoint {source}
# by scripts/convert_release_checkpoint.py (docs/museformer.md).
name: {_yaml_str(name)}
dataset: {_yaml_str(dataset)}
model:
  kind: museformer
  layers: {m['layers']}
  hidden: {m['hidden']}
  heads: {m['heads']}
  ffn: {m['ffn']}
  token_embed: {m['token_embed']}
  bar_embed: {m['bar_embed']}
  beat_embed: {m['beat_embed']}
  dropout: {m['dropout']}
  attention_dropout: {m['attention_dropout']}
  activation_dropout: 0.0
  scale_embedding: {'true' if m['scale_embedding'] else 'false'}
  positions:
    embedding: {embedding}
    max_bars: {m['max_bars']}
    max_beats: {m['max_beats']}
  museformer:
    layout:
      fine_grained_bars: {fine}
      coarse: {coarse}
    summary_stream: {'separate' if separate else 'shared'}
"""


def dataset_grid(dataset: str) -> int | None:
    """`encoding.pos_per_beat` of a dataset file, read without a YAML parser (the
    files are plain); None when the file cannot be read."""
    path = Path(dataset)
    if not path.is_absolute() and not path.exists():
        path = REPO / dataset
    try:
        text = path.read_text()
    except OSError:
        return None
    text = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    found = re.findall(r"\bpos_per_beat\s*:\s*(\d+)", text)
    return int(found[-1]) if found else 12  # our default grid (DEFAULT_POS_PER_BEAT)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def convert(a) -> dict:
    grid = dataset_grid(a.dataset)
    if grid is None:
        print(f"note: cannot read {a.dataset} here; not checking its grid", file=sys.stderr)
    elif grid != RELEASE_POS_PER_BEAT:
        raise ConversionError(
            f"{a.dataset} encodes {grid} positions per quarter note; the release's model reads "
            f"{RELEASE_POS_PER_BEAT} (encoding.pos_per_beat: 16, as experiments/data/lmd6.yaml)"
        )
    out_dir = Path(a.out)
    if out_dir.exists() and any(out_dir.iterdir()):
        if not a.force:
            raise ConversionError(f"{out_dir} exists and is not empty (pass --force to replace it)")
    state, args = load_checkpoint(Path(a.checkpoint))
    m = model_settings(args)
    release = read_fairseq_dict(Path(a.dict))
    rows = state.get("decoder.embed_regular_tokens.weight")
    if rows is not None and rows.shape[0] != len(release):
        raise ConversionError(
            f"the checkpoint's vocabulary has {rows.shape[0]} rows; {a.dict} gives {len(release)} "
            "tokens (4 specials + its lines): pass the dict.txt it was trained with (--dict)"
        )
    tensors, separate, dropped = convert_tensors(state, m, len(release))
    ours = our_vocabulary(a.museformer, a.vocab)
    vocab = remap_vocabulary(tensors, release, ours, a.absent_logit)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        best = tmp / "checkpoints" / "best"
        best.mkdir(parents=True)
        write_safetensors(best / "model.safetensors", tensors)
        (tmp / "config.yaml").write_text(
            config_yaml(a.name, a.dataset, m, separate, Path(a.checkpoint).name)
        )
        report = {
            "source": str(Path(a.checkpoint).resolve()),
            "sha256": sha256(Path(a.checkpoint)),
            "converted": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "dictionary": str(Path(a.dict).resolve()),
            "summary_stream": "separate" if separate else "shared",
            "layout": m["layout"],
            "tensors": len(tensors),
            "duplicates_checked_and_dropped": dropped,
            "vocabulary": vocab,
        }
        (tmp / "conversion.json").write_text(json.dumps(report, indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description="Convert the Museformer release's checkpoint_best.pt into a museformer run folder.",
    )
    p.add_argument("checkpoint", help="the release's checkpoint (fairseq .pt)")
    p.add_argument("--out", required=True, help="the run folder to write")
    p.add_argument("--dataset", default=DEFAULT_DATASET,
                   help=f"dataset file the run evaluates on (default {DEFAULT_DATASET})")
    p.add_argument("--dict", default=str(DEFAULT_DICT),
                   help="the release's dict.txt (default: the copy in src/tokens/release/)")
    p.add_argument("--museformer", help="the museformer binary (default: target/release/museformer, else PATH)")
    p.add_argument("--vocab", help="our vocabulary as `museformer vocab --pos-per-beat 16` prints it, instead of running the binary")
    p.add_argument("--name", default="museformer-release", help="the run's experiment name")
    p.add_argument("--absent-logit", type=float, default=-1e4,
                   help="the constant logit of our tokens the release lacks (default -10000)")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    a = p.parse_args(argv)
    try:
        r = convert(a)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    v = r["vocabulary"]
    print(f"wrote {a.out}: {r['tensors']} tensors, summary stream {r['summary_stream']}, "
          f"layout {r['layout']}")
    print(f"checked and dropped {len(r['duplicates_checked_and_dropped'])} shared duplicates")
    print(f"vocabulary: {v['mapped']} of our {v['ours']} tokens mapped from the release's {v['release']}")
    if v["absent_from_release"]:
        how = (f"output rows of constant logit {v['absent_logit']:g}" if v["absent_rows"] == "constant"
               else "zero output rows (logit 0): the final layer norm does not allow a constant logit")
        print(f"{len(v['absent_from_release'])} of our tokens are not in the release's dictionary: "
              f"zero input rows, {how}")
    if v["release_only"]:
        print(f"{len(v['release_only'])} release tokens we do not have are dropped: "
              f"{' '.join(v['release_only'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
