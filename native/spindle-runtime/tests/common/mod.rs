//! What several integration tests share: the checked-in fixtures and input layouts.

use std::path::PathBuf;
use std::sync::Arc;

use spindle_proto::spindle::{DType, InputLayout, ModelConfig};
use spindle_runtime::Model;

/// Path of a checked-in fixture under tests/fixtures.
pub fn fixture(name: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name);
    dir.to_string_lossy().into_owned()
}

/// A fixture SavedModel, on one intra-op and one inter-op thread.
pub fn load(name: &str) -> Arc<Model> {
    let config = ModelConfig {
        path: fixture(name),
        intra_op_threads: 1,
        inter_op_threads: 1,
        ..Default::default()
    };
    Arc::new(Model::load(&config).expect("fixture loads"))
}

pub fn input(name: &str, dtype: DType, row_shape: &[i64]) -> InputLayout {
    InputLayout {
        name: name.into(),
        dtype: dtype as i32,
        row_shape: row_shape.to_vec(),
        ..Default::default()
    }
}
