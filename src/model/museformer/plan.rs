//! The grouped FC-attention of one batch, planned once per forward pass and used by
//! every layer.
//!
//! The queries of each bar, in chunks of at most [`QUERY_CHUNK`] tokens, form a
//! group whose key set is the union of what they may see (Museformer's
//! [`Layout`]); each summary is a group of its own. Groups with similar key counts
//! are padded together into a bucket and run through libtorch's
//! scaled-dot-product attention with a small per-group mask, so time and memory grow
//! with n·(k·m + b) (Section 4.4), never with n².

use crate::model::layout::{Attends, Layout, LayoutConfig};
use tch::{Device, Tensor};

/// Queries of one bar are grouped in chunks of at most this many tokens, so a very
/// long bar does not pad every other group.
pub const QUERY_CHUNK: usize = 64;

/// Upper bound on `groups × queries × keys` of one padded attention call.
const BUCKET_ELEMENTS: usize = 1 << 21;

/// One attention group: queries that share a key set.
#[derive(Debug, Clone)]
struct Group {
    /// Rows of the query table.
    queries: Vec<i64>,
    /// Sequence position of each query (`usize::MAX`: sees every key).
    query_pos: Vec<usize>,
    /// Rows of the key table.
    keys: Vec<i64>,
    /// Sequence position of each key (`0` for summaries: always visible).
    key_pos: Vec<usize>,
}

/// Groups of similar key counts, padded to one shape.
#[derive(Debug)]
struct Bucket {
    groups: i64,
    queries: i64,
    keys: i64,
    /// `(groups × queries)` rows of the query table (padding: the zero row).
    query_rows: Tensor,
    /// `(groups × keys)` rows of the key table (padding: the zero row).
    key_rows: Tensor,
    /// `(groups, 1, queries, keys)`: true where attention is allowed.
    mask: Tensor,
    /// Positions among `groups × queries` that hold real queries.
    valid: Tensor,
}

/// The index tensors of one grouped attention over a query and a key table.
#[derive(Debug)]
pub struct Plan {
    buckets: Vec<Bucket>,
    /// For every query-table row, its row in the concatenated bucket outputs (rows
    /// that are no query of any group: the zero row at the end).
    restore: Tensor,
}

impl Plan {
    /// Pads `groups` into buckets of similar key counts. Query rows index a table
    /// of `query_rows` rows, key rows one of `key_rows` rows; each table gets a zero
    /// row appended for padding.
    fn new(mut groups: Vec<Group>, query_rows: usize, key_rows: usize, device: Device) -> Plan {
        groups.sort_by_key(|g| g.keys.len());
        let mut restore = vec![-1i64; query_rows];
        let mut buckets = Vec::new();
        let mut out_rows = 0i64;
        let mut start = 0;
        while start < groups.len() {
            let first = groups[start].keys.len().max(1);
            let limit = (first + first / 4).max(first + 16);
            let mut end = start;
            let (mut mq, mut mk) = (1, 1);
            while end < groups.len() {
                let g = &groups[end];
                let (q, k) = (mq.max(g.queries.len()), mk.max(g.keys.len()));
                if end > start
                    && (g.keys.len() > limit || (end - start + 1) * q * k > BUCKET_ELEMENTS)
                {
                    break;
                }
                (mq, mk) = (q, k);
                end += 1;
            }
            let bucket = &groups[start..end];
            let n = bucket.len();
            let mut qr = vec![query_rows as i64; n * mq];
            let mut kr = vec![key_rows as i64; n * mk];
            let mut mask = vec![false; n * mq * mk];
            let mut valid = Vec::new();
            for (gi, g) in bucket.iter().enumerate() {
                for (qi, (&row, &qpos)) in g.queries.iter().zip(&g.query_pos).enumerate() {
                    let at = gi * mq + qi;
                    qr[at] = row;
                    restore[row as usize] = out_rows + valid.len() as i64;
                    valid.push(at as i64);
                    let m = &mut mask[at * mk..(at + 1) * mk];
                    for (ki, &kpos) in g.key_pos.iter().enumerate() {
                        m[ki] = kpos <= qpos;
                    }
                }
                // Padding queries see one key, so no row of the softmax is empty (its
                // output is dropped and its gradient is zero).
                for qi in g.queries.len()..mq {
                    mask[(gi * mq + qi) * mk] = true;
                }
                kr[gi * mk..gi * mk + g.keys.len()].copy_from_slice(&g.keys);
            }
            out_rows += valid.len() as i64;
            let dims = [n as i64, 1, mq as i64, mk as i64];
            buckets.push(Bucket {
                groups: n as i64,
                queries: mq as i64,
                keys: mk as i64,
                query_rows: Tensor::from_slice(&qr).to_device(device),
                key_rows: Tensor::from_slice(&kr).to_device(device),
                mask: Tensor::from_slice(&mask).view(dims).to_device(device),
                valid: Tensor::from_slice(&valid).to_device(device),
            });
            start = end;
        }
        for r in restore.iter_mut().filter(|r| **r < 0) {
            *r = out_rows;
        }
        Plan {
            buckets,
            restore: Tensor::from_slice(&restore).to_device(device),
        }
    }

