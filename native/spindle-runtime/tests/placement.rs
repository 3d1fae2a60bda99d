//! Spindle's own SavedModel import, which places a graph on a chosen device (a task's GPU), against TensorFlow's
//! loader: on every checked-in fixture, placed on `/device:CPU:0`, each signature's outputs are bit for bit those
//! of the same model loaded by TensorFlow. This is the load path every GPU task takes.

use std::path::{Path, PathBuf};

use spindle_proto::spindle::{DType, ModelConfig, SignatureInfo, TensorSpec};
use spindle_runtime::model::from_proto;
use spindle_runtime::tf::{DataType, Tensor};
use spindle_runtime::{Error, Model};

fn load(dir: &Path, device: &str) -> Model {
    let config = ModelConfig {
        path: dir.to_string_lossy().into_owned(),
        intra_op_threads: 1,
        inter_op_threads: 1,
        device: device.into(),
        ..Default::default()
    };
    Model::load(&config).unwrap_or_else(|e| panic!("{} on {device:?}: {e}", dir.display()))
}

fn fixtures_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Every SavedModel under tests/fixtures.
fn fixtures() -> Vec<PathBuf> {
    let root = fixtures_root();
    let mut dirs: Vec<PathBuf> = [root.clone(), root.join("corpus")]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).expect("fixtures dir"))
        .map(|e| e.expect("entry").path())
        .filter(|d| d.join("saved_model.pb").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// A deterministic input of three rows for `spec`, or `None` when its rank is unknown.
fn input(spec: &TensorSpec) -> Option<Tensor> {
    if spec.unknown_rank {
        return None;
    }
    let dims: Vec<i64> = spec
        .shape
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            if d >= 0 {
                d
            } else if i == 0 {
                3
            } else {
                2
            }
        })
        .collect();
    let dtype = from_proto(DType::try_from(spec.dtype).ok()?)?;
    let n = dims.iter().product::<i64>() as usize;
    let small = |k: usize| (k * 7 + 3) % 11;
    if dtype == DataType::String {
        let texts = ["a good movie", "très bon film", "", "bad"];
        return Some(Tensor::strings(&dims, (0..n).map(|k| texts[k % 4].as_bytes())).unwrap());
    }
    let size = dtype.size();
    let tensor = Tensor::filled(dtype, &dims, |bytes| {
        for (k, element) in bytes.chunks_mut(size).enumerate() {
            let v = small(k);
            let f = v as f32 / 4.0 - 1.0;
            let le: Vec<u8> = match dtype {
                DataType::Float32 => f.to_le_bytes().to_vec(),
                DataType::Float64 => (f as f64).to_le_bytes().to_vec(),
                // bfloat16 is float32's upper half; f is exact in it. float16 gets 0.0 or 1.0.
                DataType::BFloat16 => f.to_le_bytes()[2..].to_vec(),
                DataType::Float16 => [0u8, if v % 2 == 0 { 0 } else { 0x3c }].to_vec(),
                DataType::Bool => vec![(v % 2) as u8],
                _ => (v as u64).to_le_bytes()[..size].to_vec(),
            };
            element.copy_from_slice(&le);
        }
    });
    Some(tensor.unwrap())
}

/// The outputs of `signature` on `inputs`, as bytes (each string element separately), or the run's error.
fn outputs(
    model: &Model,
    signature: &SignatureInfo,
    inputs: &[Tensor],
) -> Result<Vec<Vec<Vec<u8>>>, String> {
    let feeds: Vec<_> = signature
        .inputs
        .iter()
        .zip(inputs)
        .map(|(s, t)| (model.port(&s.tensor).unwrap(), t))
        .collect();
    let fetches: Vec<_> = signature
        .outputs
        .iter()
        .map(|s| model.port(&s.tensor).unwrap())
        .collect();
    let tensors = model
        .run(&feeds, &fetches, "the comparison")
        .map_err(|e| e.to_string())?;
    Ok(tensors
        .iter()
        .map(|t| match t.string_values() {
            Ok(strings) => strings.iter().map(|s| s.to_vec()).collect(),
            Err(_) => vec![t.to_vec::<u8>(), format!("{:?}", t.dims()).into_bytes()],
        })
        .collect())
}

#[test]
fn every_fixture_placed_by_spindle_computes_what_tensorflows_loader_does() {
    let mut compared = Vec::new();
    for dir in fixtures() {
        let by_tensorflow = load(&dir, "");
        let placed = load(&dir, "/device:CPU:0");
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(by_tensorflow.info(), placed.info(), "{name}: signatures");
        for signature in &by_tensorflow.info().signatures {
            let Some(inputs) = signature
                .inputs
                .iter()
                .map(input)
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            let expected = outputs(&by_tensorflow, signature, &inputs);
            let got = outputs(&placed, signature, &inputs);
            assert_eq!(expected, got, "{name}/{}", signature.name);
            if expected.is_ok() {
                compared.push(format!("{name}/{}", signature.name));
            }
        }
    }
    // The fixtures whose loads need each step of the import: restored variables (trained weights), asset files and
    // the init op (a vocabulary table), and every dtype.
    for needed in [
        "digits_mlp_trained/serving_default",
        "text_classifier/serving_default",
        "dtypes_model/serving_default",
        "widths_model/serving_default",
    ] {
        assert!(
            compared.iter().any(|c| c == needed),
            "{needed} not compared: {compared:?}"
        );
    }
}

#[test]
fn an_import_with_tags_the_model_lacks_names_the_tags_it_has() {
    let config = ModelConfig {
        path: fixtures_root()
            .join("dtypes_model")
            .to_string_lossy()
            .into_owned(),
        tags: vec!["train".into()],
        device: "/device:CPU:0".into(),
        ..Default::default()
    };
    match Model::load(&config) {
        Err(Error::Model(m)) => {
            assert!(m.contains("[\"train\"]") && m.contains("\"serve\""), "{m}")
        }
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("loaded with tags the model lacks"),
    }
}

#[test]
fn a_task_without_gpus_on_an_executor_with_gpus_computes_as_without_them() {
    let dir = fixtures_root().join("digits_mlp_trained");
    let config = ModelConfig {
        path: dir.to_string_lossy().into_owned(),
        intra_op_threads: 1,
        inter_op_threads: 1,
        executor_gpus: vec!["0".into(), "1".into()],
        ..Default::default()
    };
    // This CPU build sees no GPU; a task holding none needs none, so the executor's list must not fail its load.
    let on_gpu_executor = Model::load(&config).unwrap_or_else(|e| panic!("{e}"));
    let plain = load(&dir, "");
    let signature = &plain.info().signatures[0];
    let inputs: Vec<Tensor> = signature.inputs.iter().map(|s| input(s).unwrap()).collect();
    assert_eq!(
        outputs(&plain, signature, &inputs),
        outputs(&on_gpu_executor, signature, &inputs)
    );
}
