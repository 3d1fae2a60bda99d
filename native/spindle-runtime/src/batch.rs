//! The layout of one batch, shared by inference and training: where each input's array lies in a batch
//! buffer (a feeder slot or a trainer's spill window), and the run of a signature over a batch in place.
//!
//! Each input's `[batch_size, row_shape...]` array starts 64-byte aligned ([`ALIGNMENT`]), so TensorFlow
//! aliases it instead of copying. The layout is checked against the signature once, when a feeder or
//! trainer opens ([`lay_out`]); every batch after that is only aliased and run ([`run_batch`]).

use std::sync::Arc;

use spindle_proto::spindle::{DType, InputLayout, TensorSpec};

use crate::error::{Error, Result};
use crate::model::{from_proto, Model};
use crate::tf::{AliasGuard, DataType, Port, Tensor, ALIGNMENT};

/// One input's place in a batch (a feeder slot or a trainer window): its `[rows, ...row_shape]` array of
/// `dtype` starts `offset` bytes into the batch.
pub(crate) struct BatchInput {
    name: String,
    pub(crate) port: Port,
    dtype: DataType,
    row_shape: Vec<i64>,
    pub(crate) offset: usize,
    pub(crate) row_bytes: usize,
}

impl BatchInput {
    /// A tensor over this input's first `rows` rows in the batch at `base`, without a copy.
    ///
    /// # Safety
    /// The batch at `base` must stay mapped and unwritten until `guard.live()` drops back.
    pub(crate) unsafe fn alias(
        &self,
        base: *mut u8,
        rows: usize,
        guard: &Arc<AliasGuard>,
    ) -> Result<Tensor> {
        let mut dims = Vec::with_capacity(self.row_shape.len() + 1);
        dims.push(rows as i64);
        dims.extend_from_slice(&self.row_shape);
        // SAFETY: the caller's contract; `rows * row_bytes` bytes from `offset` lie inside the batch.
        unsafe {
            Tensor::from_external(
                self.dtype,
                &dims,
                base.add(self.offset),
                rows * self.row_bytes,
                guard,
            )
        }
    }
}

/// Runs `fetch` of `model` on the first `rows` rows of the batch at `base`, its `inputs` aliased (no copy);
/// `what` names the signature in errors.
///
/// # Safety
/// The batch at `base` must stay mapped and unwritten until `guard.live()` drops back.
pub(crate) unsafe fn run_batch(
    model: &Model,
    inputs: &[BatchInput],
    base: *mut u8,
    rows: usize,
    guard: &Arc<AliasGuard>,
    fetch: &[Port],
    what: &str,
) -> Result<Vec<Tensor>> {
    let tensors = inputs
        .iter()
        // SAFETY: the caller's contract.
        .map(|input| unsafe { input.alias(base, rows, guard) })
        .collect::<Result<Vec<_>>>()?;
    let feeds: Vec<(Port, &Tensor)> = inputs
        .iter()
        .zip(&tensors)
        .map(|(i, t)| (i.port, t))
        .collect();
    model.run(&feeds, fetch, what)
}

/// Checks `layouts` against signature `sig_name` of `model` (every input fed once, dtypes and shapes that fit)
/// and places them, 64-byte aligned, in a batch of `batch` rows. Returns the inputs and the batch's bytes.
pub(crate) fn lay_out(
    model: &Model,
    sig_name: &str,
    layouts: &[InputLayout],
    batch: usize,
) -> Result<(Vec<BatchInput>, usize)> {
    let sig = model.signature(sig_name)?;
    let mut inputs: Vec<BatchInput> = Vec::with_capacity(layouts.len());
    let mut cursor = 0usize;
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
        if inputs.iter().any(|i| i.name == layout.name) {
            return Err(Error::Input(format!(
                "input '{}' is fed twice",
                layout.name
            )));
        }
        let dtype = check_input(spec, layout.dtype, &layout.row_shape, sig_name)?;
        let row_bytes = layout
            .row_shape
            .iter()
            .try_fold(dtype.size(), |n, d| n.checked_mul(*d as usize))
            .ok_or_else(|| too_big(&layout.name))?;
        let offset = align(cursor);
        cursor = batch
            .checked_mul(row_bytes)
            .and_then(|n| n.checked_add(offset))
            .ok_or_else(|| too_big(&layout.name))?;
        inputs.push(BatchInput {
            name: layout.name.clone(),
            port: model.port(&spec.tensor)?,
            dtype,
            row_shape: layout.row_shape.clone(),
            offset,
            row_bytes,
        });
    }
    if let Some(missing) = sig
        .inputs
        .iter()
        .find(|s| !inputs.iter().any(|i| i.name == s.name))
    {
        return Err(Error::Input(format!(
            "input '{}' of signature '{sig_name}' is not fed",
            missing.name
        )));
    }
    Ok((inputs, cursor))
}

/// `n` rounded up to [`ALIGNMENT`]: where an array may start so that TensorFlow uses it in place.
pub(crate) fn align(n: usize) -> usize {
    n.div_ceil(ALIGNMENT) * ALIGNMENT
}

/// A shape as errors show it, unknown dimensions as `?`: `[?, 4]`.
fn shape_text(dims: &[i64]) -> String {
    let d: Vec<String> = dims
        .iter()
        .map(|d| if *d < 0 { "?".into() } else { d.to_string() })
        .collect();
    format!("[{}]", d.join(", "))
}

/// The error for a batch, slot ring or spill offset whose size overflows `usize`; `what` names it.
pub(crate) fn too_big(what: &str) -> Error {
    Error::Input(format!(
        "slot size overflows for '{what}': lower batch_size, num_slots or the row shape"
    ))
}

/// Checks one input layout against its signature spec and returns its dtype.
pub(crate) fn check_input(
    spec: &TensorSpec,
    dtype: i32,
    row_shape: &[i64],
    sig: &str,
) -> Result<DataType> {
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
    if let Some(bad) = row_shape.iter().find(|d| **d <= 0) {
        return Err(Error::Input(format!(
            "input '{name}': row dimension {bad} must be positive"
        )));
    }
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
