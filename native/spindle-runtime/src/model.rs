//! A loaded SavedModel and the signatures it offers.

use std::path::Path;

use spindle_proto::spindle::{DType, ModelConfig, ModelInfo, SignatureInfo, TensorSpec};
use spindle_proto::tensorflow::{SaverDef, TensorInfo};
use spindle_proto::Message;

use crate::error::{Error, Result};
use crate::loader;
use crate::placement::Placement;
use crate::tf::{tf_type_name, DataType, Port, SavedModel, Tensor};

/// One SavedModel in one TensorFlow session, shared (behind an `Arc`) by every feeder and thread that
/// runs it; the session closes when the last holder drops it.
pub struct Model {
    saved: SavedModel,
    path: String,
    info: ModelInfo,
}

impl Model {
    /// Loads the model `config` describes.
    pub fn load(config: &ModelConfig) -> Result<Model> {
        let tags = if config.tags.is_empty() {
            vec!["serve".to_string()]
        } else {
            config.tags.clone()
        };
        let placement = Placement::of(config)?;
        let saved = loader::load(
            Path::new(&config.path),
            &tags,
            config.intra_op_threads,
            config.inter_op_threads,
            &placement,
        )?;
        let info = describe(&saved);
        let devices = saved.devices().unwrap_or_default().join(", ");
        let placed = if placement.device.is_empty() {
            String::new()
        } else {
            format!(
                ", its graph placed on {} (visible GPUs: {})",
                placement.device,
                placement.visible_gpus.join(",")
            )
        };
        log::info!(
            "loaded SavedModel {} ({} signatures) on devices {devices}{placed}",
            config.path,
            info.signatures.len()
        );
        Ok(Model {
            saved,
            path: config.path.clone(),
            info,
        })
    }

    /// Where the model was loaded from.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Every signature, inputs and outputs sorted by name.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The signature `name`, or an error listing the ones that exist.
    pub fn signature(&self, name: &str) -> Result<&SignatureInfo> {
        self.info
            .signatures
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self
                    .info
                    .signatures
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                Error::Model(format!(
                    "SavedModel {} has no signature '{name}' (it has: {})",
                    self.path,
                    known.join(", ")
                ))
            })
    }

    /// The checkpoint ops of the model's saver (names differ per model, so they are always read).
    pub fn saver_def(&self) -> Option<&SaverDef> {
        self.saved.meta_graph().saver_def.as_ref()
    }

    /// Resolves a graph tensor name.
    pub fn port(&self, tensor: &str) -> Result<Port> {
        self.saved.port(tensor)
    }

    /// Runs the session; `what` names the run in errors.
    pub fn run(
        &self,
        inputs: &[(Port, &Tensor)],
        outputs: &[Port],
        what: &str,
    ) -> Result<Vec<Tensor>> {
        self.saved.run(inputs, outputs, what).map_err(|e| match e {
            Error::Model(m) if m.contains("Could not find variable") => Error::Model(format!(
                "{m} (model {}): TensorFlow's session loader, which Spindle and TF Serving use, restored no such \
                 variable. A tf.Module holding Keras 3 layers saved with tf.saved_model.save does this; export \
                 Keras 3 models with model.export or keras.export.ExportArchive",
                self.path
            )),
            Error::Model(m) => Error::Model(format!("{m} (model {})", self.path)),
            other => other,
        })
    }

    /// Writes the current variables as a TF2 checkpoint at `prefix` through the model's saver (the
    /// prefix's parent directory must exist).
    pub fn save(&self, prefix: &Path) -> Result<()> {
        let (saver, prefix_text) = self.saver(prefix)?;
        let filename = Tensor::scalar_string(prefix_text)?;
        let feed = self.port(&saver.filename_tensor_name)?;
        let save = self.port(&saver.save_tensor_name)?;
        self.run(
            &[(feed, &filename)],
            &[save],
            &format!("the saver (writing {prefix_text})"),
        )?;
        Ok(())
    }

    /// Restores the variables from the checkpoint at `prefix` through the model's saver.
    pub fn restore(&self, prefix: &Path) -> Result<()> {
        let (saver, prefix_text) = self.saver(prefix)?;
        let filename = Tensor::scalar_string(prefix_text)?;
        let feed = self.port(&saver.filename_tensor_name)?;
        let restore = self.port(&saver.restore_op_name)?;
        self.saved.run_targets(
            &[(feed, &filename)],
            &[],
            &[restore],
            &format!("the saver (restoring {prefix_text})"),
        )?;
        Ok(())
    }

    /// Identifies the model's signatures (names, dtypes, shapes): two models with the same fingerprint take
    /// each other's checkpoints.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.info.encode_to_vec());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn saver<'a>(&self, prefix: &'a Path) -> Result<(&SaverDef, &'a str)> {
        let saver = self.saver_def().ok_or_else(|| {
            Error::Model(format!(
                "SavedModel {} has no saver_def, so its variables cannot be saved or restored",
                self.path
            ))
        })?;
        let text = prefix.to_str().ok_or_else(|| {
            Error::Input(format!("checkpoint path {} is not UTF-8", prefix.display()))
        })?;
        Ok((saver, text))
    }

    /// Writes a SavedModel of the current variables into `dir`: the graph files are copied from the
    /// loaded model's directory and the variables saved into `dir/variables/variables`.
    pub fn export(&self, dir: &Path) -> Result<()> {
        let io = |what: &str, e: std::io::Error| {
            Error::io(format!("exporting to {}: {what}", dir.display()), e)
        };
        let source = Path::new(&self.path);
        std::fs::create_dir_all(dir.join("variables")).map_err(|e| io("creating it", e))?;
        for file in ["saved_model.pb", "fingerprint.pb"] {
            if source.join(file).exists() {
                std::fs::copy(source.join(file), dir.join(file)).map_err(|e| io(file, e))?;
            }
        }
        let assets = source.join("assets");
        if assets.is_dir() {
            std::fs::create_dir_all(dir.join("assets")).map_err(|e| io("assets", e))?;
            for entry in std::fs::read_dir(&assets).map_err(|e| io("assets", e))? {
                let entry = entry.map_err(|e| io("assets", e))?;
                std::fs::copy(entry.path(), dir.join("assets").join(entry.file_name()))
                    .map_err(|e| io("assets", e))?;
            }
        }
        self.save(&dir.join("variables").join("variables"))
    }
}

