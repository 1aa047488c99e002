//! The optimizer and the learning-rate schedule, as fairseq's (the release trained
//! with fairseq 0.10.2): its Adam (`fairseq/optim/adam.py`: the bias-corrected
//! step `lr·sqrt(1 - β₂ᵗ)/(1 - β₁ᵗ) · m/(sqrt(v) + ε)`, decoupled weight decay
//! `p ← p - lr·wd·p`) on every parameter or on weight matrices only
//! ([`DecayRule`]), written on tensors so that its state can be checkpointed and a
//! resumed run continues exactly; and its `inverse_sqrt` schedule with the default
//! `warmup_init_lr` 0.

use crate::config::DecayRule;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::Path;
use tch::{nn::VarStore, Kind, Tensor};

/// The learning rate of optimizer update `update` (1-based), as fairseq's
/// `inverse_sqrt` schedule sets it: fairseq computes the rate from the number of
/// updates done before, `n = update - 1`: `peak · n / warmup` while `n < warmup`
/// (so the first update has rate 0, `warmup_init_lr`'s default), then
/// `peak · sqrt(warmup / n)`. `warmup` 0 (which fairseq refuses): no warm-up,
/// `peak / sqrt(max(n, 1))`.
pub fn learning_rate(update: usize, peak: f64, warmup: usize) -> f64 {
    let done = update.saturating_sub(1) as f64;
    if warmup == 0 {
        return peak / done.max(1.0).sqrt();
    }
    let warmup = warmup as f64;
    if done < warmup {
        peak * done / warmup
    } else {
        peak * (warmup / done).sqrt()
    }
}

/// Whether a parameter gets weight decay under `rule`: every parameter under
/// [`DecayRule::All`]; under [`DecayRule::Matrices`] the matrices of linear layers,
/// not biases, layer norms or embedding tables (named `emb_*` by convention, or
/// `embed_*` as in the release's Museformer).
pub fn decays(rule: DecayRule, name: &str, t: &Tensor) -> bool {
    match rule {
        DecayRule::All => true,
        DecayRule::Matrices => {
            t.dim() >= 2
                && !name
                    .split('.')
                    .any(|part| part.starts_with("emb_") || part.starts_with("embed_"))
        }
    }
}

/// Adam with decoupled weight decay over the trainable variables of a store.
pub struct Adam {
    params: Vec<(String, Tensor)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    decay: Vec<bool>,
    /// Steps taken.
    pub t: i64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
}

impl Adam {
    /// An optimizer over every trainable variable of `vs`, in name order, decaying
    /// those `rule` names.
    pub fn new(
        vs: &VarStore,
        betas: (f64, f64),
        eps: f64,
        weight_decay: f64,
        rule: DecayRule,
    ) -> Adam {
        let mut params: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let zeros = |p: &Tensor| p.zeros_like().set_requires_grad(false);
        Adam {
            m: params.iter().map(|(_, p)| zeros(p)).collect(),
            v: params.iter().map(|(_, p)| zeros(p)).collect(),
            decay: params.iter().map(|(n, p)| decays(rule, n, p)).collect(),
            params,
            t: 0,
            betas,
            eps,
            weight_decay,
        }
    }

