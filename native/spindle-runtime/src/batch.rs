//! The reader of a batch, shared by inference and training: the tensors of a signature's inputs read out
//! of a batch buffer (a feeder slot or a trainer's spill window) as the JVM wrote it, and the run of the
//! signature over them ([`run_batch`]). Where each input lies is `crate::layout`'s; which inputs a
//! signature takes, checked once when a feeder or trainer opens, is `crate::batch_inputs`'.
//!
//! * fixed-width areas are aliased by TensorFlow instead of copied;
//! * strings become one TensorFlow string tensor per batch, copied from the arena;
//! * ragged rows are padded to the batch's longest row (aliased as they are when every row has the same
//!   length);
//! * a tf.Example input becomes one serialized `Example` per row, built from its features' areas.

use std::collections::HashMap;
use std::sync::Arc;

use spindle_proto::tensorflow::{
    feature, BytesList, Example, Feature, Features, FloatList, Int64List,
};
use spindle_proto::Message;

use crate::batch_inputs::{BatchInput, Feed};
use crate::error::{Error, Result};
use crate::layout::{Area, Form};
use crate::model::Model;
use crate::tf::{AliasGuard, DataType, Port, Tensor};

/// A batch at `base` of `rows` rows, as the JVM wrote it.
struct Batch {
    base: *mut u8,
    rows: usize,
}

impl Batch {
    /// The (offset, length) pairs of `area`'s first `rows` rows, each checked to lie inside its arena.
    ///
    /// # Safety
    /// The batch must be laid out as `area` says and stay mapped while the pairs are used.
    unsafe fn pairs(&self, area: &Area) -> Result<&[[u32; 2]]> {
        let n = self.rows * area.row_bytes / 8;
        // SAFETY: the area is 64-byte aligned and holds `rows * row_bytes` bytes of pairs.
        let pairs =
            unsafe { std::slice::from_raw_parts(self.base.add(area.offset) as *const [u32; 2], n) };
        let unit = match area.form {
            Form::Ragged(_) => area.dtype.size(),
            _ => 1,
        };
        if let Some((i, _)) = pairs
            .iter()
            .enumerate()
            .find(|(_, [off, len])| *off as usize + *len as usize * unit > area.arena_bytes)
        {
            return Err(Error::Native(format!(
                "input '{}': entry {i} points outside its arena of {} bytes",
                area.name, area.arena_bytes
            )));
        }
        Ok(pairs)
    }

