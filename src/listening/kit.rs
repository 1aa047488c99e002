//! The listening-test kit: from each model's folder of generated MIDI files, pick
//! one distinct piece per group at random (seeded), put each group's pieces under
//! anonymous ids in a shuffled letter order, render them to WAV with FluidSynth when
//! it and a General MIDI SoundFont are installed, and write a blank ratings sheet,
//! the key from ids to models, a README and `kit.json`.
//!
//! Layout of the output folder:
//! - `for-raters/` — what the raters get, naming no model: `group-01/piece-A.mid`
//!   (and `.wav`), ..., `instructions.txt`, and the blank `ratings.csv`
//!   (`rater,group,model,musicality,short_term,long_term,overall`, one row per rater,
//!   group and piece, the model column holding the piece id, scores empty);
//! - `key.csv` — `group,piece,model,source`: keep it from the raters;
//! - `kit.json` — the settings; `README.txt` — what to do next.
//!
//! The MIDI files are re-written through [`crate::midi`] with track names removed,
//! so no name, text event or file date in them points to a model.

use crate::midi;
use anyhow::{bail, Context, Result};
use polars::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Where Debian's `fluid-soundfont-gm` puts its SoundFont (and its alternative).
pub const DEFAULT_SOUNDFONTS: [&str; 2] = [
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
];

/// The sample rate of rendered WAV files.
pub const SAMPLE_RATE: u32 = 44_100;

/// The folder of the kit that goes to the raters.
pub const RATERS_DIR: &str = "for-raters";

/// How to get WAV files when the kit holds only MIDI.
pub const INSTALL_HINT: &str = "to render WAV, install FluidSynth and a General MIDI SoundFont \
(Debian/Ubuntu: `sudo apt-get install fluidsynth fluid-soundfont-gm`) and build the kit again, \
or render each file yourself: `fluidsynth -ni -F piece-A.wav -r 44100 \
/usr/share/sounds/sf2/FluidR3_GM.sf2 piece-A.mid`";

/// Settings of a kit.
#[derive(Debug, Clone, Default)]
pub struct KitOptions {
    /// Number of groups; each model folder needs at least this many MIDI files.
    pub groups: usize,
    /// Number of raters (rows of the blank sheet: raters × groups × models).
    pub raters: usize,
    /// Seed of the piece choice and the letter orders.
    pub seed: u64,
    /// Output folder (created; must not exist or be empty).
    pub out: PathBuf,
    /// General MIDI SoundFont; `None`: the first of [`DEFAULT_SOUNDFONTS`] that exists.
    pub soundfont: Option<PathBuf>,
}

/// One piece in the kit.
#[derive(Debug, Clone, Serialize)]
pub struct KitPiece {
    /// Group id (`group-01`, ...).
    pub group: String,
    /// Anonymous id within the group (`piece-A`, ...).
    pub piece: String,
    /// The model's label.
    pub model: String,
    /// The generated file it was made from.
    pub source: PathBuf,
    /// The anonymous MIDI file.
    pub midi: PathBuf,
    /// The rendered WAV file, when rendering was possible.
    pub wav: Option<PathBuf>,
}

/// What [`build_kit`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct KitReport {
    /// The output folder.
    pub out: PathBuf,
    /// The folder to send to the raters.
    pub raters_dir: PathBuf,
    /// The blank ratings sheet.
    pub ratings: PathBuf,
    /// The key from anonymous ids to models.
    pub key: PathBuf,
    /// Every piece, by group and id.
    pub pieces: Vec<KitPiece>,
    /// Whether WAV files were rendered.
    pub rendered: bool,
    /// How the pieces were rendered, or why only MIDI was written.
    pub audio: String,
}

