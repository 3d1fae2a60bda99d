//! The inputs of a batch, as a signature takes them: the JVM's input layouts checked against the signature
//! (every input fed once, dtypes and shapes that fit, tf.Example features of the kinds a tf.Example holds)
//! and placed in the batch by [`crate::layout`], once, when a feeder or trainer opens ([`lay_out`]).
//! Every batch after that is only read and run (`crate::batch`).
//!
//! A tf.Example input has no area of its own: its features are laid out like inputs, and each row's
//! serialized `Example` is built from them.

use spindle_proto::spindle::{DType, FeederLayout, InputLayout, TensorSpec};

use crate::error::{Error, Result};
use crate::layout::{self, Area, Cursor};
use crate::model::{from_proto, Model};
use crate::tf::{DataType, Port};

/// How a signature input is fed: from its area, or as serialized tf.Examples built from features.
pub(crate) enum Feed {
    Area(Area),
    Examples(Vec<Area>),
}

/// One signature input in a batch.
pub(crate) struct BatchInput {
    /// The signature's input tensor.
    pub(crate) port: Port,
    /// Where its values lie.
    pub(crate) feed: Feed,
}

impl BatchInput {
    fn areas(&self) -> &[Area] {
        match &self.feed {
            Feed::Area(a) => std::slice::from_ref(a),
            Feed::Examples(features) => features,
        }
    }

    fn areas_mut(&mut self) -> &mut [Area] {
        match &mut self.feed {
            Feed::Area(a) => std::slice::from_mut(a),
            Feed::Examples(features) => features,
        }
    }
}

/// Every area of `inputs`, in the order the JVM writes them (an Example input's features in its place).
pub(crate) fn areas(inputs: &[BatchInput]) -> impl Iterator<Item = &Area> + Clone {
    inputs.iter().flat_map(BatchInput::areas)
}

/// The layout the JVM writes by; the caller fills in the address, the stride and the slot count.
pub(crate) fn feeder_layout(inputs: &[BatchInput]) -> FeederLayout {
    layout::feeder_layout(areas(inputs))
}

/// Checks `layouts` against signature `sig_name` of `model` (every input fed once, dtypes and shapes that fit)
/// and places them in a batch of `batch` rows ([`crate::layout`]). Returns the inputs and the batch's bytes.
pub(crate) fn lay_out(
    model: &Model,
    sig_name: &str,
    layouts: &[InputLayout],
    batch: usize,
) -> Result<(Vec<BatchInput>, usize)> {
    let sig = model.signature(sig_name)?;
    let mut inputs: Vec<(String, BatchInput)> = Vec::with_capacity(layouts.len());
    let mut cursor = Cursor::new(batch);
    for layout in layouts {
        let spec = sig
            .inputs
            .iter()
            .find(|s| s.name == layout.name)
            .ok_or_else(|| {
                let names: Vec<&str> = sig.inputs.iter().map(|s| s.name.as_str()).collect();
                Error::Input(format!(
                    "signature '{sig_name}' has no input '{}' (its inputs: {})",
                    layout.name,
                    names.join(", ")
                ))
            })?;
        if inputs.iter().any(|(name, _)| *name == layout.name) {
            return Err(Error::Input(format!(
                "input '{}' is fed twice",
                layout.name
            )));
        }
        let dtype = check_input(spec, layout.dtype, &layout.row_shape, sig_name)?;
        let feed = if layout.example_features.is_empty() {
            Feed::Area(cursor.area(layout, dtype)?)
        } else {
            Feed::Examples(examples(spec, layout, &mut cursor)?)
        };
        let port = model.port(&spec.tensor)?;
        inputs.push((layout.name.clone(), BatchInput { port, feed }));
    }
    if let Some(missing) = sig
        .inputs
        .iter()
        .find(|s| !inputs.iter().any(|(name, _)| *name == s.name))
    {
        return Err(Error::Input(format!(
            "input '{}' of signature '{sig_name}' is not fed",
            missing.name
        )));
    }
    let mut inputs: Vec<BatchInput> = inputs.into_iter().map(|(_, i)| i).collect();
    cursor.arenas(inputs.iter_mut().flat_map(BatchInput::areas_mut))?;
    Ok((inputs, cursor.bytes()))
}

/// The features of a tf.Example input: the signature takes a vector of strings.
fn examples(spec: &TensorSpec, layout: &InputLayout, cursor: &mut Cursor) -> Result<Vec<Area>> {
    let name = &spec.name;
    if !layout.row_shape.is_empty() {
        return Err(Error::Input(format!(
            "input '{name}' takes one serialized tf.Example per row: its rows are scalars"
        )));
    }
    let mut features: Vec<Area> = Vec::with_capacity(layout.example_features.len());
    for f in &layout.example_features {
        let dtype = DType::try_from(f.dtype)
            .ok()
            .and_then(from_proto)
            .filter(|d| matches!(d, DataType::Float32 | DataType::Int64 | DataType::String))
            .ok_or_else(|| {
                Error::Input(format!(
                    "feature '{}' of input '{name}': a tf.Example holds float32, int64 or string values",
                    f.name
                ))
            })?;
        if features.iter().any(|a| a.name == f.name) {
            return Err(Error::Input(format!(
                "feature '{}' of input '{name}' is given twice",
                f.name
            )));
        }
        check_row_shape(&f.name, &f.row_shape)?;
        features.push(cursor.area(f, dtype)?);
    }
    Ok(features)
}

/// A shape as errors show it, unknown dimensions as `?`: `[?, 4]`.
fn shape_text(dims: &[i64]) -> String {
    let d: Vec<String> = dims
        .iter()
        .map(|d| if *d < 0 { "?".into() } else { d.to_string() })
        .collect();
    format!("[{}]", d.join(", "))
}

/// A row shape is positive sizes, or the single `-1` of a ragged input.
fn check_row_shape(name: &str, row_shape: &[i64]) -> Result<()> {
    if row_shape == [-1] {
        return Ok(());
    }
    match row_shape.iter().find(|d| **d <= 0) {
        Some(bad) => Err(Error::Input(format!(
            "input '{name}': row dimension {bad} must be positive (or the only one, -1, for ragged rows)"
        ))),
        None => Ok(()),
    }
}

/// Checks one input layout against its signature spec and returns its dtype.
fn check_input(spec: &TensorSpec, dtype: i32, row_shape: &[i64], sig: &str) -> Result<DataType> {
    let name = &spec.name;
    let want = DType::try_from(spec.dtype).unwrap_or(DType::DtypeUnspecified);
    let Some(tf_type) = from_proto(want) else {
        return Err(Error::Model(format!(
            "input '{name}' of signature '{sig}' has dtype {}, which Spindle does not feed",
            spec.tf_dtype
        )));
    };
    let got = DType::try_from(dtype).unwrap_or(DType::DtypeUnspecified);
    if got != want {
        return Err(Error::Input(format!(
            "input '{name}' of signature '{sig}': expected dtype {}, got {}",
            want.as_str_name().to_lowercase(),
            got.as_str_name().to_lowercase()
        )));
    }
    check_row_shape(name, row_shape)?;
    if !spec.unknown_rank {
        let inner = spec.shape.get(1..).unwrap_or(&[]);
        let fits = !spec.shape.is_empty()
            && inner.len() == row_shape.len()
            && inner.iter().zip(row_shape).all(|(s, r)| *s < 0 || s == r);
        if !fits {
            return Err(Error::Input(format!(
                "input '{name}' of signature '{sig}': expected shape {}, got rows of {}",
                shape_text(&spec.shape),
                shape_text(row_shape)
            )));
        }
    }
    Ok(tf_type)
}
