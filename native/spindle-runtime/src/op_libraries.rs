//! Custom op libraries (tensorflow-text's `*.so`, a user's own ops) loaded into this process's TensorFlow
//! before a SavedModel that uses their ops loads.
//!
//! A library is loaded once per process and content: TensorFlow registers a library's ops and kernels in
//! process-wide registries and never unloads them, so a second `TF_LoadLibrary` of the same bytes (another
//! task, the same file shipped again under another path) is a no-op here.
//!
//! Before loading, the library is checked against the running TensorFlow: an op library is C++ built against
//! one TensorFlow's headers, and loading it into another crashes the process or corrupts its registries. When
//! the file lies in an installed wheel (`site-packages/<pkg>/...` beside `<pkg>-<version>.dist-info`), the
//! wheel's `Requires-Dist: tensorflow...` range must contain `TF_Version()`; a mismatch is an
//! [`Error::OpLibrary`] naming both versions, and the file is never opened by the dynamic loader.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::tf;

/// Libraries loaded in this process, by the SHA-256 of their bytes, with the path first loaded.
static LOADED: LazyLock<Mutex<HashMap<[u8; 32], PathBuf>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// What [`load`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// TensorFlow loaded the library now; these are the ops it registered.
    Now { ops: Vec<String> },
    /// The same bytes were loaded before, from this path.
    Already(PathBuf),
}

/// Loads the op library at `path` into TensorFlow unless the same bytes are loaded already, after checking
/// the TensorFlow version its wheel was built for (when it lies in one).
pub fn load(path: &Path) -> Result<Loaded> {
    let bytes = fs::read(path).map_err(|e| {
        Error::OpLibrary(format!("op library {} cannot be read: {e}", path.display()))
    })?;
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    // Held while TensorFlow loads, so that two tasks asking for one library load it once.
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(first) = loaded.get(&digest) {
        return Ok(Loaded::Already(first.clone()));
    }
    let running = tf::version();
    if let Some(wheel) = Wheel::of(path) {
        wheel.check(path, &running)?;
    }
    let ops = tf::load_library(path).map_err(|m| {
        Error::OpLibrary(format!(
            "TensorFlow {running} failed to load op library {}: {m} (an op library built for another \
             TensorFlow release fails this way; use the one built for {running})",
            path.display()
        ))
    })?;
    loaded.insert(digest, path.to_path_buf());
    Ok(Loaded::Now { ops })
}

/// The installed wheel a file belongs to: its `*.dist-info` directory lists the file in `RECORD`.
#[derive(Debug)]
struct Wheel {
    dist_info: PathBuf,
    metadata: String,
}

impl Wheel {
    /// The wheel whose `RECORD` lists `path`, looking in the directories above it (at most 6 levels, the
    /// depth of tensorflow-text's `tensorflow_text/python/ops/*.so` with room to spare).
    fn of(path: &Path) -> Option<Wheel> {
        let path = path.canonicalize().ok()?;
        for root in path.ancestors().skip(1).take(6) {
            let relative = path.strip_prefix(root).ok()?.to_string_lossy().into_owned();
            let Ok(entries) = fs::read_dir(root) else {
                continue;
            };
            for entry in entries.flatten() {
                let dir = entry.path();
                if dir.extension().is_none_or(|e| e != "dist-info") {
                    continue;
                }
                let record = fs::read_to_string(dir.join("RECORD")).unwrap_or_default();
                let listed = record
                    .lines()
                    .any(|l| l.split(',').next() == Some(relative.as_str()));
                if listed {
                    let metadata = fs::read_to_string(dir.join("METADATA")).ok()?;
                    return Some(Wheel {
                        dist_info: dir,
                        metadata,
                    });
                }
            }
        }
        None
    }

