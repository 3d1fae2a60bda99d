//! Loading a SavedModel into a session placed as the task needs: the session's settings from the
//! [`Placement`] (thread pools, visible GPUs), then either TensorFlow's own loader or, when the graph must
//! run on a device of the task's choosing, the import of `saved_model_import` (the C API's loader takes no
//! default device). Above [`crate::tf`], the thin C API layer, which knows nothing of SavedModel
//! directories or placement.

use std::path::Path;

use prost::Message;
use spindle_proto::tensorflow::{ConfigProto, GpuOptions};

use crate::error::{Error, Result};
use crate::placement::Placement;
use crate::saved_model_import;
use crate::tf::{SavedModel, SessionOptions};

/// Loads the SavedModel in `dir` with `tags`, and intra/inter-op thread pools of the given sizes
/// (0: TensorFlow's default), placed as `placement` says: with the task's GPUs, the session sees the
/// executor's, with memory growth on, its graph runs on the task's, and the load fails, naming them, unless
/// TensorFlow sees that GPU.
pub fn load(
    dir: &Path,
    tags: &[String],
    intra: i32,
    inter: i32,
    placement: &Placement,
) -> Result<SavedModel> {
    let shown = dir.display();
    if !dir.join("saved_model.pb").is_file() && !dir.join("saved_model.pbtxt").is_file() {
        let why = if dir.is_dir() {
            "has no saved_model.pb"
        } else {
            "does not exist"
        };
        return Err(Error::Model(format!("SavedModel directory {shown} {why}")));
    }
    let gpus = &placement.task_gpus;
    let config = ConfigProto {
        intra_op_parallelism_threads: intra,
        inter_op_parallelism_threads: inter,
        gpu_options: (!placement.visible_gpus.is_empty()).then(|| GpuOptions {
            allow_growth: true,
            visible_device_list: placement.visible_gpus.join(","),
        }),
        allow_soft_placement: true,
    }
    .encode_to_vec();
    let on_gpus = if gpus.is_empty() {
        String::new()
    } else {
        format!(
            " on the task's GPU(s) {} (Spark's task resources)",
            gpus.join(",")
        )
    };
    let options = SessionOptions::new(&config)?;
    let model = if placement.device.is_empty() {
        SavedModel::load_by_tensorflow(dir, tags, &options).or_else(|e| match e {
            // A TensorFlow 1 export listing an asset twice: TensorFlow's loader feeds its tensor twice and
            // fails; Spindle's own import feeds each asset once, as Python's loader does.
            Error::Model(m) if m.contains("fed more than once") => import(dir, tags, &options, ""),
            other => Err(other),
        })
    } else {
        import(dir, tags, &options, &placement.device)
    }
    .map_err(|e| match e {
        Error::Model(m) => {
            // An op that no loaded library registers (tensorflow-text's, a user's own): the message names it;
            // the hint names the Param that loads libraries. Only the hint reads the text, never the class.
            let hint = if m.contains("Op type not registered") {
                " (the model uses an op that is not built into TensorFlow: load the library that registers it \
                 with the opLibraries Param or the spindle.opLibraries conf, e.g. \
                 spindle.ops.tensorflow_text() for tensorflow-text's ops; see docs/custom-ops.md)"
            } else {
                ""
            };
            Error::Model(format!(
                "SavedModel {shown} failed to load (tags {tags:?}){on_gpus}: {m}{hint}"
            ))
        }
        other => other,
    })?;
    let seen = if gpus.is_empty() {
        0
    } else {
        model.gpu_count()?
    };
    if seen < placement.gpus_needed {
        return Err(Error::Model(format!(
            "SavedModel {shown}: the task holds GPU(s) {} (Spark's task resources; this executor's: {}), but \
             TensorFlow sees {seen} GPU(s): this libtensorflow is the CPU build, or no CUDA driver or device is \
             there for those ids",
            gpus.join(","),
            placement.visible_gpus.join(",")
        )));
    }
    Ok(model)
}

/// TensorFlow's loader, done by hand so that every op that names no device runs on `device`: the meta
/// graph with `tags` imported onto it, then its variables restored and its init op run.
fn import(
    dir: &Path,
    tags: &[String],
    options: &SessionOptions,
    device: &str,
) -> Result<SavedModel> {
    let meta = saved_model_import::meta_graph(dir, tags)?;
    let model = SavedModel::import(meta, options, device)?;
    saved_model_import::restore_and_init(&model, dir)?;
    Ok(model)
}