    /// `len` bytes of `area`'s arena from `offset` (checked by [`Self::pairs`]).
    ///
    /// # Safety
    /// As for [`Self::pairs`], with `offset + len` inside the arena.
    unsafe fn bytes(&self, area: &Area, offset: u32, len: usize) -> &[u8] {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(self.base.add(area.arena + offset as usize), len) }
    }

    /// The tensor of one area: aliased where its values lie as TensorFlow wants them, else built.
    ///
    /// # Safety
    /// The batch must stay mapped and unwritten until `guard.live()` drops back.
    unsafe fn tensor(&self, area: &Area, guard: &Arc<AliasGuard>) -> Result<Tensor> {
        let mut dims = Vec::with_capacity(area.row_shape.len() + 1);
        dims.push(self.rows as i64);
        dims.extend_from_slice(&area.row_shape);
        match &area.form {
            // SAFETY: `rows * row_bytes` bytes from `offset` lie inside the batch; the caller's contract.
            Form::Dense => unsafe {
                Tensor::from_external(
                    area.dtype,
                    &dims,
                    self.base.add(area.offset),
                    self.rows * area.row_bytes,
                    guard,
                )
            },
            Form::Strings => {
                // SAFETY: the pairs were checked against the arena.
                let pairs = unsafe { self.pairs(area)? };
                let values = pairs
                    .iter()
                    .map(|[off, len]| unsafe { self.bytes(area, *off, *len as usize) });
                Tensor::strings(&dims, values)
            }
            Form::Ragged(pad) => {
                // SAFETY: as above.
                let pairs = unsafe { self.pairs(area)? };
                let size = area.dtype.size();
                let longest = pairs.iter().map(|[_, n]| *n as usize).max().unwrap_or(0);
                dims[1] = longest as i64;
                // Rows of one length, written one after another, already are the padded tensor.
                let packed = longest > 0
                    && pairs.iter().enumerate().all(|(i, [off, n])| {
                        *n as usize == longest && *off as usize == i * longest * size
                    });
                if packed {
                    // SAFETY: the rows lie in the arena, checked above; the caller's contract.
                    return unsafe {
                        Tensor::from_external(
                            area.dtype,
                            &dims,
                            self.base.add(area.arena),
                            self.rows * longest * size,
                            guard,
                        )
                    };
                }
                Tensor::filled(area.dtype, &dims, |out| {
                    for (row, [off, n]) in out.chunks_exact_mut(longest * size).zip(pairs) {
                        let values = *n as usize * size;
                        // SAFETY: checked against the arena above.
                        row[..values].copy_from_slice(unsafe { self.bytes(area, *off, values) });
                        for p in row[values..].chunks_exact_mut(size) {
                            p.copy_from_slice(pad);
                        }
                    }
                })
            }
        }
    }

    /// One serialized tf.Example per row, built from `features`.
    ///
    /// # Safety
    /// The batch must be laid out as `features` say.
    unsafe fn examples(&self, features: &[Area]) -> Result<Tensor> {
        let mut examples = vec![HashMap::with_capacity(features.len()); self.rows];
        for area in features {
            // SAFETY: the caller's contract.
            let rows = unsafe { self.feature_rows(area)? };
            for (example, values) in examples.iter_mut().zip(rows) {
                example.insert(area.name.clone(), values);
            }
        }
        let encoded: Vec<Vec<u8>> = examples
            .into_iter()
            .map(|feature| {
                Example {
                    features: Some(Features { feature }),
                }
                .encode_to_vec()
            })
            .collect();
        Tensor::strings(&[self.rows as i64], encoded.iter().map(Vec::as_slice))
    }

    /// Each row's values of one feature area.
    ///
    /// # Safety
    /// The batch must be laid out as `area` says.
    unsafe fn feature_rows(&self, area: &Area) -> Result<Vec<Feature>> {
        let per_row = area.row_shape.iter().product::<i64>() as usize;
        let size = area.dtype.size();
        // Each row's bytes of values (dense or ragged), or each row's strings.
        let rows: Vec<Vec<&[u8]>> = match &area.form {
            Form::Dense => (0..self.rows)
                .map(|r| {
                    // SAFETY: row r's values lie in the area.
                    let at = unsafe { self.base.add(area.offset + r * area.row_bytes) };
                    vec![unsafe { std::slice::from_raw_parts(at as *const u8, per_row * size) }]
                })
                .collect(),
            Form::Ragged(_) => unsafe { self.pairs(area)? }
                .iter()
                .map(|[off, n]| vec![unsafe { self.bytes(area, *off, *n as usize * size) }])
                .collect(),
            Form::Strings => unsafe { self.pairs(area)? }
                .chunks_exact(per_row)
                .map(|row| {
                    row.iter()
                        .map(|[off, len]| unsafe { self.bytes(area, *off, *len as usize) })
                        .collect()
                })
                .collect(),
        };
        Ok(rows
            .into_iter()
            .map(|values| {
                let kind = match area.dtype {
                    DataType::String => feature::Kind::BytesList(BytesList {
                        value: values.iter().map(|v| v.to_vec()).collect(),
                    }),
                    DataType::Float32 => feature::Kind::FloatList(FloatList {
                        value: values[0]
                            .chunks_exact(4)
                            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                            .collect(),
                    }),
                    _ => feature::Kind::Int64List(Int64List {
                        value: values[0]
                            .chunks_exact(8)
                            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                            .collect(),
                    }),
                };
                Feature { kind: Some(kind) }
            })
            .collect())
    }
}

/// Runs `fetch` of `model` on the first `rows` rows of the batch at `base`; `what` names the signature in
/// errors.
///
/// # Safety
/// The batch at `base` must be laid out as `inputs` say, and stay mapped and unwritten until
/// `guard.live()` drops back.
pub(crate) unsafe fn run_batch(
    model: &Model,
    inputs: &[BatchInput],
    base: *mut u8,
    rows: usize,
    guard: &Arc<AliasGuard>,
    fetch: &[Port],
    what: &str,
) -> Result<Vec<Tensor>> {
    let batch = Batch { base, rows };
    let tensors = inputs
        .iter()
        // SAFETY: the caller's contract.
        .map(|input| match &input.feed {
            Feed::Area(area) => unsafe { batch.tensor(area, guard) },
            Feed::Examples(features) => unsafe { batch.examples(features) },
        })
        .collect::<Result<Vec<_>>>()?;
    let feeds: Vec<(Port, &Tensor)> = inputs
        .iter()
        .zip(&tensors)
        .map(|(i, t)| (i.port, t))
        .collect();
    model.run(&feeds, fetch, what)
}