    /// Attention of the query table `(Nq, heads, dh)` over the key and value tables
    /// `(Nk, heads, dh)`; rows that are no query come out zero.
    pub fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, dropout: f64) -> Tensor {
        let (_, h, dh) = q.size3().expect("(rows, heads, head_dim)");
        let pad = |t: &Tensor| Tensor::cat(&[t, &t.zeros_like().narrow(0, 0, 1)], 0);
        let (q, k, v) = (pad(q), pad(k), pad(v));
        let mut outs = Vec::with_capacity(self.buckets.len() + 1);
        for b in &self.buckets {
            let gather = |table: &Tensor, rows: &Tensor, m: i64| {
                table
                    .index_select(0, rows)
                    .view([b.groups, m, h, dh])
                    .transpose(1, 2)
            };
            let o = Tensor::scaled_dot_product_attention::<Tensor>(
                &gather(&q, &b.query_rows, b.queries),
                &gather(&k, &b.key_rows, b.keys),
                &gather(&v, &b.key_rows, b.keys),
                Some(b.mask.shallow_clone()),
                dropout,
                false,
                None,
                false,
            );
            outs.push(
                o.transpose(1, 2)
                    .reshape([b.groups * b.queries, h, dh])
                    .index_select(0, &b.valid),
            );
        }
        outs.push(q.zeros_like().narrow(0, 0, 1));
        Tensor::cat(&outs, 0).index_select(0, &self.restore)
    }
}

/// The plans of the two FC-attention steps of a batch. Token rows are `s·n + t`,
/// summary rows `s·nb + i` (sequence `s`, `n` tokens and `nb` bars per sequence);
/// key tables are `[tokens; summaries]`.
#[derive(Debug)]
pub struct Plans {
    /// Summarization: each summary over its bar's tokens and itself.
    pub summarize: Plan,
    /// Aggregation: each token over its fine-grained tokens and coarse summaries.
    pub aggregate: Plan,
}

impl Plans {
    /// The plans of `layouts` (one per sequence) under `cfg`.
    pub fn new(
        layouts: &[Layout],
        cfg: &LayoutConfig,
        n: usize,
        nb: usize,
        device: Device,
    ) -> Plans {
        let (summarize, aggregate) = groups(layouts, cfg, n, nb);
        let (tokens, summaries) = (layouts.len() * n, layouts.len() * nb);
        let key_rows = tokens + summaries;
        Plans {
            summarize: Plan::new(summarize, summaries, key_rows, device),
            aggregate: Plan::new(aggregate, tokens, key_rows, device),
        }
    }
}