    /// `Ok` unless the wheel requires a TensorFlow range that `running` is outside of.
    fn check(&self, path: &Path, running: &str) -> Result<()> {
        let field = |name: &str| {
            self.metadata
                .lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
                .unwrap_or_else(|| "?".into())
        };
        for requirement in self
            .metadata
            .lines()
            .filter_map(|l| l.strip_prefix("Requires-Dist:"))
        {
            let Some(range) = tensorflow_range(requirement) else {
                continue;
            };
            if !satisfies(running, &range) {
                return Err(Error::OpLibrary(format!(
                    "op library {} is from {} {}, built for TensorFlow {range} ({}), but Spindle runs \
                     TensorFlow {running}: use the {} release built for TensorFlow {}",
                    path.display(),
                    field("Name:"),
                    field("Version:"),
                    self.dist_info.join("METADATA").display(),
                    field("Name:"),
                    major_minor(running),
                )));
            }
        }
        Ok(())
    }
}

/// The version range of a `Requires-Dist` value naming TensorFlow itself (`tensorflow`, `tensorflow-cpu`,
/// ...; not `tensorflow-text`), without its environment marker: `tensorflow<2.22,>=2.21.0; ...` gives
/// `<2.22,>=2.21.0`.
fn tensorflow_range(requirement: &str) -> Option<String> {
    let spec = requirement.split(';').next()?.trim();
    let name_end = spec
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .unwrap_or(spec.len());
    let name = spec[..name_end].to_ascii_lowercase().replace('_', "-");
    let tensorflow = matches!(
        name.as_str(),
        "tensorflow" | "tensorflow-cpu" | "tensorflow-gpu" | "tf-nightly" | "tensorflow-macos"
    );
    let range = spec[name_end..]
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')');
    (tensorflow && !range.is_empty()).then(|| range.replace(' ', ""))
}

/// Whether `version` lies in every clause of a PEP 440 range (`<2.22,>=2.21.0`); `~=` and `===` are
/// read as `>=` and `==`, and pre-release suffixes are ignored (TensorFlow's C library reports `2.21.0`).
fn satisfies(version: &str, range: &str) -> bool {
    let v = release(version);
    range.split(',').filter(|c| !c.is_empty()).all(|clause| {
        let op_end = clause
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(clause.len());
        let (op, bound) = clause.split_at(op_end);
        let b = release(bound);
        let prefix = bound.ends_with(".*");
        let cmp = compare(&v, &b);
        match op {
            "<" => cmp.is_lt(),
            "<=" => cmp.is_le(),
            ">" => cmp.is_gt(),
            ">=" | "~=" => cmp.is_ge(),
            "==" | "===" if prefix => v.starts_with(&b),
            "==" | "===" => cmp.is_eq(),
            "!=" if prefix => !v.starts_with(&b),
            "!=" => cmp.is_ne(),
            // An operator this reading does not know: no verdict from it.
            _ => true,
        }
    })
}

/// The numeric release segments of a version (`2.21.0rc1` gives [2, 21, 0]).
fn release(version: &str) -> Vec<u64> {
    version
        .split('.')
        .map_while(|s| {
            let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse().ok()
        })
        .collect()
}

/// Compares release segments, the shorter padded with zeros (`2.22` equals `2.22.0`).
fn compare(a: &[u64], b: &[u64]) -> std::cmp::Ordering {
    let n = a.len().max(b.len());
    let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    (0..n)
        .map(|i| at(a, i).cmp(&at(b, i)))
        .find(|o| o.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}

fn major_minor(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_tensorflow_requirement_only() {
        let r = tensorflow_range("tensorflow<2.22,>=2.21.0; platform_machine != \"arm64\"");
        assert_eq!(r.as_deref(), Some("<2.22,>=2.21.0"));
        assert_eq!(tensorflow_range("tensorflow-text (>=2.21)"), None);
        assert_eq!(tensorflow_range("tensorflow-hub>=0.13"), None);
        assert_eq!(
            tensorflow_range("tensorflow-cpu (==2.20.*)").as_deref(),
            Some("==2.20.*")
        );
    }

    #[test]
    fn checks_ranges() {
        assert!(satisfies("2.21.0", "<2.22,>=2.21.0"));
        assert!(!satisfies("2.21.0", "<2.21,>=2.20.0"));
        assert!(!satisfies("2.22.0", "<2.22,>=2.21.0"));
        assert!(satisfies("2.21.0", "==2.21.*"));
        assert!(!satisfies("2.21.0", "==2.20.*"));
        assert!(satisfies("2.21.0-rc1", ">=2.21"));
    }
}
