//! `museformer bench attention`: the efficiency curves of the paper's Figure 4. For
//! each experiment (by default Museformer and its full-attention counterpart at
//! the small size) and each maximum length, one training step (forward and
//! backward, batch 1) on a real piece of that length, in a fresh child process so
//! that its peak memory is its own: the peak resident memory above what the process
//! held before its first step on the CPU (Linux `VmHWM` after `clear_refs`), time per
//! step on either device. A child that passes the memory limit is stopped and the
//! longer lengths of that experiment are skipped. Results go to `attention.csv`
//! (written after every measurement, so an interruption keeps what was measured),
//! `attention.json` (with the fitted memory exponents and the provenance) and a
//! figure `attention.{png,svg}`.

use crate::config::{DeviceChoice, ExperimentConfig};
use crate::data::batch::{batch_loss, TrainBatch};
use crate::model::{bar_beat_indices, Batch};
use crate::plot::{self, FONT};
use crate::provenance::Provenance;
use crate::registry;
use crate::run::open_dataset;
use crate::tokens::vocab::{BOS_ID, EOS_ID};
use crate::tokens::Vocab;
use anyhow::{bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tch::{nn, Device, Tensor};

/// One measurement.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Measurement {
    /// Experiment name.
    pub experiment: String,
    /// Model kind.
    pub kind: String,
    /// Sequence length (tokens).
    pub length: usize,
    /// Bars in the piece.
    pub bars: usize,
    /// `cpu` or `cuda`.
    pub device: String,
    /// `ok`, `out of memory`, `skipped` or an error message.
    pub status: String,
    /// Peak memory of the training steps above the memory held before the first,
    /// MiB (CPU: resident memory; CUDA: not measured).
    pub peak_mb: Option<f64>,
    /// Peak resident memory of the whole process, MiB.
    pub process_peak_mb: Option<f64>,
    /// Mean wall time of one forward + backward step, seconds.
    pub seconds_per_step: Option<f64>,
}

/// Options of the benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct AttentionOptions {
    /// Experiment files to compare.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "experiments/museformer-small.yaml,experiments/transformer-small.yaml,experiments/transformer-small-explicit.yaml"
    )]
    pub experiments: Vec<PathBuf>,
    /// Maximum sequence lengths, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1024,2048,4096,8192,16384"
    )]
    pub lengths: Vec<usize>,
    /// Device: cpu (default), cuda, or auto.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Timed steps per measurement (after one warm-up step).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Stop a measurement whose process passes this much resident memory, GiB
    /// (default: 75% of the machine's memory).
    #[arg(long)]
    pub memory_limit_gb: Option<f64>,
    /// Output folder.
    #[arg(long, default_value = "results/attention")]
    pub out: PathBuf,
}

/// A benchmark input: `length + 1` ids (inputs and shifted targets), the bar and
/// beat indices of the inputs, the number of bars and the vocabulary size.
pub struct Piece {
    /// Token ids.
    pub ids: Vec<i64>,
    /// Bar index of each input.
    pub bars: Vec<i64>,
    /// Beat index of each input.
    pub beats: Vec<i64>,
    /// Bars in the piece.
    pub count: usize,
    /// Vocabulary size of the dataset.
    pub vocab_size: i64,
}

/// A piece of exactly `length` input tokens: training songs of the experiment's
/// dataset one after the other (`<s>` once, bars counted on across songs), with
/// their bar and beat indices.
pub fn piece(cfg: &ExperimentConfig, length: usize) -> Result<Piece> {
    let (store, manifest) = open_dataset(cfg)?;
    let vocab = Vocab::new(manifest.config.encoding.pos_per_beat);
    let mut ids = vec![BOS_ID];
    let songs = store.split_indices(crate::data::Split::Train);
    anyhow::ensure!(
        !songs.is_empty(),
        "the training split of {} is empty",
        cfg.dataset.display()
    );
    'fill: for round in 0.. {
        for &i in &songs {
            ids.extend(store.song(i).iter().filter(|&&t| t != EOS_ID));
            if ids.len() > length {
                break 'fill;
            }
        }
        anyhow::ensure!(round < 10_000, "the training split has no tokens");
    }
    ids.truncate(length + 1);
    let (bars, beats) = bar_beat_indices(&ids[..length], &vocab);
    let count = bars.last().map_or(0, |&b| b as usize + 1);
    Ok(Piece {
        ids: ids.iter().map(|&x| x as i64).collect(),
        bars,
        beats,
        count,
        vocab_size: vocab.len() as i64,
    })
}

