//! File helpers every writer uses: atomic file writes, atomic folder replacement,
//! and reads whose errors name the file.
//!
//! A reader never sees a half-written file: [`write_atomic`] and
//! [`write_atomic_with`] write a temporary file in the target's folder and rename it
//! over the target; [`replace_dir`] moves a finished temporary folder into place.

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Creates a folder and its parents, the error naming it.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// The folder a file is written in (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes a file atomically: `write` fills a temporary file in the same folder,
/// which is then renamed over `path` (the folder is created first). On any error
/// the temporary file is removed and `path` is left as it was.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> Result<()>,
) -> Result<()> {
    let dir = parent_of(path);
    create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    write(tmp.as_file_mut()).with_context(|| format!("cannot write {}", path.display()))?;
    tmp.as_file_mut()
        .flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Writes `bytes` to `path` atomically (see [`write_atomic_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |f| Ok(f.write_all(bytes)?))
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    write_atomic(path, serde_json::to_string_pretty(value)?.as_bytes())
}

/// Reads a file as text, the error naming it.
pub fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads a file's bytes, the error naming it.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads a JSON file into `T`; a file that does not parse as `T` is an error naming
/// the file and the field at fault.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = read_to_string(path)?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is damaged or was written by another version",
            path.display()
        )
    })
}

/// A hidden sibling of `path` named `<prefix><file name>` (`data/set.v2` →
/// `data/.old-set.v2`), so no other file or folder is touched.
pub fn sibling(path: &Path, prefix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    parent_of(path).join(format!("{prefix}{name}"))
}

/// Makes a temporary folder beside `target` (same file system, so it can be
/// renamed into place by [`replace_dir`]).
pub fn temp_dir_beside(target: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    let dir = parent_of(target);
    create_dir_all(dir)?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(dir)
        .with_context(|| format!("cannot create a temporary folder in {}", dir.display()))
}

/// Moves a finished temporary folder to `target`, replacing what is there: the old
/// folder is moved aside to a hidden sibling first and removed once the new one is
/// in place, so a failure leaves either the old or the new folder.
pub fn replace_dir(tmp: tempfile::TempDir, target: &Path) -> Result<()> {
    let tmp = tmp.keep();
    if target.exists() {
        let old = sibling(target, ".old-");
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(target, &old)
            .with_context(|| format!("cannot move the old {} aside", target.display()))?;
        std::fs::rename(&tmp, target)
            .with_context(|| format!("cannot move the new folder to {}", target.display()))?;
        std::fs::remove_dir_all(&old).with_context(|| format!("cannot remove {}", old.display()))
    } else {
        std::fs::rename(&tmp, target)
            .with_context(|| format!("cannot move the new folder to {}", target.display()))
    }
}

/// An exclusive lock on a folder (or file) `path` for one process: an advisory
/// `flock` on the hidden sibling `.<name>.lock`, which also records the holder's pid
/// and command. The lock goes with the process: dropping it, or the process dying
/// (even by `kill -9`), releases it, so a stale lock of a dead process is simply
/// taken over. The lock file stays (it is a few bytes).
#[derive(Debug)]
pub struct FolderLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl FolderLock {
    /// Takes the lock on `path`, or refuses with one sentence naming the process
    /// that holds it; `what` says what the lock guards (`the dataset folder`).
    pub fn acquire(path: &Path, what: &str) -> Result<FolderLock> {
        let mut lock = sibling(path, ".").into_os_string();
        lock.push(".lock");
        let lock = PathBuf::from(lock);
        create_dir_all(parent_of(&lock))?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock)
            .with_context(|| format!("cannot open the lock file {}", lock.display()))?;
        // flock(2), non-blocking (std's File::try_lock needs Rust 1.89; MSRV 1.85).
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor this function owns for its lifetime.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::WouldBlock {
                let holder = std::fs::read_to_string(&lock).unwrap_or_default();
                let holder = holder.trim();
                anyhow::bail!(
                    "{what} {} is in use by another process ({}); wait for it to finish or stop it (lock file {})",
                    path.display(),
                    if holder.is_empty() { "unknown pid" } else { holder },
                    lock.display()
                );
            }
            return Err(e).with_context(|| format!("cannot lock {}", lock.display()));
        }
        let me = format!(
            "pid {}: {}",
            std::process::id(),
            std::env::args().collect::<Vec<_>>().join(" ")
        );
        file.set_len(0)
            .and_then(|()| file.write_all(me.as_bytes()))
            .and_then(|()| file.flush())
            .with_context(|| format!("cannot write the lock file {}", lock.display()))?;
        Ok(FolderLock {
            _file: file,
            path: lock,
        })
    }

    /// The lock file.
    pub fn lock_file(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_lock_refuses_a_second_holder_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("data.v2");
        let first = FolderLock::acquire(&target, "the dataset folder").unwrap();
        assert_eq!(first.lock_file(), dir.path().join(".data.v2.lock"));
        let held = std::fs::read_to_string(first.lock_file()).unwrap();
        assert!(
            held.starts_with(&format!("pid {}", std::process::id())),
            "{held}"
        );
        // Another open file description of the same lock file is refused.
        let err = format!(
            "{:#}",
            FolderLock::acquire(&target, "the dataset folder").unwrap_err()
        );
        assert!(
            err.contains("data.v2 is in use by another process")
                && err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        // Released (as when the holder exits, or dies): taken over.
        drop(first);
        let again = FolderLock::acquire(&target, "the dataset folder").unwrap();
        drop(again);
        // Nothing else is created next to the target.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from(".data.v2.lock")]);
    }

    #[test]
    fn atomic_writes_replace_or_leave_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/a.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        let err = write_atomic_with(&p, |_| anyhow::bail!("broken writer")).unwrap_err();
        assert!(format!("{err:#}").contains("a.txt"), "{err:#}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        let left: Vec<_> = std::fs::read_dir(dir.path().join("sub")).unwrap().collect();
        assert_eq!(left.len(), 1, "a temporary file was left behind");
    }

    #[test]
    fn json_reads_name_the_file() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Want {
            x: f64,
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        write_json(&p, &serde_json::json!({"y": 1})).unwrap();
        let err = format!("{:#}", read_json::<Want>(&p).unwrap_err());
        assert!(err.contains("r.json") && err.contains("x"), "{err}");
    }

    #[test]
    fn folders_are_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("set.v2");
        let unrelated = dir.path().join("set.old");
        std::fs::create_dir_all(&unrelated).unwrap();
        for content in ["a", "b"] {
            let tmp = temp_dir_beside(&target, ".partial-").unwrap();
            std::fs::write(tmp.path().join("f"), content).unwrap();
            replace_dir(tmp, &target).unwrap();
            assert_eq!(std::fs::read_to_string(target.join("f")).unwrap(), content);
        }
        assert!(unrelated.is_dir(), "a folder of another name was touched");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
