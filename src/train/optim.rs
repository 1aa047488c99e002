//! The optimizer and the learning-rate schedule: Adam with decoupled weight decay on
//! weight matrices only (Loshchilov & Hutter), written on tensors so that its state
//! can be checkpointed and a resumed run continues exactly; linear warm-up then
//! inverse-square-root decay, as fairseq's `inverse_sqrt` schedule.

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::Path;
use tch::{nn::VarStore, Kind, Tensor};

/// The learning rate at optimizer step `step` (1-based): `peak · step / warmup`
/// during warm-up, then `peak · sqrt(warmup / step)`.
pub fn learning_rate(step: usize, peak: f64, warmup: usize) -> f64 {
    let step = step.max(1) as f64;
    let warmup = warmup.max(1) as f64;
    if step < warmup {
        peak * step / warmup
    } else {
        peak * (warmup / step).sqrt()
    }
}

/// Whether a parameter gets weight decay: matrices of linear layers, not biases,
/// layer norms or embedding tables (named `emb_*` by convention).
pub fn decays(name: &str, t: &Tensor) -> bool {
    t.dim() >= 2 && !name.split('.').any(|part| part.starts_with("emb_"))
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
    /// An optimizer over every trainable variable of `vs`, in name order.
    pub fn new(vs: &VarStore, betas: (f64, f64), eps: f64, weight_decay: f64) -> Adam {
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
            decay: params.iter().map(|(n, p)| decays(n, p)).collect(),
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

    /// One update with learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        self.t += 1;
        let (b1, b2) = self.betas;
        let c1 = 1.0 - b1.powi(self.t as i32);
        let c2 = 1.0 - b2.powi(self.t as i32);
        tch::no_grad(|| {
            for (i, (_, p)) in self.params.iter_mut().enumerate() {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                if self.decay[i] && self.weight_decay > 0.0 {
                    let _ = p.g_mul_scalar_(1.0 - lr * self.weight_decay);
                }
                let _ = self.m[i].g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
                let _ = self.v[i].g_mul_scalar_(b2).g_add_(&(&g * &g * (1.0 - b2)));
                let denom = (&self.v[i] / c2).sqrt() + self.eps;
                let update = (&self.m[i] / c1) / denom * lr;
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

    #[test]
    fn schedule_warms_up_linearly_then_decays_with_the_inverse_square_root() {
        assert_eq!(learning_rate(1, 5e-4, 16_000), 5e-4 / 16_000.0);
        assert_eq!(learning_rate(8_000, 5e-4, 16_000), 2.5e-4);
        assert_eq!(learning_rate(16_000, 5e-4, 16_000), 5e-4);
        assert!((learning_rate(64_000, 5e-4, 16_000) - 2.5e-4).abs() < 1e-15);
        assert!((learning_rate(144_000, 5e-4, 16_000) - 5e-4 / 3.0).abs() < 1e-15);
        assert_eq!(learning_rate(0, 1.0, 0), 1.0);
    }

    #[test]
    fn adam_matches_the_closed_form_first_step() {
        let vs = VarStore::new(tch::Device::Cpu);
        let root = vs.root();
        let w = (&root / "lin").var("weight", &[2, 2], tch::nn::Init::Const(1.0));
        let b = (&root / "lin").var("bias", &[2], tch::nn::Init::Const(1.0));
        let e = (&root / "emb_token").var("weight", &[2, 2], tch::nn::Init::Const(1.0));
        let mut opt = Adam::new(&vs, (0.9, 0.98), 1e-9, 0.1);
        let loss = (&w * 3.0).sum(Kind::Float) + (&b * -2.0).sum(Kind::Float) + e.sum(Kind::Float);
        loss.backward();
        opt.step(0.01);
        // The first Adam step moves each parameter by lr·sign(g); decay only on w.
        let w0 = w.double_value(&[0, 0]);
        assert!(
            (w0 - (1.0 * (1.0 - 0.01 * 0.1) - 0.01)).abs() < 1e-6,
            "{w0}"
        );
        assert!((b.double_value(&[0]) - 1.01).abs() < 1e-6);
        assert!((e.double_value(&[0, 0]) - 0.99).abs() < 1e-6);
    }
}