/// The value in kB of `field` (e.g. `VmRSS:`) in a `/proc` file such as
/// `/proc/self/status` or `/proc/meminfo`.
fn proc_kib(file: &str, field: &str) -> Option<f64> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn status_kib(field: &str) -> Option<f64> {
    proc_kib("/proc/self/status", field)
}

/// Measures one experiment at one length in this process (the child side).
pub fn measure_one(
    experiment: &Path,
    length: usize,
    device: DeviceChoice,
    repeats: usize,
) -> Result<Measurement> {
    let mut cfg = ExperimentConfig::load(experiment, &[])?;
    let Piece {
        ids,
        bars,
        beats,
        count,
        vocab_size,
    } = piece(&cfg, length)?;
    // The piece may have more bars than the embedding covers at this size.
    cfg.model.sizes.positions.max_bars = cfg.model.sizes.positions.max_bars.max(count as i64);
    let dev = device.device()?;
    tch::manual_seed(cfg.train.seed as i64);
    let vs = nn::VarStore::new(dev);
    let model = registry::build(&vs.root(), &cfg.model, vocab_size)?;
    let tb = TrainBatch {
        batch: Batch::single(&ids[..length], &bars, &beats, dev),
        targets: Tensor::from_slice(&ids[1..=length])
            .view([1, -1])
            .to_device(dev),
        tokens: length as i64,
    };
    let step = || {
        for v in vs.trainable_variables() {
            let mut g = v.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        batch_loss(model.as_ref(), &tb, true).backward();
        if let Device::Cuda(_) = dev {
            tch::Cuda::synchronize(0);
        }
    };
    // The baseline is taken before the warm-up step: memory the allocator keeps
    // from one step to the next belongs to the step.
    let cpu = dev == Device::Cpu;
    let before = if cpu {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        status_kib("VmRSS:")
    } else {
        None
    };
    step();
    let start = Instant::now();
    for _ in 0..repeats.max(1) {
        step();
    }
    let seconds = start.elapsed().as_secs_f64() / repeats.max(1) as f64;
    let hwm = status_kib("VmHWM:");
    Ok(Measurement {
        experiment: cfg.name.clone(),
        kind: cfg.model.kind().to_string(),
        length,
        bars: count,
        device: if cpu { "cpu".into() } else { "cuda".into() },
        status: "ok".into(),
        peak_mb: match (before, hwm) {
            (Some(b), Some(h)) if cpu => Some((h - b).max(0.0) / 1024.0),
            _ => None,
        },
        process_peak_mb: hwm.map(|h| h / 1024.0),
        seconds_per_step: Some(seconds),
    })
}

fn mem_total_gb() -> f64 {
    proc_kib("/proc/meminfo", "MemTotal:").map_or(16.0, |kib| kib / 1024.0 / 1024.0)
}

fn child_rss_gb(pid: u32) -> Option<f64> {
    proc_kib(&format!("/proc/{pid}/status"), "VmRSS:").map(|k| k / 1024.0 / 1024.0)
}

/// Runs one measurement in a child process of this executable, stopped past the
/// memory limit.
fn spawn_one(
    exp: &Path,
    length: usize,
    opts: &AttentionOptions,
    limit_gb: f64,
) -> Result<Measurement> {
    let exe = std::env::current_exe().context("cannot find the museformer executable")?;
    let mut child = std::process::Command::new(exe)
        .args(["bench", "attention-one"])
        .arg(exp)
        .args(["--length", &length.to_string()])
        .args(["--device", opts.device.name()])
        .args(["--repeats", &opts.repeats.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot start a benchmark process")?;
    let mut over = false;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if child_rss_gb(child.id()).is_some_and(|gb| gb > limit_gb) {
            over = true;
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if let Some(line) = stdout.lines().rev().find(|l| l.starts_with('{')) {
        if out.status.success() {
            return Ok(serde_json::from_str(line)?);
        }
    }
    let cfg = ExperimentConfig::load(exp, &[])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let status = if over {
        format!("out of memory (over {limit_gb:.1} GiB)")
    } else if stderr.contains("alloc") || stderr.contains("out of memory") {
        "out of memory".to_string()
    } else {
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("failed");
        format!("failed: {}", last.trim())
    };
    Ok(Measurement {
        experiment: cfg.name,
        kind: cfg.model.kind().to_string(),
        length,
        bars: 0,
        device: opts.device.name().into(),
        status,
        peak_mb: None,
        process_peak_mb: None,
        seconds_per_step: None,
    })
}

/// Options of the decoding benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct DecodeOptions {
    /// Experiment file (its dataset supplies the piece; the weights are freshly
    /// initialized, which costs the same as trained ones).
    #[arg(long, default_value = "experiments/museformer-small.yaml")]
    pub experiment: PathBuf,
    /// Tokens to generate.
    #[arg(long, default_value_t = 4096)]
    pub length: usize,
    /// Prefix lengths at which recomputation is timed; its total over all steps is
    /// interpolated between them.
    #[arg(long, default_value_t = 16)]
    pub samples: usize,
}

/// What `bench decode` measured.
#[derive(Debug, Clone, Serialize)]
pub struct DecodeReport {
    /// Experiment name.
    pub experiment: String,
    /// Tokens decoded.
    pub length: usize,
    /// Wall time of decoding every token with the cache, seconds.
    pub cached_seconds: f64,
    /// Forward time over a prefix of each sampled length, seconds.
    pub prefix_forward_seconds: Vec<(usize, f64)>,
    /// Σ over t = 1..=length of the forward time over t tokens (what decoding
    /// without the cache costs), interpolated linearly between the samples.
    pub recompute_seconds: f64,
    /// `recompute_seconds / cached_seconds`.
    pub speedup: f64,
}

/// Times decoding a real piece of `length` tokens step by step with the model's
/// cache against recomputing the whole prefix at every step (sampling excluded:
/// both feed the piece's own tokens).
pub fn decode(opts: &DecodeOptions) -> Result<DecodeReport> {
    let mut cfg = ExperimentConfig::load(&opts.experiment, &[])?;
    let p = piece(&cfg, opts.length)?;
    cfg.model.sizes.positions.max_bars = cfg.model.sizes.positions.max_bars.max(p.count as i64);
    tch::manual_seed(cfg.train.seed as i64);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = registry::build(&vs.root(), &cfg.model, p.vocab_size)?;
    let one = |v: i64| Tensor::from_slice(&[v]);
    let (cached_seconds, prefix) = tch::no_grad(|| {
        let start = Instant::now();
        let mut decoder = model.decoder(1);
        for t in 0..opts.length {
            let _ = decoder.step(&one(p.ids[t]), &one(p.bars[t]), &one(p.beats[t]));
        }
        let cached = start.elapsed().as_secs_f64();
        let k = opts.samples.max(2);
        let mut prefix = Vec::new();
        for i in 0..k {
            let t = 1 + i * (opts.length - 1) / (k - 1);
            let batch = Batch::single(&p.ids[..t], &p.bars[..t], &p.beats[..t], Device::Cpu);
            let start = Instant::now();
            let _ = model.forward(&batch, false);
            prefix.push((t, start.elapsed().as_secs_f64()));
        }
        (cached, prefix)
    });
    let mut recompute = 0.0;
    for w in prefix.windows(2) {
        let ((a, fa), (b, fb)) = (w[0], w[1]);
        // Σ_{t=a}^{b-1} of the line through (a, fa) and (b, fb).
        for t in a..b {
            recompute += fa + (fb - fa) * (t - a) as f64 / (b - a) as f64;
        }
    }
    recompute += prefix.last().map_or(0.0, |l| l.1);
    Ok(DecodeReport {
        experiment: cfg.name,
        length: opts.length,
        cached_seconds,
        prefix_forward_seconds: prefix,
        recompute_seconds: recompute,
        speedup: recompute / cached_seconds,
    })
}

/// Least-squares slope of log(peak memory) over log(length): 1 is linear growth,
/// 2 quadratic.
pub fn memory_exponent(rows: &[&Measurement]) -> Option<f64> {
    let pts: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|m| Some(((m.length as f64).ln(), m.peak_mb.filter(|&p| p > 0.0)?.ln())))
        .collect();
    if pts.len() < 2 {
        return None;
    }
    let n = pts.len() as f64;
    let (mx, my) = (
        pts.iter().map(|p| p.0).sum::<f64>() / n,
        pts.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// What `attention.json` adds to the common provenance fields ([`Provenance`]).
#[derive(Debug, Serialize)]
pub struct AttentionDetails<'a> {
    /// `cpu` or `cuda`.
    pub device: String,
    /// Per experiment, the fitted slope of log(peak memory) over log(length).
    pub memory_exponents: Vec<(String, Option<f64>)>,
    /// Every measurement, as in `attention.csv`.
    pub measurements: &'a [Measurement],
}

/// Runs the benchmark and writes its files; returns the measurements.
pub fn attention(opts: &AttentionOptions) -> Result<Vec<Measurement>> {
    let start = Instant::now();
    if opts.device == DeviceChoice::Cuda && !tch::Cuda::is_available() {
        bail!("--device cuda but no CUDA device is available on this machine");
    }
    for e in &opts.experiments {
        ExperimentConfig::load(e, &[])?;
    }
    crate::io::create_dir_all(&opts.out)?;
    let limit = opts.memory_limit_gb.unwrap_or(0.75 * mem_total_gb());
    let mut lengths = opts.lengths.clone();
    lengths.sort_unstable();
    let mut rows: Vec<Measurement> = Vec::new();
    let bar = crate::progress::bar(
        (lengths.len() * opts.experiments.len()) as u64,
        "bench attention",
        crate::progress::Counter::Units("measurements"),
    );
    for exp in &opts.experiments {
        let mut failed = false;
        for &length in &lengths {
            bar.set_message(format!("{} at {length}", exp.display()));
            let m = if failed {
                let cfg = ExperimentConfig::load(exp, &[])?;
                Measurement {
                    experiment: cfg.name,
                    kind: cfg.model.kind().to_string(),
                    length,
                    bars: 0,
                    device: opts.device.name().into(),
                    status: "skipped".into(),
                    peak_mb: None,
                    process_peak_mb: None,
                    seconds_per_step: None,
                }
            } else {
                spawn_one(exp, length, opts, limit)?
            };
            failed |= m.status != "ok";
            bar.println(format!(
                "{:<28} {:>6} tokens: {}",
                m.experiment,
                length,
                match (m.peak_mb, m.seconds_per_step) {
                    (Some(p), Some(s)) => format!("peak {p:.0} MiB, {s:.3} s/step"),
                    (None, Some(s)) => format!("{s:.3} s/step"),
                    _ => m.status.clone(),
                }
            ));
            rows.push(m);
            write_csv(&opts.out.join("attention.csv"), &rows)?;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let mut exponents = Vec::new();
    for e in unique(&rows) {
        let mine: Vec<&Measurement> = rows.iter().filter(|m| m.experiment == e).collect();
        exponents.push((e.clone(), memory_exponent(&mine)));
    }
    Provenance::new(
        Some(start.elapsed().as_secs_f64()),
        AttentionDetails {
            device: opts.device.name().into(),
            memory_exponents: exponents,
            measurements: &rows,
        },
    )
    .write(&opts.out.join("attention.json"))?;
    for ext in ["png", "svg"] {
        figure(&rows, &opts.out.join(format!("attention.{ext}")))?;
    }
    Ok(rows)
}

fn unique(rows: &[Measurement]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for m in rows {
        if !names.contains(&m.experiment) {
            names.push(m.experiment.clone());
        }
    }
    names
}

/// Writes the measurements as CSV (atomically; cells with commas or quotes are
/// quoted).
pub fn write_csv(path: &Path, rows: &[Measurement]) -> Result<()> {
    use polars::prelude::*;
    let opt = |f: fn(&Measurement) -> Option<f64>| rows.iter().map(f).collect::<Vec<_>>();
    let mut df = df!(
        "experiment" => rows.iter().map(|m| m.experiment.as_str()).collect::<Vec<_>>(),
        "kind" => rows.iter().map(|m| m.kind.as_str()).collect::<Vec<_>>(),
        "length" => rows.iter().map(|m| m.length as u64).collect::<Vec<_>>(),
        "bars" => rows.iter().map(|m| m.bars as u64).collect::<Vec<_>>(),
        "device" => rows.iter().map(|m| m.device.as_str()).collect::<Vec<_>>(),
        "status" => rows.iter().map(|m| m.status.as_str()).collect::<Vec<_>>(),
        "peak_mb" => opt(|m| m.peak_mb),
        "process_peak_mb" => opt(|m| m.process_peak_mb),
        "seconds_per_step" => opt(|m| m.seconds_per_step),
    )?;
    crate::format::write_csv(path, &mut df)
}

/// Reads `attention.csv` back: each row into a [`Measurement`] by column name
/// (extra columns are ignored; a missing column or a cell of the wrong type is an
/// error naming the file).
pub fn read_csv(path: &Path) -> Result<Vec<Measurement>> {
    let not_ours = |e: csv::Error| {
        anyhow::anyhow!(
            "{}: not an attention benchmark CSV ({e}); expected the columns \
             experiment,kind,length,bars,device,status,peak_mb,process_peak_mb,seconds_per_step",
            path.display()
        )
    };
    csv::Reader::from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .deserialize()
        .map(|row| row.map_err(not_ours))
        .collect()
}

/// Figure 4's line colours: the palette of [`plot::COLORS`] in this order (red for
/// Museformer, the first experiment, as in the paper).
const COLOR_ORDER: [usize; 7] = [3, 0, 2, 1, 4, 5, 7];

/// Figure 4: peak memory and time per step against the maximum length, one line per
/// experiment (PNG or SVG by extension, see [`plot::save`]).
pub fn figure(rows: &[Measurement], path: &Path) -> Result<()> {
    plot::save(path, (1100, 450), &Figure4(rows))
}

/// Figure 4 of some measurements.
struct Figure4<'a>(&'a [Measurement]);

impl plot::Figure for Figure4<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        draw(root, self.0)
    }
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, rows: &[Measurement]) -> Result<()> {
    let err = plot::drawing;
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((1, 2));
    let names = unique(rows);
    let max_len = rows.iter().map(|m| m.length).max().unwrap_or(1) as f64;
    let device = rows
        .first()
        .map_or("cpu", |m| m.device.as_str())
        .to_string();
    for (panel, (title, value)) in panels.iter().zip([
        (
            format!("peak memory of a training step ({device}), MiB"),
            (|m: &Measurement| m.peak_mb) as fn(&Measurement) -> Option<f64>,
        ),
        (
            format!("time per training step ({device}), s"),
            |m: &Measurement| m.seconds_per_step,
        ),
    ]) {
        let top = rows
            .iter()
            .filter_map(value)
            .fold(0.0f64, f64::max)
            .max(1e-3)
            * 1.1;
        let mut chart = ChartBuilder::on(panel)
            .caption(&title, (FONT, 17))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..max_len * 1.05, 0.0..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("maximum sequence length (tokens)")
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .draw()
            .map_err(err)?;
        for (i, name) in names.iter().enumerate() {
            let color = plot::COLORS[COLOR_ORDER[i % COLOR_ORDER.len()]];
            let pts: Vec<(f64, f64)> = rows
                .iter()
                .filter(|m| &m.experiment == name)
                .filter_map(|m| Some((m.length as f64, value(m)?)))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(err)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(err)?;
            // Lengths that did not fit: a cross on the axis.
            for m in rows
                .iter()
                .filter(|m| &m.experiment == name && m.status != "ok")
            {
                chart
                    .draw_series(std::iter::once(Cross::new(
                        (m.length as f64, 0.0),
                        6,
                        color.stroke_width(2),
                    )))
                    .map_err(err)?;
            }
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .label_font((FONT, 13))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(length: usize, peak: f64) -> Measurement {
        Measurement {
            experiment: "x".into(),
            kind: "museformer".into(),
            length,
            bars: 1,
            device: "cpu".into(),
            status: "ok".into(),
            peak_mb: Some(peak),
            process_peak_mb: None,
            seconds_per_step: Some(0.5),
        }
    }

    #[test]
    fn exponents_of_linear_and_quadratic_growth() {
        let lin = [m(1000, 10.0), m(2000, 20.0), m(4000, 40.0)];
        let quad = [m(1000, 10.0), m(2000, 40.0), m(4000, 160.0)];
        let e = memory_exponent(&lin.iter().collect::<Vec<_>>()).unwrap();
        assert!((e - 1.0).abs() < 1e-9, "{e}");
        let e = memory_exponent(&quad.iter().collect::<Vec<_>>()).unwrap();
        assert!((e - 2.0).abs() < 1e-9, "{e}");
        assert_eq!(memory_exponent(&[&lin[0]]), None);
    }

    #[test]
    fn csv_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut rows = vec![m(1024, 12.5), m(2048, 30.0), m(4096, 1.0)];
        rows[1].status = "out of memory (over 1.0 GiB)".into();
        rows[1].peak_mb = None;
        // A status text keeps its commas and quotes.
        rows[2].status = "failed: shape [1, 2], \"x\" expected".into();
        rows[2].seconds_per_step = None;
        let path = dir.path().join("a.csv");
        write_csv(&path, &rows).unwrap();
        assert_eq!(read_csv(&path).unwrap(), rows);
        // A CSV without the benchmark's columns is named.
        let other = dir.path().join("other.csv");
        std::fs::write(&other, "experiment,length\nx,1\n").unwrap();
        let err = format!("{:#}", read_csv(&other).unwrap_err());
        assert!(
            err.contains("other.csv") && err.contains("attention benchmark"),
            "{err}"
        );
        // The committed benchmark (Figure 4 of the mini suite) reads back.
        let committed =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("results/attention-cpu/attention.csv");
        let back = read_csv(&committed).unwrap();
        assert!(!back.is_empty() && back.iter().any(|m| m.status == "ok" && m.peak_mb.is_some()));
        figure(&rows, &dir.path().join("a.png")).unwrap();
    }
}
