//! Helpers every model's tests share: a small configuration, random inputs, and the
//! checks each model must pass (its efficient attention against a reference,
//! incremental decoding against the full forward, causality).

use super::{Batch, Init, LanguageModel, ModelSizes, PositionLimits};
use tch::{Device, Kind, Tensor};

/// What a test model is built from: parameters under `path`, `sizes`, and the
/// vocabulary of 50 tokens every model test uses.
pub fn init<'a>(path: &'a tch::nn::Path<'a>, sizes: &'a ModelSizes) -> Init<'a> {
    Init {
        path,
        sizes,
        vocab_size: 50,
    }
}

/// Small sizes: 2 layers, width 32, 4 heads, bars up to 16, beats up to 8.
pub fn small() -> ModelSizes {
    ModelSizes {
        layers: 2,
        hidden: 32,
        heads: 4,
        ffn: 64,
        token_embed: 32,
        bar_embed: 8,
        beat_embed: 8,
        positions: PositionLimits {
            max_bars: 16,
            max_beats: 8,
            ..PositionLimits::default()
        },
        ..ModelSizes::default()
    }
}

/// The largest absolute difference of two tensors.
pub fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// Random float32 queries, keys and values `(batch, heads, n, dim)` that require
/// gradients.
pub fn random_qkv(batch: i64, heads: i64, n: i64, dim: i64) -> [Tensor; 3] {
    let r = || {
        Tensor::randn([batch, heads, n, dim], (Kind::Float, Device::Cpu)).set_requires_grad(true)
    };
    [r(), r(), r()]
}

/// Asserts that two attention functions agree on `qkv` in their outputs and in the
/// gradients of a random linear function of the outputs with respect to q, k and
/// v, to `tol` (absolute).
pub fn assert_same_attention(
    what: &str,
    efficient: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor,
    reference: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor,
    qkv: &[Tensor; 3],
    tol: f64,
) {
    let [q, k, v] = qkv;
    let a = efficient(q, k, v);
    let b = reference(q, k, v);
    assert_eq!(a.size(), b.size(), "{what}: output shapes");
    let diff = max_diff(&a, &b);
    assert!(diff < tol, "{what}: outputs differ by {diff}");
    let w = Tensor::randn_like(&a);
    let grads = |y: &Tensor| Tensor::run_backward(&[(y * &w).sum(Kind::Float)], qkv, false, false);
    for (name, (ga, gb)) in ["q", "k", "v"].iter().zip(grads(&a).iter().zip(grads(&b))) {
        let diff = max_diff(ga, &gb);
        assert!(
            diff < tol,
            "{what}: gradients w.r.t. {name} differ by {diff}"
        );
    }
}

/// A batch of `batch` random sequences of `n` tokens (vocabulary 50), a bar every
/// `bar_len` tokens, beats cycling through 8.
pub fn batch_of(batch: i64, n: i64, bar_len: i64) -> Batch {
    let cpu = (Kind::Int64, Device::Cpu);
    Batch {
        tokens: Tensor::randint(50, [batch, n], cpu),
        bars: Tensor::arange(n, cpu)
            .divide_scalar_mode(bar_len, "floor")
            .repeat([batch, 1]),
        beats: Tensor::arange(n, cpu).remainder(8).repeat([batch, 1]),
    }
}

/// Two random sequences of `n` tokens, bars of 6 tokens.
pub fn batch(n: i64) -> Batch {
    batch_of(2, n, 6)
}

/// Asserts that decoding `batch` token by token gives the full forward's logits
/// (to 1e-4) at every real position: those before `lengths[s]` in sequence `s`, or
/// all with `lengths` `None`. `what` prefixes the messages.
pub fn assert_decoding_equals_forward(
    what: &str,
    model: &dyn LanguageModel,
    batch: &Batch,
    lengths: Option<&[i64]>,
) {
    let n = batch.len();
    let full = tch::no_grad(|| model.forward(batch, false));
    let mut decoder = model.decoder(batch.size());
    for t in 0..n {
        let step = tch::no_grad(|| {
            decoder.step(
                &batch.tokens.select(1, t),
                &batch.bars.select(1, t),
                &batch.beats.select(1, t),
            )
        });
        for s in 0..batch.size() {
            if lengths.is_none_or(|l| t < l[s as usize]) {
                let d = max_diff(&step.get(s), &full.get(s).get(t));
                assert!(
                    d < 1e-4,
                    "{what}sequence {s}, position {t}: max difference {d}"
                );
            }
        }
    }
    assert_eq!(decoder.len(), n as usize, "{what}tokens consumed");
}

/// Asserts that stepping through `n` tokens of [`batch`] gives the full forward's
/// logits.
pub fn assert_incremental_equals_forward(model: &dyn LanguageModel, n: i64) {
    assert_decoding_equals_forward("", model, &batch(n), None);
}

/// Per position of an `n`-token batch, the largest change of the logits when the
/// token at `at` is replaced by another.
fn change_of_logits(model: &dyn LanguageModel, n: i64, at: i64) -> Vec<f64> {
    let a = batch(n);
    let tokens = a.tokens.copy();
    tokens
        .narrow(1, at, 1)
        .copy_(&((a.tokens.narrow(1, at, 1) + 1).remainder(50)));
    let b = Batch {
        tokens,
        bars: a.bars.shallow_clone(),
        beats: a.beats.shallow_clone(),
    };
    let (la, lb) = tch::no_grad(|| (model.forward(&a, false), model.forward(&b, false)));
    let per_position = (la - lb).abs().amax([0, 2], false);
    (0..n).map(|t| per_position.double_value(&[t])).collect()
}

/// Which positions' logits change when the first token of an `n`-token
/// sequence changes: the model's receptive field seen from position 0.
pub fn positions_reached_from_the_first(model: &dyn LanguageModel, n: i64) -> Vec<bool> {
    change_of_logits(model, n, 0)
        .iter()
        .map(|&c| c > 1e-6)
        .collect()
}

/// Asserts that changing the token at `changed` leaves every earlier position's
/// logits unchanged and changes its own.
pub fn assert_causal(model: &dyn LanguageModel, n: i64, changed: i64) {
    let change = change_of_logits(model, n, changed);
    let before = change[..changed as usize]
        .iter()
        .fold(0.0, |m: f64, &c| m.max(c));
    assert!(
        before < 1e-6,
        "the token at {changed} changed earlier logits by {before}"
    );
    let own = change[changed as usize];
    assert!(
        own > 1e-4,
        "the token at {changed} did not change its own logits"
    );
}
