//! A reference model that predicts every token with equal probability: its
//! perplexity is the vocabulary size. Used to check the evaluator.

use super::{Batch, Decoder, LanguageModel};
use tch::{Device, Kind, Tensor};

/// The uniform model (`kind: uniform`): no parameters.
#[derive(Debug)]
pub struct Uniform {
    vocab_size: i64,
    device: Device,
}

impl Uniform {
    /// A uniform model over `vocab_size` tokens whose logits live on `device`.
    pub fn new(vocab_size: i64, device: Device) -> Uniform {
        Uniform { vocab_size, device }
    }

    fn zeros(&self, leading: &[i64]) -> Tensor {
        let mut shape = leading.to_vec();
        shape.push(self.vocab_size);
        Tensor::zeros(shape, (Kind::Float, self.device))
    }
}

/// The decoder of [`Uniform`]: only a count.
struct Count<'a> {
    model: &'a Uniform,
    len: usize,
}

impl Decoder for Count<'_> {
    fn step(&mut self, token: &Tensor, _bar: &Tensor, _beat: &Tensor) -> Tensor {
        self.len += 1;
        self.model.zeros(&[token.size()[0]])
    }

    fn len(&self) -> usize {
        self.len
    }
}

impl LanguageModel for Uniform {
    fn forward(&self, batch: &Batch, _train: bool) -> Tensor {
        self.zeros(&[batch.size(), batch.len()])
    }

    fn decoder(&self, _batch: i64) -> Box<dyn Decoder + '_> {
        Box::new(Count {
            model: self,
            len: 0,
        })
    }
}
