//! The parts of TensorFlow's SavedModel loader that Spindle does itself when a graph must run on a device of its
//! choosing (a task's GPU, see [`crate::placement`]): the C API's loader takes no default device, so the graph is
//! imported with one, and then, as TensorFlow's `loader.cc` does, the variables are restored from
//! `variables/variables` and the init op runs, with the asset files' paths fed to both. `crate::loader` calls
//! these around the import.

use std::collections::BTreeSet;
use std::path::Path;

use prost::Message;
use spindle_proto::tensorflow::{AssetFileDef, MetaGraphDef, SavedModel as SavedModelProto};

use crate::error::{Error, Result};
use crate::tf::{Port, SavedModel, Tensor};

/// The key TensorFlow 2 stores its init op under, as a signature and as that signature's one output.
const INIT_OP_SIGNATURE: &str = "__saved_model_init_op";
/// TensorFlow 1's collections naming the init op, newest first.
const INIT_OP_COLLECTIONS: [&str; 2] = ["saved_model_main_op", "legacy_init_op"];
/// TensorFlow 1's collection of the assets, where `asset_file_def` is empty.
const ASSETS_COLLECTION: &str = "saved_model_assets";

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
    let assets: Vec<(Port, Tensor)> = asset_files(meta)?
        .into_iter()
        .map(|(tensor, file)| {
            let path = dir.join("assets").join(file);
            Ok((
                model.port(&tensor)?,
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

/// Each asset tensor of `meta` once, with its file: from `asset_file_def`, or, where that is empty, TensorFlow 1's
/// `saved_model_assets` collection, as TensorFlow's loader reads them. An export that lists one tensor twice (old
/// tutorials added the ASSET_FILEPATHS collection by hand) makes TensorFlow's C++ loader feed it twice and fail;
/// Python's loader keeps one entry per tensor, and so does this. Two different files for one tensor are an error.
pub fn asset_files(meta: &MetaGraphDef) -> Result<Vec<(String, String)>> {
    let legacy: Vec<AssetFileDef> = if meta.asset_file_def.is_empty() {
        meta.collection_def
            .get(ASSETS_COLLECTION)
            .and_then(|c| c.any_list.as_ref())
            .map(|l| {
                l.value
                    .iter()
                    .map(|any| {
                        AssetFileDef::decode(any.value.as_slice()).map_err(|e| {
                            Error::Model(format!(
                                "collection {ASSETS_COLLECTION} holds an entry that is not an AssetFileDef: {e}"
                            ))
                        })
                    })
                    .collect::<Result<_>>()
            })
            .transpose()?
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut files: Vec<(String, String)> = Vec::new();
    for asset in meta.asset_file_def.iter().chain(&legacy) {
        let Some(tensor) = asset.tensor_info.as_ref().map(|t| &t.name) else {
            continue;
        };
        match files.iter().find(|(t, _)| t == tensor) {
            None => files.push((tensor.clone(), asset.filename.clone())),
            Some((_, file)) if *file == asset.filename => log::warn!(
                "the SavedModel lists asset {file} (tensor {tensor}) more than once; it is fed once, as Python's \
                 loader does (re-export it listing each asset once: TensorFlow's own C++ loader refuses it)"
            ),
            Some((_, file)) => {
                return Err(Error::Model(format!(
                    "the SavedModel lists two files for the asset tensor {tensor}: assets/{file} and assets/{}; \
                     re-export it with each asset listed once",
                    asset.filename
                )))
            }
        }
    }
    Ok(files)
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

#[cfg(test)]
mod tests {
    use super::*;
    use spindle_proto::tensorflow::collection_def::AnyList;
    use spindle_proto::tensorflow::{Any, CollectionDef, TensorInfo};

    fn asset(tensor: &str, file: &str) -> AssetFileDef {
        AssetFileDef {
            tensor_info: Some(TensorInfo {
                name: tensor.into(),
                ..Default::default()
            }),
            filename: file.into(),
        }
    }

    fn legacy(assets: &[AssetFileDef]) -> MetaGraphDef {
        let value = assets
            .iter()
            .map(|a| Any {
                type_url: "type.googleapis.com/tensorflow.AssetFileDef".into(),
                value: a.encode_to_vec(),
            })
            .collect();
        let collection = CollectionDef {
            any_list: Some(AnyList { value }),
            ..Default::default()
        };
        MetaGraphDef {
            collection_def: [(ASSETS_COLLECTION.to_string(), collection)].into(),
            ..Default::default()
        }
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(t, f)| (t.to_string(), f.to_string()))
            .collect()
    }

    #[test]
    fn an_asset_listed_twice_is_fed_once_from_either_place() {
        let twice = [
            asset("a:0", "vocab.txt"),
            asset("b:0", "x.txt"),
            asset("a:0", "vocab.txt"),
        ];
        let want = pairs(&[("a:0", "vocab.txt"), ("b:0", "x.txt")]);
        assert_eq!(asset_files(&legacy(&twice)).unwrap(), want);
        let current = MetaGraphDef {
            asset_file_def: twice.to_vec(),
            ..Default::default()
        };
        assert_eq!(asset_files(&current).unwrap(), want);
    }

    #[test]
    fn asset_file_def_wins_over_the_legacy_collection() {
        let mut meta = legacy(&[asset("old:0", "old.txt")]);
        meta.asset_file_def = vec![asset("new:0", "new.txt")];
        assert_eq!(asset_files(&meta).unwrap(), pairs(&[("new:0", "new.txt")]));
    }

    #[test]
    fn two_files_for_one_tensor_are_an_error_naming_both() {
        let meta = legacy(&[asset("a:0", "one.txt"), asset("a:0", "two.txt")]);
        let e = asset_files(&meta).unwrap_err().to_string();
        assert!(
            e.contains("a:0") && e.contains("assets/one.txt") && e.contains("assets/two.txt"),
            "{e}"
        );
    }
}
