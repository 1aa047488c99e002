//! `museformer reproduce SUITE`: the paper's experiments as cached stages.
//!
//! ```text
//! prepare ─▶ similarity ─────────────────────────────┐
//!    └─▶ per row: train ─▶ eval                       │
//!                   └────▶ generate ─▶ se (Eq. 6) ◀───┘ ─▶ report
//! ```
//!
//! Every stage has a key ([`stage::stage_key`]) over its settings, the output
//! hashes of its inputs and the code version; a finished stage leaves a record in
//! `<work>/<suite>/stages/`, and a later run skips it ("cached") while the key is
//! the same and its outputs exist. `--force STAGE` redoes a stage by name
//! (`train:museformer`) or kind (`train`). An interrupted training resumes from its
//! checkpoint. One progress bar runs over all stages, weighted by expected cost.
//!
//! Folders: `<work>/<suite>/stages/` (records), `train/<row>/` (run folders),
//! `eval/`, `generated/<row>/`, `similarity/`, `se/`; the report goes to
//! `<results>/<suite>/` ([`crate::report`]).

pub mod stage;
pub mod suite;

use crate::data::{self, DatasetConfig, Split};
use crate::eval::generate::GenerateOptions;
use crate::provenance::Machine;
use crate::report::{self, ReportInput, RowResult};
use crate::structure::input::{self, LoadOptions};
use crate::structure::{
    similarity_distribution, similarity_error, Distribution, InstrumentSelection,
};
use crate::tokens::{self, Vocab};
use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use serde_json::json;
use stage::{hash_outputs, stage_key, write_atomic, StageRecord};
use std::path::{Path, PathBuf};
use std::time::Instant;
use suite::{slug, Row, Suite};

/// The kinds of stages, in the order they run.
pub const STAGE_KINDS: [&str; 7] = [
    "prepare",
    "similarity",
    "train",
    "eval",
    "generate",
    "se",
    "report",
];

/// Where and how a suite runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The suite file.
    pub suite: PathBuf,
    /// Folder of the stages' work (`<work>/<suite>/`).
    pub work: PathBuf,
    /// Folder of the reports (`<results>/<suite>/`).
    pub results: PathBuf,
    /// Stages to redo, by name (`train:museformer`) or kind (`train`).
    pub force: Vec<String>,
}

/// What a finished `reproduce` did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Stages run.
    pub ran: Vec<String>,
    /// Stages reused.
    pub cached: Vec<String>,
    /// The report folder.
    pub results: PathBuf,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// What the similarity-error stage writes for one row (`se/<row>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeResult {
    /// SE in percent, or `None` when no interval has pairs on both sides.
    pub se_percent: Option<f64>,
    /// Intervals averaged over.
    pub intervals: Vec<usize>,
    /// Intervals left out (no pairs on one side).
    pub missing: Vec<usize>,
    /// Why there is no SE.
    pub error: Option<String>,
    /// Pieces read.
    pub pieces: usize,
    /// The generated pieces' similarity distribution.
    pub distribution: Distribution,
}

/// The names of a row's stages.
fn row_stage(kind: &str, row: &Row) -> String {
    format!("{kind}:{}", slug(&row.label))
}

/// Every stage name of a suite, in running order.
pub fn stage_names(suite: &Suite) -> Vec<String> {
    let mut names = vec!["prepare".to_string(), "similarity".to_string()];
    for row in &suite.rows {
        for kind in ["train", "eval", "generate", "se"] {
            names.push(row_stage(kind, row));
        }
    }
    names.push("report".to_string());
    names
}

/// A suite being run: its folders, the code version and the overall progress bar.
struct Runner<'a> {
    suite: &'a Suite,
    suite_path: &'a Path,
    dir: PathBuf,
    stages: PathBuf,
    results: PathBuf,
    code: String,
    force: &'a [String],
    bar: ProgressBar,
    ran: Vec<String>,
    cached: Vec<String>,
}

/// The outputs of a stage that just ran.
struct Done {
    outputs: Vec<PathBuf>,
    output_hash: String,
    data: serde_json::Value,
}

