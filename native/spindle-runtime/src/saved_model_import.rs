//! The parts of TensorFlow's SavedModel loader that Spindle does itself when a graph must run on a device of its
//! choosing (a task's GPU, see [`crate::placement`]): the C API's loader takes no default device, so the graph is
//! imported with one, and then, as TensorFlow's `loader.cc` does, the variables are restored from
//! `variables/variables` and the init op runs, with the asset files' paths fed to both. `crate::loader` calls
//! these around the import.

use std::collections::BTreeSet;
use std::path::Path;

use prost::Message;
use spindle_proto::tensorflow::{MetaGraphDef, SavedModel as SavedModelProto};

use crate::error::{Error, Result};
use crate::tf::{Port, SavedModel, Tensor};

/// The key TensorFlow 2 stores its init op under, as a signature and as that signature's one output.
const INIT_OP_SIGNATURE: &str = "__saved_model_init_op";
/// TensorFlow 1's collections naming the init op, newest first.
const INIT_OP_COLLECTIONS: [&str; 2] = ["saved_model_main_op", "legacy_init_op"];

/// The meta graph of `dir/saved_model.pb` whose tags are `tags` (as a set, as TensorFlow matches them).
pub fn meta_graph(dir: &Path, tags: &[String]) -> Result<MetaGraphDef> {
    let file = dir.join("saved_model.pb");
    let bytes = std::fs::read(&file).map_err(|e| {
        Error::Model(format!(
            "reading {} (a text saved_model.pbtxt cannot be placed on a device): {e}",
            file.display()
        ))
    })?;
    let mut saved = SavedModelProto::decode(bytes.as_slice())
        .map_err(|e| Error::Model(format!("{} is not a SavedModel: {e}", file.display())))?;
    let wanted: BTreeSet<String> = tags.iter().cloned().collect();
    let found: Vec<BTreeSet<String>> = saved
        .meta_graphs
        .iter()
        .map(|m| {
            m.meta_info_def
                .iter()
                .flat_map(|i| i.tags.clone())
                .collect()
        })
        .collect();
    match found.iter().position(|t| *t == wanted) {
        Some(i) => Ok(saved.meta_graphs.swap_remove(i)),
        None => Err(Error::Model(format!(
            "no meta graph has tags {tags:?}; the SavedModel has {found:?}"
        ))),
    }
}

/// Restores `model`'s variables from `dir` and runs its init op, as TensorFlow's loader does after creating the
/// session.
pub fn restore_and_init(model: &SavedModel, dir: &Path) -> Result<()> {
    let meta = model.meta_graph();
    let assets: Vec<(Port, Tensor)> = meta
        .asset_file_def
        .iter()
        .filter_map(|a| {
            a.tensor_info
                .as_ref()
                .map(|t| (t.name.as_str(), &a.filename))
        })
        .map(|(tensor, file)| {
            let path = dir.join("assets").join(file);
            Ok((
                model.port(tensor)?,
                Tensor::scalar_string(&path.to_string_lossy())?,
            ))
        })
        .collect::<Result<_>>()?;
    let prefix = dir.join("variables").join("variables");
    let saver = meta
        .saver_def
        .as_ref()
        .filter(|s| !s.restore_op_name.is_empty());
    // A model without variables has no index file, and nothing to restore (TensorFlow skips it too).
    if let Some(saver) = saver.filter(|_| prefix.with_extension("index").is_file()) {
        let filename = Tensor::scalar_string(&prefix.to_string_lossy())?;
        let mut feeds: Vec<(Port, &Tensor)> = assets.iter().map(|(p, t)| (*p, t)).collect();
        feeds.push((model.port(&saver.filename_tensor_name)?, &filename));
        let restore = model.port(&saver.restore_op_name)?;
        model.run_targets(&feeds, &[], &[restore], "the restore of its variables")?;
    }
    if let Some(op) = init_op(meta) {
        let feeds: Vec<(Port, &Tensor)> = assets.iter().map(|(p, t)| (*p, t)).collect();
        model.run_targets(&feeds, &[], &[model.port(&op)?], "its init op")?;
    }
    Ok(())
}

/// The init op's name: TensorFlow 2's signature, else TensorFlow 1's collections.
fn init_op(meta: &MetaGraphDef) -> Option<String> {
    let from_signature = meta
        .signature_def
        .get(INIT_OP_SIGNATURE)
        .and_then(|s| s.outputs.get(INIT_OP_SIGNATURE))
        .map(|t| t.name.clone());
    from_signature.or_else(|| {
        INIT_OP_COLLECTIONS.iter().find_map(|c| {
            meta.collection_def
                .get(*c)
                .and_then(|c| c.node_list.as_ref())
                .and_then(|n| n.value.first().cloned())
        })
    })
}