/// The groups of the summarization and the aggregation step.
fn groups(layouts: &[Layout], cfg: &LayoutConfig, n: usize, nb: usize) -> (Vec<Group>, Vec<Group>) {
    let tokens = layouts.len() * n;
    let mut summarize = Vec::new();
    let mut aggregate = Vec::new();
    for (s, layout) in layouts.iter().enumerate() {
        let token_row = |t: usize| (s * n + t) as i64;
        let summary_key = |i: usize| (tokens + s * nb + i) as i64;
        let keys = |a: &Attends| {
            let rows: Vec<i64> = a
                .tokens
                .iter()
                .map(|&t| token_row(t))
                .chain(a.summaries.iter().map(|&i| summary_key(i)))
                .collect();
            let pos: Vec<usize> = a
                .tokens
                .iter()
                .copied()
                .chain(a.summaries.iter().map(|_| 0))
                .collect();
            (rows, pos)
        };
        for i in 0..layout.bars.len() {
            let (rows, pos) = keys(&layout.summary(i));
            summarize.push(Group {
                queries: vec![(s * nb + i) as i64],
                query_pos: vec![usize::MAX],
                keys: rows,
                key_pos: pos,
            });
        }
        if layout.prefix > 0 {
            let (rows, pos) = keys(&layout.token(layout.prefix - 1, cfg));
            aggregate.push(Group {
                queries: (0..layout.prefix).map(token_row).collect(),
                query_pos: (0..layout.prefix).collect(),
                keys: rows,
                key_pos: pos,
            });
        }
        for &(start, end) in &layout.bars {
            // Equal chunks of at most QUERY_CHUNK queries (70 tokens: 35 + 35).
            let chunks = (end - start).div_ceil(QUERY_CHUNK);
            let size = (end - start).div_ceil(chunks.max(1)).max(1);
            for chunk in (start..end).step_by(size) {
                let stop = (chunk + size).min(end);
                let (rows, pos) = keys(&layout.token(stop - 1, cfg));
                aggregate.push(Group {
                    queries: (chunk..stop).map(token_row).collect(),
                    query_pos: (chunk..stop).collect(),
                    keys: rows,
                    key_pos: pos,
                });
            }
        }
    }
    (summarize, aggregate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layout::Coarse;
    use crate::model::testing::max_diff;
    use tch::Kind;

    /// Attention of each group's queries over its keys under its position mask,
    /// one group at a time: the reference [`Plan::attend`] pads and buckets.
    fn one_group_at_a_time(groups: &[Group], q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
        let mut out = q.zeros_like();
        for g in groups {
            let rows = |r: &[i64]| Tensor::from_slice(r);
            let t =
                |x: &Tensor, r: &[i64]| x.index_select(0, &rows(r)).transpose(0, 1).unsqueeze(0);
            let mask: Vec<bool> = g
                .query_pos
                .iter()
                .flat_map(|&qp| g.key_pos.iter().map(move |&kp| kp <= qp))
                .collect();
            let mask =
                Tensor::from_slice(&mask).view([1, 1, g.queries.len() as i64, g.keys.len() as i64]);
            let o = Tensor::scaled_dot_product_attention::<Tensor>(
                &t(q, &g.queries),
                &t(k, &g.keys),
                &t(v, &g.keys),
                Some(mask),
                0.0,
                false,
                None,
                false,
            );
            let _ = out.index_copy_(0, &rows(&g.queries), &o.squeeze_dim(0).transpose(0, 1));
        }
        out
    }

    /// Groups over a query table of `nq` rows and a key table of `nk` rows: group `i`
    /// has `1 + i % 5` queries and `3 + 7 i` keys, positions interleaved so that
    /// the masks are not all true.
    fn varied_groups(count: usize, nq: usize, nk: usize) -> Vec<Group> {
        let mut next_query = 0;
        (0..count)
            .map(|i| {
                let q = 1 + i % 5;
                let queries: Vec<i64> = (next_query..next_query + q).map(|r| r as i64).collect();
                next_query += q;
                assert!(next_query <= nq);
                let keys: Vec<i64> = (0..3 + 7 * i).map(|j| ((j * 13 + i) % nk) as i64).collect();
                Group {
                    query_pos: (0..q).map(|j| 2 * i + j).collect(),
                    key_pos: (0..keys.len()).map(|j| j % (2 * i + q)).collect(),
                    queries,
                    keys,
                }
            })
            .collect()
    }

    #[test]
    fn padded_buckets_equal_one_group_at_a_time() {
        tch::manual_seed(0);
        let (nq, nk) = (60, 90);
        let groups = varied_groups(15, nq, nk);
        let plan = Plan::new(groups.clone(), nq, nk, Device::Cpu);
        // Several buckets: key counts 3..=101 cannot share one.
        assert!(plan.buckets.len() > 2, "{} buckets", plan.buckets.len());
        let opts = (Kind::Float, Device::Cpu);
        let (q, k, v) = (
            Tensor::randn([nq as i64, 2, 4], opts),
            Tensor::randn([nk as i64, 2, 4], opts),
            Tensor::randn([nk as i64, 2, 4], opts),
        );
        let planned = plan.attend(&q, &k, &v, 0.0);
        let reference = one_group_at_a_time(&groups, &q, &k, &v);
        let d = max_diff(&planned, &reference);
        assert!(d < 1e-5, "differs by {d}");
        // Rows that are no group's query come out zero.
        let used: usize = groups.iter().map(|g| g.queries.len()).sum();
        let rest = planned.narrow(0, used as i64, (nq - used) as i64);
        assert_eq!(rest.abs().max().double_value(&[]), 0.0);
    }

    #[test]
    fn buckets_respect_the_element_budget_and_the_key_spread() {
        // Many groups of 64 queries: the budget, not the key spread, splits them.
        let groups: Vec<Group> = (0..40)
            .map(|i| Group {
                queries: (64 * i..64 * (i + 1)).collect(),
                query_pos: vec![usize::MAX; 64],
                keys: (0..1000).collect(),
                key_pos: vec![0; 1000],
            })
            .collect();
        let plan = Plan::new(groups, 64 * 40, 1000, Device::Cpu);
        for b in &plan.buckets {
            assert!((b.groups * b.queries * b.keys) as usize <= BUCKET_ELEMENTS);
        }
        assert_eq!(plan.buckets.iter().map(|b| b.groups).sum::<i64>(), 40);
        // Key counts far apart go to different buckets.
        let spread = |keys: i64| Group {
            queries: vec![keys],
            query_pos: vec![usize::MAX],
            keys: (0..keys).collect(),
            key_pos: vec![0; keys as usize],
        };
        let plan = Plan::new(
            vec![spread(10), spread(20), spread(400)],
            401,
            400,
            Device::Cpu,
        );
        let keys: Vec<i64> = plan.buckets.iter().map(|b| b.keys).collect();
        assert_eq!(keys, [20, 400]);
    }

    #[test]
    fn the_groups_give_every_query_its_layout_keys() {
        // A prefix, then bars of 3, 0, 150 (more than two query chunks) and 2
        // tokens, padded to 160.
        let bars: Vec<usize> = std::iter::once(0)
            .chain(
                [3usize, 0, 150, 2]
                    .iter()
                    .enumerate()
                    .flat_map(|(b, &len)| std::iter::repeat_n(b, len)),
            )
            .collect();
        let layout = Layout::with_prefix(1, &bars);
        let cfg = LayoutConfig {
            fine_grained_bars: vec![2],
            coarse: Coarse::AllOther,
        };
        let (n, nb) = (160, 5);
        let (summarize, aggregate) = groups(std::slice::from_ref(&layout), &cfg, n, nb);
        assert_eq!(summarize.len(), 4);
        // Each token's visible keys (its mask row) are exactly its layout's.
        let mut seen = vec![false; layout.len()];
        for g in &aggregate {
            assert!(g.queries.len() <= QUERY_CHUNK);
            for (&row, &pos) in g.queries.iter().zip(&g.query_pos) {
                let t = row as usize;
                assert_eq!(t, pos);
                seen[t] = true;
                let want = layout.token(t, &cfg);
                let mut tokens = Vec::new();
                let mut summaries = Vec::new();
                for (&key, &kpos) in g.keys.iter().zip(&g.key_pos) {
                    if kpos <= pos {
                        if (key as usize) < n {
                            tokens.push(key as usize);
                        } else {
                            summaries.push(key as usize - n);
                        }
                    }
                }
                assert_eq!(Attends { tokens, summaries }, want, "token {t}");
            }
        }
        assert!(seen.iter().all(|&s| s), "every token is a query");
    }
}