impl Runner<'_> {
    fn forced(&self, name: &str) -> bool {
        let kind = name.split(':').next().unwrap_or(name);
        self.force.iter().any(|f| f == name || f == kind)
    }

    fn say(&self, line: &str) {
        crate::progress::println(line);
    }

    /// Runs a stage unless its record is reusable; returns its record.
    fn stage(
        &mut self,
        name: &str,
        key: String,
        weight: u64,
        run: impl FnOnce(&mut Self) -> Result<Done>,
    ) -> Result<StageRecord> {
        if !self.forced(name) {
            if let Some(rec) = StageRecord::load(&self.stages, name) {
                if rec.reusable(&key) {
                    self.say(&format!(
                        "cached  {name}  (finished {}, {:.1} s)",
                        rec.finished_at, rec.wall_seconds
                    ));
                    self.bar
                        .set_length(self.bar.length().unwrap_or(0).saturating_sub(weight));
                    self.cached.push(name.to_string());
                    return Ok(rec);
                }
            }
        }
        self.say(&format!("run     {name}"));
        self.bar.set_message(name.to_string());
        let start = Instant::now();
        let done = run(self).with_context(|| format!("stage {name}"))?;
        let rec = StageRecord {
            stage: name.to_string(),
            key,
            outputs: done.outputs,
            output_hash: done.output_hash,
            wall_seconds: start.elapsed().as_secs_f64(),
            finished_at: now(),
            data: done.data,
        };
        rec.write(&self.stages)?;
        self.bar.inc(weight);
        self.say(&format!("done    {name}  ({:.1} s)", rec.wall_seconds));
        self.ran.push(name.to_string());
        if crate::train::interrupt_requested() {
            bail!("interrupted after stage {name}; run the same command again to continue (finished stages are kept)");
        }
        Ok(rec)
    }
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Refuses `--force` values that name no stage of the suite.
fn check_force(suite: &Suite, force: &[String]) -> Result<()> {
    let names = stage_names(suite);
    for f in force {
        if !STAGE_KINDS.contains(&f.as_str()) && !names.contains(f) {
            bail!(
                "--force {f}: no such stage; give a kind ({}) or a stage name ({})",
                STAGE_KINDS.join(", "),
                names.join(", ")
            );
        }
    }
    Ok(())
}

/// Expected cost of each stage, in rough seconds on a 2-core CPU for the small
/// models (only the overall bar's proportions and ETA depend on it).
fn weights(suite: &Suite) -> Result<Vec<(String, u64)>> {
    let mut w = vec![("prepare".to_string(), 5), ("similarity".to_string(), 2)];
    let g = &suite.generate;
    for row in &suite.rows {
        let cfg = suite.experiment(row)?;
        let train = (cfg.train.steps as u64 * cfg.train.batch_tokens as u64 / 8000).max(1);
        w.push((row_stage("train", row), train));
        w.push((row_stage("eval", row), (train / 10).max(2)));
        w.push((
            row_stage("generate", row),
            (g.num as u64 * g.max_len as u64 / 800).max(1),
        ));
        w.push((row_stage("se", row), 1));
    }
    w.push(("report".to_string(), 3));
    Ok(w)
}