fn describe(saved: &SavedModel) -> ModelInfo {
    let mut signatures: Vec<SignatureInfo> = saved
        .meta_graph()
        .signature_def
        .iter()
        .map(|(name, sig)| SignatureInfo {
            name: name.clone(),
            inputs: specs(&sig.inputs),
            outputs: specs(&sig.outputs),
        })
        .collect();
    signatures.sort_by(|a, b| a.name.cmp(&b.name));
    ModelInfo { signatures }
}

fn specs(map: &std::collections::HashMap<String, TensorInfo>) -> Vec<TensorSpec> {
    let mut out: Vec<TensorSpec> = map
        .iter()
        .map(|(key, info)| {
            let shape = info.tensor_shape.clone().unwrap_or_default();
            TensorSpec {
                name: key.clone(),
                tensor: info.name.clone(),
                dtype: DataType::from_tf(info.dtype).map_or(DType::DtypeUnspecified, to_proto)
                    as i32,
                tf_dtype: tf_type_name(info.dtype),
                shape: shape.dim.iter().map(|d| d.size).collect(),
                unknown_rank: shape.unknown_rank,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Our wire dtype and each TensorFlow type.
const WIRE: [(DataType, DType); 14] = [
    (DataType::Float32, DType::Float32),
    (DataType::Float64, DType::Float64),
    (DataType::Int32, DType::Int32),
    (DataType::Int64, DType::Int64),
    (DataType::Bool, DType::Bool),
    (DataType::UInt8, DType::Uint8),
    (DataType::Int8, DType::Int8),
    (DataType::Int16, DType::Int16),
    (DataType::UInt16, DType::Uint16),
    (DataType::UInt32, DType::Uint32),
    (DataType::UInt64, DType::Uint64),
    (DataType::Float16, DType::Float16),
    (DataType::BFloat16, DType::Bfloat16),
    (DataType::String, DType::String),
];

/// Our wire dtype for a TensorFlow type.
pub fn to_proto(d: DataType) -> DType {
    WIRE.iter()
        .find(|(t, _)| *t == d)
        .map(|(_, w)| *w)
        .expect("every DataType has a wire dtype")
}

/// The TensorFlow type for our wire dtype, or `None` for `DTYPE_UNSPECIFIED`.
pub fn from_proto(d: DType) -> Option<DataType> {
    WIRE.iter().find(|(_, w)| *w == d).map(|(t, _)| *t)
}