    /// Clears the gradients.
    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// Scales the gradients so their global norm is at most `max` (0: no clipping);
    /// returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max: f64) -> f64 {
        let grads: Vec<Tensor> = self
            .params
            .iter()
            .map(|(_, p)| p.grad())
            .filter(|g| g.defined())
            .collect();
        if grads.is_empty() {
            return 0.0;
        }
        let norm = Tensor::stack(
            &grads
                .iter()
                .map(|g| g.norm().to_kind(Kind::Float))
                .collect::<Vec<_>>(),
            0,
        )
        .norm()
        .double_value(&[]);
        if max > 0.0 && norm > max {
            let scale = max / (norm + 1e-6);
            for mut g in grads {
                let _ = g.g_mul_scalar_(scale);
            }
        }
        norm
    }

    /// One update with learning rate `lr`, as fairseq's Adam: decay, then the
    /// bias-corrected step with ε added to `sqrt(v)` before the correction.
    pub fn step(&mut self, lr: f64) {
        self.t += 1;
        let (b1, b2) = self.betas;
        let c1 = 1.0 - b1.powi(self.t as i32);
        let c2 = 1.0 - b2.powi(self.t as i32);
        let step_size = lr * c2.sqrt() / c1;
        tch::no_grad(|| {
            for (i, (_, p)) in self.params.iter_mut().enumerate() {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let _ = self.m[i].g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
                let _ = self.v[i].g_mul_scalar_(b2).g_add_(&(&g * &g * (1.0 - b2)));
                if self.decay[i] && self.weight_decay > 0.0 {
                    let _ = p.g_mul_scalar_(1.0 - lr * self.weight_decay);
                }
                let denom = self.v[i].sqrt() + self.eps;
                let update = &self.m[i] / denom * step_size;
                let _ = p.g_sub_(&update);
            }
        });
    }

    /// Saves the moments and the step count (safetensors).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, Tensor)> = Vec::new();
        for (i, (name, _)) in self.params.iter().enumerate() {
            named.push((format!("m.{name}"), self.m[i].shallow_clone()));
            named.push((format!("v.{name}"), self.v[i].shallow_clone()));
        }
        named.push(("t".into(), Tensor::from_slice(&[self.t])));
        Tensor::write_safetensors(&named, path)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Restores the moments and the step count saved by [`save`](Self::save).
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let tensors: HashMap<String, Tensor> = Tensor::read_safetensors(path)
            .with_context(|| format!("cannot read optimizer state {}", path.display()))?
            .into_iter()
            .collect();
        let get = |key: &str| {
            tensors.get(key).with_context(|| {
                format!(
                    "{} lacks `{key}`: not this model's optimizer state",
                    path.display()
                )
            })
        };
        tch::no_grad(|| -> Result<()> {
            for (i, (name, _)) in self.params.iter().enumerate() {
                self.m[i].copy_(get(&format!("m.{name}"))?);
                self.v[i].copy_(get(&format!("v.{name}"))?);
            }
            Ok(())
        })?;
        self.t = get("t")?.int64_value(&[0]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelSizes, PositionLimits};
    use crate::registry::{self, ModelConfig, MODELS};

    /// fairseq's `InverseSquareRootSchedule` as the trainer drives it: the rate
    /// set at construction (`warmup_init_lr`, default 0) and after each update
    /// from the number of updates done.
    fn fairseq_rates(updates: usize, peak: f64, warmup: usize) -> Vec<f64> {
        let (init, w) = (0.0, warmup as f64);
        let lr_step = (peak - init) / w;
        let decay_factor = peak * w.sqrt();
        let step_update = |n: usize| {
            if (n as f64) < w {
                init + n as f64 * lr_step
            } else {
                decay_factor * (n as f64).powf(-0.5)
            }
        };
        let mut lr = step_update(0);
        let mut used = Vec::new();
        for num_updates in 1..=updates {
            used.push(lr);
            lr = step_update(num_updates);
        }
        used
    }

    #[test]
    fn the_schedule_is_fairseqs_inverse_sqrt_with_warmup_init_lr_0() {
        for (peak, warmup) in [(5e-4, 16_000), (1e-3, 100), (2.0, 7)] {
            let reference = fairseq_rates(3 * warmup, peak, warmup);
            for (k, &want) in reference.iter().enumerate() {
                let got = learning_rate(k + 1, peak, warmup);
                assert!(
                    (got - want).abs() <= 1e-12 * peak,
                    "update {}: {got} (fairseq: {want})",
                    k + 1
                );
            }
        }
        // The first update has rate 0, the peak comes after `warmup` updates.
        assert_eq!(learning_rate(1, 5e-4, 16_000), 0.0);
        assert_eq!(learning_rate(2, 5e-4, 16_000), 5e-4 / 16_000.0);
        assert_eq!(learning_rate(8_001, 5e-4, 16_000), 2.5e-4);
        assert_eq!(learning_rate(16_001, 5e-4, 16_000), 5e-4);
        assert!((learning_rate(64_001, 5e-4, 16_000) - 2.5e-4).abs() < 1e-15);
        assert!((learning_rate(144_001, 5e-4, 16_000) - 5e-4 / 3.0).abs() < 1e-15);
        // No warm-up: the peak, then the inverse square root.
        assert_eq!(learning_rate(1, 1.0, 0), 1.0);
        assert_eq!(learning_rate(5, 1.0, 0), 0.5);
    }

    /// fairseq's Adam on one scalar parameter with a constant gradient `g`.
    fn fairseq_adam(p0: f64, g: f64, lrs: &[f64], wd: f64, eps: f64) -> f64 {
        let (b1, b2) = (0.9, 0.98);
        let (mut p, mut m, mut v) = (p0, 0.0, 0.0);
        for (t, &lr) in lrs.iter().enumerate() {
            let t = t as i32 + 1;
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let denom = v.sqrt() + eps;
            let step_size = lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
            p += -wd * lr * p;
            p += -step_size * m / denom;
        }
        p
    }

    #[test]
    fn adam_is_fairseqs_and_the_rule_picks_what_decays() {
        // A large ε and weight decay, so that where ε is added and what decays
        // both show in the result.
        let (eps, wd, lrs) = (0.5, 0.1, [0.0, 0.02, 0.01]);
        for rule in [DecayRule::Matrices, DecayRule::All] {
            let vs = VarStore::new(tch::Device::Cpu);
            let root = vs.root();
            let w = (&root / "lin").var("weight", &[2, 2], tch::nn::Init::Const(1.0));
            let b = (&root / "lin").var("bias", &[2], tch::nn::Init::Const(1.0));
            let e = (&root / "emb_token").var("weight", &[2, 2], tch::nn::Init::Const(1.0));
            let mut opt = Adam::new(&vs, (0.9, 0.98), eps, wd, rule);
            for &lr in &lrs {
                opt.zero_grad();
                let loss = (&w * 3.0).sum(Kind::Float)
                    + (&b * -2.0).sum(Kind::Float)
                    + (&e * 0.5).sum(Kind::Float);
                loss.backward();
                opt.step(lr);
            }
            let all = rule == DecayRule::All;
            for (what, t, g, decayed) in [
                ("matrix", &w, 3.0, true),
                ("bias", &b, -2.0, all),
                ("embedding", &e, 0.5, all),
            ] {
                let got = t.flatten(0, -1).double_value(&[0]);
                let want = fairseq_adam(1.0, g, &lrs, if decayed { wd } else { 0.0 }, eps);
                assert!(
                    (got - want).abs() < 1e-6,
                    "{} {what}: {got}, fairseq's Adam gives {want}",
                    rule.name()
                );
            }
        }
    }

    #[test]
    fn matrices_leave_every_models_embedding_tables_undecayed() {
        // Sizes where the token, bar and beat tables have shapes no linear layer
        // has, so they are found by shape, whatever the models name them: a
        // rename that drops the `emb_` convention fails here.
        let sizes = ModelSizes {
            layers: 1,
            hidden: 32,
            heads: 2,
            ffn: 48,
            token_embed: 24,
            bar_embed: 8,
            beat_embed: 12,
            positions: PositionLimits {
                embedding: crate::model::PositionEmbedding::Learned,
                max_bars: 40,
                max_beats: 20,
            },
            ..ModelSizes::default()
        };
        let vocab = 57;
        // Token, bar and beat tables (learned ones have a row for id 0), and
        // Museformer's summary table.
        let tables = [
            vec![vocab, sizes.token_embed],
            vec![sizes.positions.max_bars + 1, sizes.bar_embed],
            vec![sizes.positions.max_beats + 1, sizes.beat_embed],
            vec![2, sizes.token_embed],
        ];
        for model in MODELS {
            let vs = VarStore::new(tch::Device::Cpu);
            let cfg = ModelConfig {
                sizes: sizes.clone(),
                ..ModelConfig::of(model.kind)
            };
            let _built = registry::build(&vs.root(), &cfg, vocab).unwrap();
            let params: Vec<(String, Tensor)> = vs
                .variables()
                .into_iter()
                .filter(|(_, t)| t.requires_grad())
                .collect();
            if params.is_empty() {
                continue;
            }
            let mut decayed_matrices = 0;
            for (name, t) in &params {
                let table = tables.contains(&t.size());
                assert!(
                    !(table && decays(DecayRule::Matrices, name, t)),
                    "{}: `{name}` {:?} looks like an embedding table and would be decayed",
                    model.name,
                    t.size()
                );
                assert!(decays(DecayRule::All, name, t));
                if t.dim() < 2 {
                    assert!(
                        !decays(DecayRule::Matrices, name, t),
                        "{}: {name}",
                        model.name
                    );
                }
                decayed_matrices += decays(DecayRule::Matrices, name, t) as usize;
            }
            assert!(
                params.iter().any(|(_, t)| t.size() == tables[0]),
                "{}: no token embedding table of shape {:?}",
                model.name,
                tables[0]
            );
            assert!(decayed_matrices > 0, "{}: no matrix decays", model.name);
        }
    }
}