/// Runs a suite: every stage whose record is not reusable, then the report.
pub fn reproduce(opts: &Options) -> Result<Outcome> {
    let start = Instant::now();
    let suite = Suite::load(&opts.suite)?;
    check_force(&suite, &opts.force)?;
    let data_cfg = DatasetConfig::load(&suite.dataset)?;
    data::prepare::check_midi_dir(&data_cfg).with_context(|| {
        format!(
            "dataset {} of suite {}",
            suite.dataset.display(),
            opts.suite.display()
        )
    })?;
    let dir = opts.work.join(&suite.name);
    let weights = weights(&suite)?;
    crate::progress::install();
    let bar = crate::progress::bar(
        weights.iter().map(|w| w.1).sum(),
        &format!("suite {}", suite.name),
        crate::progress::Counter::Percent,
    );
    let mut runner = Runner {
        suite: &suite,
        suite_path: &opts.suite,
        stages: dir.join("stages"),
        dir,
        results: opts.results.join(&suite.name),
        code: stage::code_version()?,
        force: &opts.force,
        bar,
        ran: Vec::new(),
        cached: Vec::new(),
    };
    let weight = |name: &str| weights.iter().find(|w| w.0 == name).map_or(1, |w| w.1);

    let prepared = prepare_stage(&mut runner, &data_cfg, weight("prepare"))?;
    let similarity = similarity_stage(&mut runner, &data_cfg, &prepared, weight("similarity"))?;
    let mut rows = Vec::new();
    for row in &suite.rows {
        let train = train_stage(
            &mut runner,
            row,
            &prepared,
            weight(&row_stage("train", row)),
        )?;
        let eval = eval_stage(&mut runner, row, &train, weight(&row_stage("eval", row)))?;
        let generate = generate_stage(
            &mut runner,
            row,
            &train,
            weight(&row_stage("generate", row)),
        )?;
        let se = se_stage(
            &mut runner,
            row,
            &data_cfg,
            &generate,
            &similarity,
            weight(&row_stage("se", row)),
        )?;
        rows.push(RowRecords {
            train,
            eval,
            generate,
            se,
        });
    }
    let inputs: Vec<&str> = std::iter::once(similarity.output_hash.as_str())
        .chain(rows.iter().flat_map(|r| {
            [
                r.train.output_hash.as_str(),
                r.eval.output_hash.as_str(),
                r.se.output_hash.as_str(),
            ]
        }))
        .collect();
    let attention_hash = match &suite.attention {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| {
                format!(
                    "the suite's `attention:` file {} cannot be read; run `just bench-attention` \
                     (or `museformer bench attention --out DIR`) first, or remove the key",
                    path.display()
                )
            })?;
            blake3::hash(&bytes).to_hex().to_string()
        }
        None => String::new(),
    };
    let mut inputs = inputs;
    inputs.push(attention_hash.as_str());
    let key = stage_key(
        "report",
        &(&suite, runner.results.display().to_string()),
        &inputs,
        &runner.code,
    )?;
    let records = Records {
        prepare: prepared,
        similarity,
        rows,
    };
    runner.stage("report", key, weight("report"), |r| {
        let files = write_report(r.suite, r.suite_path, &records, &r.stages, &r.results)?;
        Ok(Done {
            output_hash: hash_outputs(&r.results, &files)?,
            outputs: files,
            data: json!({}),
        })
    })?;
    runner.bar.finish_and_clear();
    Ok(Outcome {
        ran: runner.ran,
        cached: runner.cached,
        results: runner.results,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The records a report reads.
struct Records {
    prepare: StageRecord,
    similarity: StageRecord,
    rows: Vec<RowRecords>,
}

struct RowRecords {
    train: StageRecord,
    eval: StageRecord,
    generate: StageRecord,
    se: StageRecord,
}

fn prepare_stage(r: &mut Runner, data_cfg: &DatasetConfig, weight: u64) -> Result<StageRecord> {
    let fingerprint = data::prepare::input_fingerprint(data_cfg)?;
    let key = stage_key("prepare", data_cfg, &[&fingerprint], &r.code)?;
    r.stage("prepare", key, weight, |r| {
        let force = r.forced("prepare");
        let manifest = match data::prepare(data_cfg, force)? {
            data::PrepareOutcome::Built(m) | data::PrepareOutcome::UpToDate(m) => m,
        };
        r.say(&manifest.summary());
        Ok(Done {
            outputs: vec![data_cfg.out.join("manifest.json")],
            output_hash: manifest.fingerprint.clone(),
            data: json!({"songs": manifest.songs, "splits": manifest.splits, "tokens": manifest.tokens}),
        })
    })
}

fn similarity_stage(
    r: &mut Runner,
    data_cfg: &DatasetConfig,
    prepared: &StageRecord,
    weight: u64,
) -> Result<StageRecord> {
    let t = r.suite.eval.max_interval;
    let settings = json!({"max_interval": t, "split": "train", "instrument": "auto"});
    let key = stage_key("similarity", &settings, &[&prepared.output_hash], &r.code)?;
    r.stage("similarity", key, weight, |r| {
        let corpus = input::load(
            &data_cfg.out,
            &LoadOptions {
                max_interval: t,
                selection: InstrumentSelection::Auto,
                split: Some(Split::Train),
                data: data_cfg.clone(),
            },
        )?;
        let out = r.dir.join("similarity");
        std::fs::create_dir_all(&out)
            .with_context(|| format!("cannot create {}", out.display()))?;
        let file = out.join("distribution.json");
        write_atomic(
            &file,
            serde_json::to_string(
                &json!({"name": corpus.name, "distribution": corpus.distribution}),
            )?
            .as_bytes(),
        )?;
        crate::structure::tables::write_similarity_csv(
            &out.join("similarity.csv"),
            &[(corpus.name.as_str(), &corpus.distribution)],
        )?;
        Ok(Done {
            output_hash: hash_outputs(&r.dir, std::slice::from_ref(&file))?,
            outputs: vec![file],
            data: json!({"name": corpus.name, "songs_used": corpus.distribution.counts.songs_used,
                         "pairs": corpus.distribution.total_pairs()}),
        })
    })
}

/// The checkpoint files evaluation and generation read (best and last).
fn checkpoint_files(run_dir: &Path) -> Vec<PathBuf> {
    ["best", "last"]
        .iter()
        .map(|c| {
            run_dir
                .join("checkpoints")
                .join(c)
                .join("model.safetensors")
        })
        .filter(|p| p.is_file())
        .collect()
}

fn train_stage(
    r: &mut Runner,
    row: &Row,
    prepared: &StageRecord,
    weight: u64,
) -> Result<StageRecord> {
    let name = row_stage("train", row);
    let cfg = r.suite.experiment(row)?;
    let key = stage_key(&name, &cfg, &[&prepared.output_hash], &r.code)?;
    let root = r.dir.join("train").join(slug(&row.label));
    let run_dir = cfg.run_dir(&root);
    // Marks which key the run folder's checkpoints belong to, so only an
    // interrupted run of the same stage is resumed.
    let started = StageRecord::path(&r.stages, &name).with_extension("started");
    let stage_key_now = key.clone();
    r.stage(&name, key, weight, |r| {
        let same_start = std::fs::read_to_string(&started).is_ok_and(|k| k == stage_key_now);
        if run_dir.exists() && (r.forced(&name) || !same_start) {
            std::fs::remove_dir_all(&run_dir)
                .with_context(|| format!("cannot remove {}", run_dir.display()))?;
        } else if run_dir.join("checkpoints/last").exists() {
            r.say(&format!("resuming {name} from {}", run_dir.join("checkpoints/last").display()));
        }
        write_atomic(&started, stage_key_now.as_bytes())?;
        let summary = crate::train::train(&cfg, &root, true)?;
        if summary.interrupted {
            bail!(
                "interrupted at step {} of {}; run the same command again to resume from the checkpoint in {}",
                summary.state.step,
                cfg.train.steps,
                run_dir.display()
            );
        }
        let s = &summary.state;
        Ok(Done {
            output_hash: hash_outputs(&run_dir, &checkpoint_files(&run_dir))?,
            outputs: vec![run_dir.clone()],
            data: json!({
                "run_dir": run_dir,
                "experiment": row.experiment,
                "config_hash": cfg.hash(),
                "steps": s.step,
                "tokens": s.tokens,
                "train_seconds": s.seconds,
                "best_valid_loss": s.best_valid,
                "last_loss": summary.last_loss,
            }),
        })
    })
}

fn run_dir_of(train: &StageRecord) -> Result<PathBuf> {
    train.data["run_dir"]
        .as_str()
        .map(PathBuf::from)
        .with_context(|| format!("the record of {} names no run folder", train.stage))
}

fn eval_stage(r: &mut Runner, row: &Row, train: &StageRecord, weight: u64) -> Result<StageRecord> {
    let name = row_stage("eval", row);
    let lengths = r.suite.eval.lengths.clone();
    let key = stage_key(&name, &lengths, &[&train.output_hash], &r.code)?;
    let run_dir = run_dir_of(train)?;
    r.stage(&name, key, weight, |r| {
        let rows = crate::eval::evaluate(&run_dir, Some(lengths))?;
        let out = r
            .dir
            .join("eval")
            .join(format!("{}.json", slug(&row.label)));
        let text = serde_json::to_string_pretty(&rows)?;
        write_atomic(&out, text.as_bytes())?;
        Ok(Done {
            output_hash: blake3::hash(text.as_bytes()).to_hex()[..32].to_string(),
            outputs: vec![out],
            data: json!({"perplexity": rows}),
        })
    })
}

fn generate_stage(
    r: &mut Runner,
    row: &Row,
    train: &StageRecord,
    weight: u64,
) -> Result<StageRecord> {
    let name = row_stage("generate", row);
    let g = r.suite.generate.clone();
    let key = stage_key(&name, &g, &[&train.output_hash], &r.code)?;
    let run_dir = run_dir_of(train)?;
    r.stage(&name, key, weight, |r| {
        let out = r.dir.join("generated").join(slug(&row.label));
        if out.exists() {
            std::fs::remove_dir_all(&out)
                .with_context(|| format!("cannot remove {}", out.display()))?;
        }
        let opts = GenerateOptions {
            num: g.num,
            top_k: g.top_k,
            temperature: g.temperature,
            seed: g.seed,
            max_len: g.max_len,
            prompt: None,
            no_cache: false,
        };
        let reports = crate::eval::generate::generate(&run_dir, &opts, &out)?;
        let pieces: Vec<PathBuf> = reports.iter().map(|p| p.tokens_file.clone()).collect();
        let n = reports.len().max(1) as f64;
        Ok(Done {
            output_hash: hash_outputs(&out, &pieces)?,
            outputs: vec![out.clone()],
            data: json!({
                "folder": out,
                "pieces": pieces,
                "ended": reports.iter().filter(|p| p.ended).count(),
                "mean_kept_tokens": reports.iter().map(|p| p.kept as f64).sum::<f64>() / n,
                "tokens_per_sec": reports.iter().map(|p| p.tokens_per_sec).sum::<f64>() / n,
            }),
        })
    })
}

fn se_stage(
    r: &mut Runner,
    row: &Row,
    data_cfg: &DatasetConfig,
    generate: &StageRecord,
    similarity: &StageRecord,
    weight: u64,
) -> Result<StageRecord> {
    let name = row_stage("se", row);
    let t = r.suite.eval.max_interval;
    let key = stage_key(
        &name,
        &json!({"max_interval": t, "instrument": "auto"}),
        &[&generate.output_hash, &similarity.output_hash],
        &r.code,
    )?;
    let pieces: Vec<PathBuf> = serde_json::from_value(generate.data["pieces"].clone())
        .with_context(|| format!("the record of {} lists no pieces", generate.stage))?;
    r.stage(&name, key, weight, |r| {
        let training = load_training(similarity)?.1;
        let vocab = Vocab::new(data_cfg.encoding.pos_per_beat);
        let songs = pieces
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?;
                tokens::parse_tokens(&text, &vocab).with_context(|| format!("{}", p.display()))
            })
            .collect::<Result<Vec<_>>>()?;
        let generated = similarity_distribution(&songs, t, InstrumentSelection::Auto)?;
        let result = match similarity_error(&generated, &training, t) {
            Ok(se) => SeResult {
                se_percent: Some(se.percent()),
                intervals: se.intervals,
                missing: se.missing,
                error: None,
                pieces: songs.len(),
                distribution: generated,
            },
            Err(e) => SeResult {
                se_percent: None,
                intervals: Vec::new(),
                missing: (1..=t).collect(),
                error: Some(e.to_string()),
                pieces: songs.len(),
                distribution: generated,
            },
        };
        let out = r.dir.join("se").join(format!("{}.json", slug(&row.label)));
        let text = serde_json::to_string(&result)?;
        write_atomic(&out, text.as_bytes())?;
        Ok(Done {
            output_hash: blake3::hash(text.as_bytes()).to_hex()[..32].to_string(),
            outputs: vec![out],
            data: json!({"se_percent": result.se_percent, "missing": result.missing, "error": result.error}),
        })
    })
}

