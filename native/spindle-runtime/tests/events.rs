//! Event files as TensorBoard itself reads them: its `EventAccumulator`, run from the repository's
//! `.venv`, must find every tag, step and value that the writer wrote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use spindle_runtime::EventWriter;

/// Prints the file version, then one JSON array `[tag, step, value, wall_time]` per scalar event.
const READER: &str = r#"
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1])
acc.Reload()
print(json.dumps(["file_version", acc.file_version]))
for tag in acc.Tags()["scalars"]:
    for e in acc.Scalars(tag):
        print(json.dumps([tag, e.step, e.value, e.wall_time]))
"#;

fn python() -> PathBuf {
    let python = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../.venv/bin/python"
    ))
    .to_path_buf();
    assert!(
        python.exists(),
        "{} is missing: run `bash ci/setup-python.sh` to create the venv with TensorBoard",
        python.display()
    );
    python
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Tag -> (step, value, wall time) as TensorBoard read them, once it has seen the file's version.
fn read_with_tensorboard(file: &Path) -> BTreeMap<String, Vec<(i64, f64, f64)>> {
    let out = Command::new(python())
        .arg("-c")
        .arg(READER)
        .arg(file)
        .env("TF_CPP_MIN_LOG_LEVEL", "3")
        .output()
        .expect("run the venv's python");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "TensorBoard's reader failed (is tensorboard in .venv? run `bash ci/setup-python.sh`): {stderr}"
    );
    let mut version = None;
    let mut scalars: BTreeMap<String, Vec<(i64, f64, f64)>> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        // Tags here have no quotes or commas, so a JSON array splits on ", ".
        let fields: Vec<&str> = line
            .strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
            .unwrap_or_else(|| panic!("not a JSON array: {line}"))
            .split(", ")
            .collect();
        let tag = fields[0].trim_matches('"').to_string();
        let number =
            |i: usize| -> f64 { fields[i].parse().unwrap_or_else(|e| panic!("{line}: {e}")) };
        if tag == "file_version" {
            // null when no record passed the reader's length and CRC checks.
            version = fields[1].parse::<f64>().ok();
        } else {
            let step = fields[1].parse().unwrap_or_else(|e| panic!("{line}: {e}"));
            scalars
                .entry(tag)
                .or_default()
                .push((step, number(2), number(3)));
        }
    }
    assert_eq!(
        version,
        Some(2.0),
        "TensorBoard found no brain.Event:2 record; its stderr: {stderr}"
    );
    scalars
}

#[test]
fn tensorboard_reads_back_every_tag_step_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let logdir = dir.path().join("train/logs");
    let steps: Vec<(i64, [(&str, f64); 3])> = (0..5)
        .map(|i| {
            let step = i * 10 + 1;
            // Starts at ln 10, the cross-entropy of a uniform guess over ten classes.
            let loss = std::f64::consts::LN_10 / (1.0 + i as f64 * 0.7);
            let rate = 12_345.678 + 1000.0 * i as f64 / 3.0;
            (
                step,
                [
                    ("loss", loss),
                    ("examples_per_second", rate),
                    ("learning_rate", 1e-3),
                ],
            )
        })
        .collect();

    let before = now();
    let mut writer = EventWriter::create(&logdir).expect("create the event file");
    for (step, values) in &steps {
        writer.scalars(*step, values).expect("write scalars");
    }
    writer.flush().expect("flush");
    let after = now();
    let file = writer.path().to_path_buf();
    drop(writer);

    assert_eq!(file.parent(), Some(logdir.as_path()));
    let name = file.file_name().unwrap().to_str().unwrap();
    // events.out.tfevents.<time>.<host>.<pid>.<n>, where the host name may hold dots itself.
    let parts: Vec<&str> = name
        .strip_prefix("events.out.tfevents.")
        .unwrap_or_else(|| panic!("{name}"))
        .split('.')
        .collect();
    assert!(parts.len() >= 4, "{name}");
    let time: f64 = parts[0].parse().unwrap();
    assert!((before.floor()..=after).contains(&time), "{name}");
    assert_eq!(
        parts[parts.len() - 2],
        std::process::id().to_string(),
        "{name}"
    );

    let scalars = read_with_tensorboard(&file);
    let tags: Vec<&str> = scalars.keys().map(String::as_str).collect();
    assert_eq!(tags, ["examples_per_second", "learning_rate", "loss"]);
    for (t, tag) in ["loss", "examples_per_second", "learning_rate"]
        .iter()
        .enumerate()
    {
        let read = &scalars[*tag];
        assert_eq!(read.len(), steps.len(), "{tag}: {read:?}");
        for ((step, values), &(read_step, value, wall_time)) in steps.iter().zip(read) {
            assert_eq!(read_step, *step, "{tag}");
            // TensorBoard keeps simple values as float32; widening back to f64 must be exact.
            assert_eq!(value, values[t].1 as f32 as f64, "{tag} at step {step}");
            assert!(
                (before - 1.0..=after + 1.0).contains(&wall_time),
                "{tag} at step {step}: wall time {wall_time} not in [{before}, {after}]"
            );
        }
    }
}

#[test]
fn writers_started_together_get_their_own_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = EventWriter::create(dir.path()).unwrap();
    let b = EventWriter::create(dir.path()).unwrap();
    assert_ne!(a.path(), b.path());
}