impl KitReport {
    /// A few lines for the terminal.
    pub fn summary(&self) -> String {
        let groups = self
            .pieces
            .iter()
            .map(|p| &p.group)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let models = self.pieces.len() / groups.max(1);
        let files = if self.rendered {
            format!("{} MIDI and WAV files", self.pieces.len())
        } else {
            format!("{} MIDI files, MIDI only (no WAV)", self.pieces.len())
        };
        format!(
            "wrote a listening-test kit of {groups} groups x {models} models ({files}) to {}\n\
             audio: {}\n\
             send {} to the raters; keep {} (it names the models)\n\
             afterwards: museformer stats listening RATINGS.csv --key {} --out TABLES_DIR",
            self.out.display(),
            self.audio,
            self.raters_dir.display(),
            self.key.display(),
            self.key.display()
        )
    }
}

/// How pieces are rendered to audio.
enum Renderer {
    /// `fluidsynth -ni -F OUT.wav -r 44100 SOUNDFONT IN.mid`.
    FluidSynth {
        program: PathBuf,
        soundfont: PathBuf,
    },
    /// MIDI only, for this reason.
    MidiOnly(String),
}

/// The first executable file `name` in the folders of `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// FluidSynth and a SoundFont when both are there; a `--soundfont` that does not
/// exist is an error.
fn find_renderer(soundfont: Option<&Path>) -> Result<Renderer> {
    if let Some(sf) = soundfont {
        if !sf.is_file() {
            bail!("the SoundFont {} does not exist", sf.display());
        }
    }
    let Some(program) = on_path("fluidsynth") else {
        return Ok(Renderer::MidiOnly("fluidsynth is not on PATH".into()));
    };
    let soundfont = soundfont.map(Path::to_path_buf).or_else(|| {
        DEFAULT_SOUNDFONTS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    });
    match soundfont {
        Some(soundfont) => Ok(Renderer::FluidSynth { program, soundfont }),
        None => Ok(Renderer::MidiOnly(format!(
            "no General MIDI SoundFont at {} (pass --soundfont FILE)",
            DEFAULT_SOUNDFONTS.join(" or ")
        ))),
    }
}

impl Renderer {
    /// Renders one MIDI file to WAV; `None` for MIDI only.
    fn render(&self, midi: &Path) -> Result<Option<PathBuf>> {
        let Renderer::FluidSynth { program, soundfont } = self else {
            return Ok(None);
        };
        let wav = midi.with_extension("wav");
        let output = std::process::Command::new(program)
            .arg("-ni")
            .arg("-F")
            .arg(&wav)
            .arg("-r")
            .arg(SAMPLE_RATE.to_string())
            .arg(soundfont)
            .arg(midi)
            .output()
            .with_context(|| format!("cannot run {}", program.display()))?;
        let rendered = std::fs::metadata(&wav).is_ok_and(|m| m.len() > 0);
        if !output.status.success() || !rendered {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
            bail!(
                "{} could not render {} ({}{}): {}",
                program.display(),
                midi.display(),
                output.status,
                if rendered { "" } else { ", no WAV written" },
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            );
        }
        Ok(Some(wav))
    }

    /// In words, for the report and the README.
    fn describe(&self) -> String {
        match self {
            Renderer::FluidSynth { program, soundfont } => format!(
                "WAV rendered at {SAMPLE_RATE} Hz by {} with the SoundFont {}",
                program.display(),
                soundfont.display()
            ),
            Renderer::MidiOnly(why) => format!("MIDI only: {why}; {INSTALL_HINT}"),
        }
    }
}