/// The training data's name and distribution from the similarity stage's output.
fn load_training(similarity: &StageRecord) -> Result<(String, Distribution)> {
    #[derive(Deserialize)]
    struct Saved {
        name: String,
        distribution: Distribution,
    }
    let file = similarity
        .outputs
        .first()
        .context("the similarity record lists no output")?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let s: Saved =
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", file.display()))?;
    Ok((s.name, s.distribution))
}

/// Reads the records of every stage a report needs, refusing when one is missing.
fn load_records(suite: &Suite, stages: &Path) -> Result<Records> {
    let get = |name: &str| {
        StageRecord::load(stages, name).with_context(|| {
            format!(
                "stage {name} has not finished (no {}); run `museformer reproduce` on the suite first",
                StageRecord::path(stages, name).display()
            )
        })
    };
    Ok(Records {
        prepare: get("prepare")?,
        similarity: get("similarity")?,
        rows: suite
            .rows
            .iter()
            .map(|row| {
                Ok(RowRecords {
                    train: get(&row_stage("train", row))?,
                    eval: get(&row_stage("eval", row))?,
                    generate: get(&row_stage("generate", row))?,
                    se: get(&row_stage("se", row))?,
                })
            })
            .collect::<Result<_>>()?,
    })
}

/// A listening test's ratings for the report's Tables 2 and 3.
#[derive(Debug, Clone)]
pub struct Ratings {
    /// The ratings CSV (`rater,group,model,musicality,short_term,long_term,overall`).
    pub ratings: PathBuf,
    /// The kit's `key.csv` when the model column holds anonymous piece ids.
    pub key: Option<PathBuf>,
}

