//! Stage keys and stage records: what makes a finished stage reusable.
//!
//! A stage's key is BLAKE3 over its name, its resolved settings (as JSON), the
//! output hashes of the stages it reads, and the code version ([`code_version`]: a
//! hash of the running executable). A finished stage writes its record
//! (`stages/<stage>.json`: key, outputs, output hash, wall time, date and its
//! results) atomically after its outputs; a later run skips a stage whose record has
//! the same key and whose outputs all exist. Downstream keys use the *output hash*
//! of their inputs, not their keys, so a stage that is redone and gives the same
//! outputs does not invalidate what follows.

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Version of the key scheme; part of every key.
const KEY_SCHEME: &str = "museformer-stage-key-1";

/// The key of a stage: BLAKE3 (hex, 32 characters) over the stage name, its
/// settings serialized as JSON, the output hashes of its input stages (in order) and
/// the code version.
pub fn stage_key(
    stage: &str,
    settings: &impl Serialize,
    inputs: &[&str],
    code: &str,
) -> Result<String> {
    let mut h = blake3::Hasher::new();
    let mut field = |bytes: &[u8]| {
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(KEY_SCHEME.as_bytes());
    field(stage.as_bytes());
    field(serde_json::to_string(settings)?.as_bytes());
    field(&(inputs.len() as u64).to_le_bytes());
    for input in inputs {
        field(input.as_bytes());
    }
    field(code.as_bytes());
    Ok(h.finalize().to_hex()[..32].to_string())
}

/// The code version: BLAKE3 (hex, 32 characters) of the running executable's
/// bytes, computed once per process. Any rebuild that changes the program changes
/// it (and so every key); rebuilding unchanged sources gives the same binary.
pub fn code_version() -> Result<String> {
    static VERSION: OnceLock<String> = OnceLock::new();
    if let Some(v) = VERSION.get() {
        return Ok(v.clone());
    }
    let exe = std::env::current_exe().context("cannot find the running executable")?;
    let mut h = blake3::Hasher::new();
    let file = std::fs::File::open(&exe)
        .with_context(|| format!("cannot read the executable {}", exe.display()))?;
    h.update_reader(file)
        .with_context(|| format!("cannot read the executable {}", exe.display()))?;
    let v = h.finalize().to_hex()[..32].to_string();
    Ok(VERSION.get_or_init(|| v).clone())
}

/// BLAKE3 (hex, 32 characters) over files: each file's path relative to `root`
/// and its content, in path order; folders are walked. A missing path is an error.
pub fn hash_outputs(root: &Path, paths: &[PathBuf]) -> Result<String> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            for e in walkdir::WalkDir::new(p).sort_by_file_name() {
                let e = e.with_context(|| format!("cannot walk {}", p.display()))?;
                if e.file_type().is_file() {
                    files.push(e.into_path());
                }
            }
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            anyhow::bail!("{} does not exist", p.display());
        }
    }
    files.sort();
    let mut h = blake3::Hasher::new();
    for f in &files {
        let name = f.strip_prefix(root).unwrap_or(f).to_string_lossy();
        h.update(name.as_bytes());
        h.update(b"\0");
        let file =
            std::fs::File::open(f).with_context(|| format!("cannot read {}", f.display()))?;
        h.update_reader(file)
            .with_context(|| format!("cannot read {}", f.display()))?;
        h.update(b"\0");
    }
    Ok(h.finalize().to_hex()[..32].to_string())
}

/// The typed output of a stage kind, kept in its records (the report reads it).
pub trait StageOutput: Serialize + DeserializeOwned {
    /// The kind of stage (`prepare`, `train`, ...): the stage name, or its part
    /// before `:` for a row's stage (`train:museformer`).
    const KIND: &'static str;
}

/// What a finished stage leaves in `stages/<stage>.json`, with the stage's typed
/// output `T`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageRecord<T> {
    /// Stage name (`prepare`, `train:museformer`, ...).
    pub stage: String,
    /// The key it ran under.
    pub key: String,
    /// Its outputs (files or folders); all must exist for the stage to be reused.
    pub outputs: Vec<PathBuf>,
    /// Hash of what the next stages read of its outputs.
    pub output_hash: String,
    /// Wall time of the stage in seconds.
    pub wall_seconds: f64,
    /// When it finished (RFC 3339, UTC).
    pub finished_at: String,
    /// Its results (perplexities, similarity error, ...), for the next stages and
    /// the report.
    pub output: T,
}

/// The part of a record that decides whether it can be reused, read before the
/// output is (a record of another code version may have another output shape).
#[derive(Deserialize)]
struct Header {
    key: String,
    outputs: Vec<PathBuf>,
}

fn outputs_exist(outputs: &[PathBuf]) -> bool {
    outputs.iter().all(|p| p.exists())
}

impl<T: StageOutput> StageRecord<T> {
    /// Reads a stage's record from `path` (see [`crate::pipeline::WorkFolder::record`]);
    /// `None` when there is none. A record whose fields do not match `T` is an error
    /// naming the file.
    pub fn load(path: &Path) -> Result<Option<StageRecord<T>>> {
        if !path.exists() {
            return Ok(None);
        }
        crate::io::read_json(path).map(Some)
    }