/// The MIDI files (`.mid`, `.midi`) directly in `dir`, sorted by name.
fn midi_files(label: &str, dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("model `{label}`: cannot read the folder {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("model `{label}`: cannot read the folder {}", dir.display()))?
            .path();
        let is_midi = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("mid") || e.eq_ignore_ascii_case("midi"));
        if is_midi && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Copies a MIDI file through the reader and writer, without track names.
fn anonymize(source: &Path, dest: &Path) -> Result<()> {
    let mut score =
        midi::read_file(source).with_context(|| format!("cannot read {}", source.display()))?;
    for track in &mut score.tracks {
        track.name.clear();
    }
    midi::write_file(&score, dest).with_context(|| format!("cannot write {}", dest.display()))
}

/// `prefix-01`, ... with at least two digits.
fn numbered(prefix: &str, i: usize, count: usize) -> String {
    let width = count.to_string().len().max(2);
    format!("{prefix}-{:0width$}", i + 1)
}

/// Settings recorded in `kit.json`.
#[derive(Serialize)]
struct KitJson<'a> {
    museformer_version: &'a str,
    created: String,
    seed: u64,
    groups: usize,
    raters: usize,
    models: Vec<KitModel<'a>>,
    rendered: bool,
    audio: &'a str,
}

/// A model in `kit.json`.
#[derive(Serialize)]
struct KitModel<'a> {
    label: &'a str,
    folder: &'a Path,
    midi_files: usize,
}

/// What the raters read.
const INSTRUCTIONS: &str = "Listening test\n\n\
Each folder group-NN holds one piece of music from each of several systems, named piece-A,\n\
piece-B, ... in an order that differs from group to group. Listen to every piece of a group,\n\
then rate each piece on four scales from 1 (worst) to 10 (best):\n\n\
- musicality: how good it sounds as music (melody, harmony, rhythm);\n\
- short_term: short-term structure, whether neighbouring bars fit together and repeat or\n  develop sensibly;\n\
- long_term: long-term structure, whether the whole piece is organized, with themes or\n  sections that return;\n\
- overall: your overall impression.\n\n\
Fill in your rows of ratings.csv (your rater id is in the first column, the piece in the\n\
third): whole numbers from 1 to 10, every cell filled. Please do not rename the pieces.\n";