/// `museformer report SUITE`: writes the report from the suite's finished stages,
/// and Tables 2 and 3 ([`crate::listening`], the suite's `reference` row against
/// the others) when ratings are given.
pub fn report(
    suite_path: &Path,
    work: &Path,
    results: &Path,
    ratings: Option<&Ratings>,
) -> Result<Vec<PathBuf>> {
    let suite = Suite::load(suite_path)?;
    let stages = work.join(&suite.name).join("stages");
    let records = load_records(&suite, &stages)?;
    let out = results.join(&suite.name);
    let mut files = write_report(&suite, suite_path, &records, &stages, &out)?;
    if let Some(r) = ratings {
        let tables = crate::listening::ListeningTables::compute(
            &r.ratings,
            r.key.as_deref(),
            &suite.reference,
        )?;
        tables.write(&out)?;
        let readme_path = out.join("README.md");
        let mut readme = std::fs::read_to_string(&readme_path)
            .with_context(|| format!("cannot read {}", readme_path.display()))?;
        readme.push_str(&format!(
            "\n## Tables 2 and 3: the listening test\n\nFrom {} ({} (rater, group) pairs): \
             [Table 2](table2.md) ([CSV](table2.csv), [LaTeX](table2.tex)) and \
             [Table 3](table3.md) ([CSV](table3.csv), [LaTeX](table3.tex)).\n",
            r.ratings.display(),
            tables.units
        ));
        std::fs::write(&readme_path, readme)
            .with_context(|| format!("cannot write {}", readme_path.display()))?;
        for t in ["table2", "table3"] {
            for ext in ["md", "csv", "tex"] {
                files.push(out.join(format!("{t}.{ext}")));
            }
        }
    }
    Ok(files)
}