    /// The record at `path` if the stage can be reused under `key`: `None` when there
    /// is no record, when it is not a record, or when its key differs or one of its
    /// outputs is gone (the stage then runs again). A record with this key whose
    /// fields do not match `T` is an error naming the file.
    pub fn reusable_at(path: &Path, key: &str) -> Result<Option<StageRecord<T>>> {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Ok(None);
        };
        match serde_json::from_str::<Header>(&text) {
            Ok(h) if h.key == key && outputs_exist(&h.outputs) => Self::load(path),
            _ => Ok(None),
        }
    }

    /// Whether this record is a finished stage with `key` whose outputs all exist.
    pub fn reusable(&self, key: &str) -> bool {
        self.key == key && outputs_exist(&self.outputs)
    }

    /// Writes the record to `path` atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::io::write_json(path, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_change_with_each_part_and_only_then() {
        let base = stage_key("train:a", &json!({"steps": 10}), &["in1", "in2"], "code").unwrap();
        let same = stage_key("train:a", &json!({"steps": 10}), &["in1", "in2"], "code").unwrap();
        assert_eq!(base, same);
        let changed = [
            stage_key("train:b", &json!({"steps": 10}), &["in1", "in2"], "code").unwrap(),
            stage_key("train:a", &json!({"steps": 11}), &["in1", "in2"], "code").unwrap(),
            stage_key("train:a", &json!({"steps": 10}), &["in1", "inX"], "code").unwrap(),
            stage_key("train:a", &json!({"steps": 10}), &["in2", "in1"], "code").unwrap(),
            stage_key("train:a", &json!({"steps": 10}), &["in1in2"], "code").unwrap(),
            stage_key("train:a", &json!({"steps": 10}), &["in1", "in2"], "code2").unwrap(),
        ];
        for (i, k) in changed.iter().enumerate() {
            assert_ne!(&base, k, "change {i} kept the key");
        }
    }

    #[test]
    fn output_hashes_follow_contents_and_names() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("gen")).unwrap();
        std::fs::write(root.join("gen/a.txt"), "x").unwrap();
        std::fs::write(root.join("gen/b.txt"), "y").unwrap();
        let outs = [root.join("gen")];
        let h1 = hash_outputs(root, &outs).unwrap();
        assert_eq!(h1, hash_outputs(root, &outs).unwrap());
        std::fs::write(root.join("gen/b.txt"), "z").unwrap();
        let h2 = hash_outputs(root, &outs).unwrap();
        assert_ne!(h1, h2);
        std::fs::rename(root.join("gen/b.txt"), root.join("gen/c.txt")).unwrap();
        assert_ne!(h2, hash_outputs(root, &outs).unwrap());
        let err = hash_outputs(root, &[root.join("nothing")]).unwrap_err();
        assert!(err.to_string().contains("nothing"), "{err}");
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Ppl {
        ppl: Vec<f64>,
    }

    impl StageOutput for Ppl {
        const KIND: &'static str = "eval";
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Renamed {
        perplexity: Vec<f64>,
    }

    impl StageOutput for Renamed {
        const KIND: &'static str = "eval";
    }

    #[test]
    fn records_round_trip_and_need_their_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.json");
        std::fs::write(&out, "{}").unwrap();
        let rec = StageRecord {
            stage: "eval:a".into(),
            key: "k1".into(),
            outputs: vec![out.clone()],
            output_hash: "h".into(),
            wall_seconds: 1.5,
            finished_at: "2026-01-01T00:00:00Z".into(),
            output: Ppl { ppl: vec![1.0] },
        };
        let stages = dir.path().join("stages");
        let path = crate::pipeline::layout::record_file(&stages, "eval:a");
        rec.write(&path).unwrap();
        assert!(stages.join("eval.a.json").is_file());
        let back = StageRecord::<Ppl>::load(&path).unwrap().unwrap();
        assert_eq!(back, rec);
        assert!(back.reusable("k1"));
        assert!(!back.reusable("k2"));
        assert_eq!(
            StageRecord::<Ppl>::reusable_at(&path, "k1").unwrap(),
            Some(rec.clone())
        );
        assert_eq!(StageRecord::<Ppl>::reusable_at(&path, "k2").unwrap(), None);
        // A record of this key whose output has other fields is an error naming it;
        // under another key (another code version) the stage just runs again.
        let err = format!(
            "{:#}",
            StageRecord::<Renamed>::reusable_at(&path, "k1").unwrap_err()
        );
        assert!(
            err.contains("eval.a.json") && err.contains("perplexity"),
            "{err}"
        );
        assert!(StageRecord::<Renamed>::reusable_at(&path, "k2")
            .unwrap()
            .is_none());
        let err = format!("{:#}", StageRecord::<Renamed>::load(&path).unwrap_err());
        assert!(err.contains("eval.a.json"), "{err}");
        std::fs::remove_file(&out).unwrap();
        assert!(!back.reusable("k1"));
        assert_eq!(StageRecord::<Ppl>::reusable_at(&path, "k1").unwrap(), None);
        let none = crate::pipeline::layout::record_file(&stages, "eval:b");
        assert!(StageRecord::<Ppl>::load(&none).unwrap().is_none());
        assert!(StageRecord::<Ppl>::reusable_at(&none, "k1")
            .unwrap()
            .is_none());
    }
}