/// Builds a listening-test kit (see the module documentation) from `models`:
/// (label, folder of generated MIDI files) pairs, 2 to 26 of them. It prints
/// nothing: callers show [`KitReport::summary`] (or at least [`KitReport::audio`]),
/// which says when only MIDI was written and how to get WAV.
pub fn build_kit(models: &[(String, PathBuf)], opts: &KitOptions) -> Result<KitReport> {
    if models.len() < 2 || models.len() > 26 {
        bail!(
            "a listening kit needs 2 to 26 models (one letter each), got {}",
            models.len()
        );
    }
    for (i, (label, _)) in models.iter().enumerate() {
        if label.trim().is_empty() {
            bail!("model {} has an empty label", i + 1);
        }
        if models[..i].iter().any(|(l, _)| l == label) {
            bail!("the model label `{label}` is given twice");
        }
    }
    if opts.groups == 0 || opts.raters == 0 {
        bail!(
            "a listening kit needs at least one group and one rater (got {} groups, {} raters)",
            opts.groups,
            opts.raters
        );
    }
    let out = &opts.out;
    if out.exists()
        && std::fs::read_dir(out)
            .with_context(|| format!("cannot read {}", out.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} already exists and is not empty; choose another --out or delete it",
            out.display()
        );
    }
    let renderer = find_renderer(opts.soundfont.as_deref())?;
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut chosen = Vec::with_capacity(models.len());
    let mut available = Vec::with_capacity(models.len());
    for (label, dir) in models {
        let mut files = midi_files(label, dir)?;
        if files.len() < opts.groups {
            bail!(
                "model `{label}`: {} has {} MIDI files, but {} groups need one distinct piece each",
                dir.display(),
                files.len(),
                opts.groups
            );
        }
        available.push(files.len());
        files.shuffle(&mut rng);
        files.truncate(opts.groups);
        chosen.push(files);
    }
    let raters_dir = out.join(RATERS_DIR);
    let mut pieces = Vec::with_capacity(opts.groups * models.len());
    for g in 0..opts.groups {
        let group = numbered("group", g, opts.groups);
        let dir = raters_dir.join(&group);
        crate::io::create_dir_all(&dir)?;
        let mut order: Vec<usize> = (0..models.len()).collect();
        order.shuffle(&mut rng);
        for (j, &m) in order.iter().enumerate() {
            let piece = format!("piece-{}", char::from(b'A' + j as u8));
            let source = chosen[m].pop().expect("groups pieces per model");
            let midi = dir.join(format!("{piece}.mid"));
            anonymize(&source, &midi)?;
            let wav = renderer.render(&midi)?;
            pieces.push(KitPiece {
                group: group.clone(),
                piece,
                model: models[m].0.clone(),
                source,
                midi,
                wav,
            });
        }
    }
    let key = out.join("key.csv");
    let mut key_df = df!(
        "group" => pieces.iter().map(|p| p.group.as_str()).collect::<Vec<_>>(),
        "piece" => pieces.iter().map(|p| p.piece.as_str()).collect::<Vec<_>>(),
        "model" => pieces.iter().map(|p| p.model.as_str()).collect::<Vec<_>>(),
        "source" => pieces.iter().map(|p| p.source.display().to_string()).collect::<Vec<_>>(),
    )?;
    crate::format::write_csv(&key, &mut key_df)?;
    let ratings = raters_dir.join("ratings.csv");
    let rows: Vec<(String, &KitPiece)> = (0..opts.raters)
        .flat_map(|r| {
            let rater = numbered("rater", r, opts.raters);
            pieces.iter().map(move |p| (rater.clone(), p))
        })
        .collect();
    let blank = vec![None::<u32>; rows.len()];
    let mut sheet = df!(
        "rater" => rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        "group" => rows.iter().map(|r| r.1.group.as_str()).collect::<Vec<_>>(),
        "model" => rows.iter().map(|r| r.1.piece.as_str()).collect::<Vec<_>>(),
        "musicality" => blank.clone(),
        "short_term" => blank.clone(),
        "long_term" => blank.clone(),
        "overall" => blank,
    )?;
    crate::format::write_csv(&ratings, &mut sheet)?;
    let rendered = matches!(renderer, Renderer::FluidSynth { .. });
    let audio = renderer.describe();
    let write = |path: PathBuf, text: String| crate::io::write_atomic(&path, text.as_bytes());
    write(
        raters_dir.join("instructions.txt"),
        INSTRUCTIONS.to_string(),
    )?;
    let created = crate::provenance::now();
    write(
        out.join("README.txt"),
        format!(
            "Listening-test kit made by museformer {} on {created}: seed {}, {} groups x {} models, {} raters.\n\n\
             {RATERS_DIR}/   send this folder to the raters; nothing in it names a model:\n\
             \x20 group-NN/piece-X.mid (.wav)  one piece of each model per group, letters shuffled per group\n\
             \x20 instructions.txt           the rating scales\n\
             \x20 ratings.csv                the blank sheet: one row per rater, group and piece\n\
             key.csv        which model each piece is; keep it from the raters\n\
             kit.json       the settings\n\n\
             Audio: {audio}\n\n\
             After the test, put all filled-in rows under one header and run\n\
             \x20 museformer stats listening ratings.csv --key key.csv --out tables/\n",
            env!("CARGO_PKG_VERSION"),
            opts.seed,
            opts.groups,
            models.len(),
            opts.raters,
        ),
    )?;
    let kit_json = KitJson {
        museformer_version: env!("CARGO_PKG_VERSION"),
        created,
        seed: opts.seed,
        groups: opts.groups,
        raters: opts.raters,
        models: models
            .iter()
            .zip(&available)
            .map(|((label, folder), &n)| KitModel {
                label,
                folder,
                midi_files: n,
            })
            .collect(),
        rendered,
        audio: &audio,
    };
    crate::io::write_json(&out.join("kit.json"), &kit_json)?;
    Ok(KitReport {
        out: out.clone(),
        raters_dir,
        ratings,
        key,
        pieces,
        rendered,
        audio,
    })
}