fn git(args: &[&str]) -> Option<String> {
    std::process::Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Gathers the report's inputs from the records and writes it.
fn write_report(
    suite: &Suite,
    suite_path: &Path,
    records: &Records,
    stages: &Path,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let (training_name, training) = load_training(&records.similarity)?;
    let mut rows = Vec::new();
    let mut experiments = Vec::new();
    for (row, rec) in suite.rows.iter().zip(&records.rows) {
        let ppl: Vec<f64> = rec.eval.data["perplexity"]
            .as_array()
            .map(|rows| rows.iter().filter_map(|r| r["ppl"].as_f64()).collect())
            .unwrap_or_default();
        let se_file = rec
            .se
            .outputs
            .first()
            .context("the se record lists no output")?;
        let se: SeResult = serde_json::from_str(
            &std::fs::read_to_string(se_file)
                .with_context(|| format!("cannot read {}", se_file.display()))?,
        )
        .with_context(|| format!("{} is damaged", se_file.display()))?;
        let se_note = match (&se.error, se.missing.is_empty()) {
            (Some(e), _) => Some(format!("no SE: {e}")),
            (None, false) => Some(format!(
                "SE over {} of {} intervals (the pieces have no bar pairs at t = {})",
                se.intervals.len(),
                suite.eval.max_interval,
                compact(&se.missing)
            )),
            (None, true) => None,
        };
        rows.push(RowResult {
            label: row.label.clone(),
            ppl,
            se: se.se_percent,
            se_note,
            paper: row.paper,
            generated: se.distribution,
            pieces: se.pieces,
        });
        experiments.push(json!({
            "label": row.label,
            "experiment": row.experiment,
            "config_hash": rec.train.data["config_hash"],
            "run_dir": rec.train.data["run_dir"],
            "steps": rec.train.data["steps"],
            "train_seconds": rec.train.data["train_seconds"],
        }));
    }
    let all: Vec<&StageRecord> = [&records.prepare, &records.similarity]
        .into_iter()
        .chain(
            records
                .rows
                .iter()
                .flat_map(|r| [&r.train, &r.eval, &r.generate, &r.se]),
        )
        .collect();
    let first = &records.rows[0];
    let cfg = suite.experiment(&suite.rows[0])?;
    let setting = format!(
        "Models trained {} steps on batches of up to {} tokens (sequences cut at {}) on the dataset of {}; \
         SE from {} generated pieces per model of at most {} tokens (top-k {}).",
        first.train.data["steps"],
        cfg.train.batch_tokens,
        cfg.train.max_tokens,
        suite.dataset.display(),
        suite.generate.num,
        suite.generate.max_len,
        suite.generate.top_k
    );
    let provenance = json!({
        "suite": suite.name,
        "suite_file": suite_path,
        "suite_hash": blake3::hash(serde_json::to_string(suite)?.as_bytes()).to_hex().to_string(),
        "command": std::env::args().collect::<Vec<_>>(),
        "museformer_version": env!("CARGO_PKG_VERSION"),
        "code_version": stage::code_version()?,
        "git_commit": git(&["rev-parse", "HEAD"]),
        "git_dirty": git(&["status", "--porcelain"]).map(|s| !s.is_empty()),
        "machine": Machine::current(),
        "written": now(),
        "stages_folder": stages,
        "experiments": experiments,
        "stages": all.iter().map(|s| json!({
            "stage": s.stage,
            "key": s.key,
            "finished_at": s.finished_at,
            "wall_seconds": s.wall_seconds,
        })).collect::<Vec<_>>(),
        "total_stage_seconds": all.iter().map(|s| s.wall_seconds).sum::<f64>(),
    });
    report::write(
        &ReportInput {
            suite: suite.name.clone(),
            lengths: suite.eval.lengths.clone(),
            setting,
            rows,
            training_name: format!("{training_name} (training data)"),
            training,
            provenance,
            attention: match &suite.attention {
                Some(path) => Some(crate::bench::read_csv(path)?),
                None => None,
            },
        },
        out,
    )
}

/// `1, 2, 3, 7` → `1-3, 7`.
fn compact(xs: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < xs.len() {
        let mut j = i;
        while j + 1 < xs.len() && xs[j + 1] == xs[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            xs[i].to_string()
        } else {
            format!("{}-{}", xs[i], xs[j])
        });
        i = j + 1;
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_lists_are_compacted() {
        assert_eq!(compact(&[1, 2, 3, 7, 9, 10]), "1-3, 7, 9-10");
        assert_eq!(compact(&[]), "");
    }

    #[test]
    fn the_prepare_key_follows_the_midi_files_and_settings() {
        let dir = tempfile::tempdir().unwrap();
        let midi = dir.path().join("midi");
        std::fs::create_dir_all(&midi).unwrap();
        std::fs::write(midi.join("a.mid"), b"MThd").unwrap();
        let mut cfg = DatasetConfig::for_folder(midi.clone(), dir.path().join("out"));
        let key = |cfg: &DatasetConfig| {
            let f = data::prepare::input_fingerprint(cfg).unwrap();
            stage_key("prepare", cfg, &[&f], "code").unwrap()
        };
        let k1 = key(&cfg);
        assert_eq!(k1, key(&cfg));
        std::fs::write(midi.join("b.mid"), b"MThd").unwrap();
        let k2 = key(&cfg);
        assert_ne!(k1, k2, "a new MIDI file keeps the key");
        cfg.encoding.ignore_ts = !cfg.encoding.ignore_ts;
        assert_ne!(k2, key(&cfg), "a new setting keeps the key");
        cfg.midi_dir = dir.path().join("nowhere");
        cfg.missing_help = Some("download it".into());
        let err = format!("{:#}", data::prepare::input_fingerprint(&cfg).unwrap_err());
        assert!(
            err.contains("nowhere") && err.contains("download it"),
            "{err}"
        );
    }

    #[test]
    fn the_train_key_follows_the_resolved_experiment() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("data.yaml"),
            "name: d\nmidi_dir: m\nout: o\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("e.yaml"), "name: e\n").unwrap();
        let suite_text = |set: &str| {
            format!(
                "name: s\ndataset: {d}/data.yaml\nreference: A\nset: [{set}]\nrows:\n  - {{label: A, experiment: {d}/e.yaml}}\n"
            )
        };
        let key = |set: &str| {
            let p = dir.path().join("s.yaml");
            std::fs::write(&p, suite_text(set)).unwrap();
            let s = Suite::load(&p).unwrap();
            let cfg = s.experiment(&s.rows[0]).unwrap();
            stage_key("train:a", &cfg, &["data"], "code").unwrap()
        };
        let k = key("train.steps=5");
        assert_eq!(k, key("train.steps=5"));
        assert_ne!(k, key("train.steps=6"));
        assert_ne!(k, key("train.steps=5, model.layers=1"));
    }
}
