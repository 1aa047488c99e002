//! Where a result came from: the one `provenance.json` shape every command that
//! writes results uses (`stats similarity`, `stats listening`, `bench attention`,
//! `report`): the command line, the version and commit, the machine, the date and
//! wall time, then what the command itself adds ([`Provenance::details`]).

use anyhow::Result;
use serde::Serialize;
use std::path::Path;
use std::sync::OnceLock;

/// The machine a result was computed on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs available to the process.
    pub cpus: usize,
    /// CPU model name from `/proc/cpuinfo` (when readable).
    pub cpu_model: Option<String>,
    /// Operating system and architecture.
    pub os: String,
}

impl Machine {
    /// This machine.
    pub fn current() -> Machine {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            });
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        }
    }
}

/// The commit of the current folder and whether its working tree has uncommitted
/// changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GitState<'a> {
    /// `git rev-parse HEAD`, when git answers.
    pub commit: Option<&'a str>,
    /// `git status --porcelain` is not empty, when git answers.
    pub dirty: Option<bool>,
}

/// The git state of the current folder, asked once per process.
pub fn git_state() -> GitState<'static> {
    static STATE: OnceLock<(Option<String>, Option<bool>)> = OnceLock::new();
    let (commit, dirty) = STATE.get_or_init(|| {
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        (
            git(&["rev-parse", "HEAD"]),
            git(&["status", "--porcelain"]).map(|s| !s.is_empty()),
        )
    });
    GitState {
        commit: commit.as_deref(),
        dirty: *dirty,
    }
}

/// Now, as RFC 3339 in UTC to the second.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// BLAKE3 (hex, 64 characters) of a file's bytes.
pub fn file_hash(path: &Path) -> Result<String> {
    let bytes = crate::io::read(path)?;
    Ok(blake3::hash(&bytes).to_hex().to_string())
}

/// `provenance.json`: the common fields, then the command's own (`details`,
/// flattened into the same object).
#[derive(Debug, Clone, Serialize)]
pub struct Provenance<T: Serialize> {
    /// The command line.
    pub command: Vec<String>,
    /// museformer's version.
    pub museformer_version: String,
    /// `git rev-parse HEAD` in the current folder, when it answers.
    pub git_commit: Option<String>,
    /// Whether the working tree had uncommitted changes (`git status --porcelain`).
    pub git_dirty: Option<bool>,
    /// When the result was written (RFC 3339, UTC).
    pub date: String,
    /// Wall time of the command in seconds, where it is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall_seconds: Option<f64>,
    /// The machine.
    pub machine: Machine,
    /// What the command adds.
    #[serde(flatten)]
    pub details: T,
}

impl<T: Serialize> Provenance<T> {
    /// The provenance of the running command.
    pub fn new(wall_seconds: Option<f64>, details: T) -> Provenance<T> {
        let git = git_state();
        Provenance {
            command: std::env::args().collect(),
            museformer_version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: git.commit.map(str::to_string),
            git_dirty: git.dirty,
            date: now(),
            wall_seconds,
            machine: Machine::current(),
            details,
        }
    }

    /// Writes it as pretty JSON (atomically).
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::io::write_json(path, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_flattened_beside_the_common_fields() {
        #[derive(Serialize)]
        struct Mine {
            inputs: usize,
        }
        let p = Provenance::new(Some(1.5), Mine { inputs: 3 });
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["inputs"], 3);
        assert_eq!(v["wall_seconds"], 1.5);
        assert!(v["machine"]["cpus"].as_u64().unwrap() >= 1);
        assert!(v["date"].as_str().unwrap().ends_with('Z'));
        let p = Provenance::new(None, Mine { inputs: 0 });
        assert!(serde_json::to_value(&p)
            .unwrap()
            .get("wall_seconds")
            .is_none());
    }
}
