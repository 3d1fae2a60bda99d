//! Custom op libraries against the real TensorFlow: tensorflow-text's whitespace tokenizer library (from the
//! wheel `ci/setup-python.sh` installs into `.venv`) makes its SavedModel load, a second load of the same bytes
//! is a no-op, and a library whose wheel was built for another TensorFlow is refused, naming both versions,
//! without being opened. One test, because a library, once loaded, stays registered for the whole process.

use std::path::{Path, PathBuf};

use spindle_proto::spindle::ModelConfig;
use spindle_runtime::op_libraries::{self, Loaded};
use spindle_runtime::{tf, Error, Model};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// tensorflow-text's op library `name` in `.venv`.
fn text_library(name: &str) -> PathBuf {
    let lib = repo().join(".venv/lib");
    let python = std::fs::read_dir(&lib)
        .expect(".venv/lib: run ci/setup-python.sh")
        .map(|e| e.expect("entry").path())
        .find(|p| p.join("site-packages/tensorflow_text").is_dir())
        .expect("tensorflow-text in .venv: run ci/setup-python.sh");
    python
        .join("site-packages/tensorflow_text/python/ops")
        .join(name)
}

fn load_model(dir: &Path) -> spindle_runtime::Result<Model> {
    Model::load(&ModelConfig {
        path: dir.to_string_lossy().into_owned(),
        tags: vec!["serve".into()],
        intra_op_threads: 1,
        inter_op_threads: 1,
        ..Default::default()
    })
}

/// A fake installed wheel under `site`: `pkg/ops.so` (not a library at all) listed in the RECORD of a
/// dist-info whose METADATA requires `requirement`.
fn fake_wheel(site: &Path, version: &str, requirement: &str) -> PathBuf {
    let dist = site.join(format!("fake_text-{version}.dist-info"));
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::create_dir_all(site.join("fake_text/ops")).unwrap();
    let so = site.join("fake_text/ops/_ops.so");
    std::fs::write(&so, format!("not a library {version}")).unwrap();
    std::fs::write(
        dist.join("METADATA"),
        format!("Metadata-Version: 2.1\nName: fake-text\nVersion: {version}\nRequires-Dist: {requirement}\n"),
    )
    .unwrap();
    std::fs::write(dist.join("RECORD"), "fake_text/ops/_ops.so,sha256=x,1\n").unwrap();
    so
}

#[test]
fn op_libraries_load_once_and_are_checked_against_tensorflow() {
    let model = repo().join("tests/fixtures/text_ops/whitespace");
    let running = tf::version();
    assert!(running.starts_with("2.21."), "TF_Version() {running}");

    // Before the library: TensorFlow's own error, plus the hint naming opLibraries.
    let Err(Error::Model(m)) = load_model(&model) else {
        panic!("the tokenizer model loaded without its op library")
    };
    assert!(m.contains("Op type not registered"), "{m}");
    assert!(m.contains("WhitespaceTokenize"), "{m}");
    assert!(m.contains("opLibraries"), "{m}");

    // A wheel built for TensorFlow 2.20: refused before the dynamic loader sees it (the file is no library,
    // so dlopen would have failed with another message).
    let site = tempfile::tempdir().unwrap();
    let old = fake_wheel(
        site.path(),
        "2.20.1",
        "tensorflow<2.21,>=2.20.0; extra == \"x\"",
    );
    let Err(Error::OpLibrary(m)) = op_libraries::load(&old) else {
        panic!("a library built for TensorFlow 2.20 was accepted")
    };
    assert!(m.contains("<2.21,>=2.20.0"), "{m}");
    assert!(m.contains(&running), "{m}");
    assert!(m.contains("fake-text 2.20.1"), "{m}");

    // A matching wheel range, but no library: TensorFlow's loader refuses it, as a typed error.
    let other = tempfile::tempdir().unwrap();
    let bad = fake_wheel(other.path(), "2.21.1", "tensorflow<2.22,>=2.21.0");
    let Err(Error::OpLibrary(m)) = op_libraries::load(&bad) else {
        panic!("a file that is no library loaded")
    };
    assert!(m.contains("failed to load op library"), "{m}");

    // The real library: its ops registered once; the same bytes again are a no-op.
    let library = text_library("_whitespace_tokenizer_v2.so");
    let Loaded::Now { ops } = op_libraries::load(&library).expect("whitespace tokenizer library")
    else {
        panic!("loaded before")
    };
    assert!(
        ops.iter()
            .any(|o| o == "TFText>WhitespaceTokenizeWithOffsetsV2"),
        "{ops:?}"
    );
    let copy = tempfile::tempdir().unwrap();
    let copied = copy.path().join("shipped.so");
    std::fs::copy(&library, &copied).unwrap();
    assert_eq!(
        op_libraries::load(&copied).unwrap(),
        Loaded::Already(library.clone())
    );

    let loaded = load_model(&model).expect("the tokenizer model with its op library");
    assert!(loaded
        .info()
        .signatures
        .iter()
        .any(|s| s.name == "serving_default"));
}
