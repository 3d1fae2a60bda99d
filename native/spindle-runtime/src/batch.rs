//! The layout of one batch, shared by inference and training: where each input's values lie in a batch
//! buffer (a feeder slot or a trainer's spill window), and the run of a signature over a batch.
//!
//! Each input has an *area* of `[batch_size, row...]` entries, 64-byte aligned ([`ALIGNMENT`]):
//! * fixed-width dtypes of a known row shape hold their values there, and TensorFlow aliases the area
//!   instead of copying it;
//! * strings hold an (offset, length) pair of `u32` per element, pointing into the input's *arena* (a
//!   second region of the batch), and become one TensorFlow string tensor per batch;
//! * ragged inputs (rank 2, inner size unknown) hold an (offset, count) pair per row into the arena, and
//!   are padded to the batch's longest row (aliased as they are when every row has the same length);
//! * a tf.Example input has no area of its own: its features are laid out like inputs, and each row's
//!   serialized `Example` is built from them.
//!
//! The layout is checked against the signature once, when a feeder or trainer opens ([`lay_out`]); every
//! batch after that is only read and run ([`run_batch`]).

use std::collections::HashMap;
use std::sync::Arc;

use spindle_proto::spindle::{DType, FeederLayout, InputLayout, TensorSpec};
use spindle_proto::tensorflow::{
    feature, BytesList, Example, Feature, Features, FloatList, Int64List,
};
use spindle_proto::Message;

use crate::error::{Error, Result};
use crate::model::{from_proto, Model};
use crate::tf::{AliasGuard, DataType, Port, Tensor, ALIGNMENT};

/// How one input's values lie in its area.
enum Form {
    /// The values themselves.
    Dense,
    /// An (offset, length) pair per element into the arena.
    Strings,
    /// An (offset, count) pair per row into the arena; rows are padded with this element.
    Ragged(Vec<u8>),
}

/// Where one input (or one tf.Example feature) lies in a batch: its area of `row_bytes` per row starts
/// `offset` bytes into the batch, its arena (strings and ragged rows only) `arena` bytes.
pub(crate) struct Area {
    name: String,
    dtype: DataType,
    row_shape: Vec<i64>,
    form: Form,
    pub(crate) offset: usize,
    pub(crate) row_bytes: usize,
    pub(crate) arena: usize,
    arena_bytes: usize,
}

/// How a signature input is fed: from its area, or as serialized tf.Examples built from features.
enum Feed {
    Area(Area),
    Examples(Vec<Area>),
}

/// One signature input in a batch.
pub(crate) struct BatchInput {
    port: Port,
    feed: Feed,
}

impl BatchInput {
    fn areas(&self) -> &[Area] {
        match &self.feed {
            Feed::Area(a) => std::slice::from_ref(a),
            Feed::Examples(features) => features,
        }
    }
}

/// Every area of `inputs`, in the order the JVM writes them (an Example input's features in its place).
pub(crate) fn areas(inputs: &[BatchInput]) -> impl Iterator<Item = &Area> {
    inputs.iter().flat_map(BatchInput::areas)
}

/// The layout the JVM writes by; the caller fills in the address, the stride and the slot count.
pub(crate) fn layout(inputs: &[BatchInput]) -> FeederLayout {
    FeederLayout {
        input_offsets: areas(inputs).map(|a| a.offset as i64).collect(),
        row_bytes: areas(inputs).map(|a| a.row_bytes as i64).collect(),
        arena_offsets: areas(inputs).map(|a| a.arena as i64).collect(),
        ..Default::default()
    }
}

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

/// Checks `layouts` against signature `sig_name` of `model` (every input fed once, dtypes and shapes that fit)
/// and places them, 64-byte aligned, in a batch of `batch` rows. Returns the inputs and the batch's bytes.
pub(crate) fn lay_out(
    model: &Model,
    sig_name: &str,
    layouts: &[InputLayout],
    batch: usize,
) -> Result<(Vec<BatchInput>, usize)> {
    let sig = model.signature(sig_name)?;
    let mut inputs: Vec<(String, BatchInput)> = Vec::with_capacity(layouts.len());
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
        if inputs.iter().any(|(name, _)| *name == layout.name) {
            return Err(Error::Input(format!(
                "input '{}' is fed twice",
                layout.name
            )));
        }
        let dtype = check_input(spec, layout.dtype, &layout.row_shape, sig_name)?;
        let feed = if layout.example_features.is_empty() {
            Feed::Area(place(layout, dtype, batch, &mut cursor)?)
        } else {
            Feed::Examples(examples(spec, layout, batch, &mut cursor)?)
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
    // Arenas go after every area, so that areas stay where a batch of fixed-width inputs alone has them.
    for input in &mut inputs {
        let areas = match &mut input.feed {
            Feed::Area(a) => std::slice::from_mut(a),
            Feed::Examples(features) => features.as_mut_slice(),
        };
        for area in areas.iter_mut().filter(|a| a.arena_bytes > 0) {
            area.arena = align(cursor);
            cursor = area
                .arena
                .checked_add(area.arena_bytes)
                .ok_or_else(|| too_big(&area.name))?;
        }
    }
    Ok((inputs, cursor))
}

/// The features of a tf.Example input: the signature takes a vector of strings.
fn examples(
    spec: &TensorSpec,
    layout: &InputLayout,
    batch: usize,
    cursor: &mut usize,
) -> Result<Vec<Area>> {
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
        features.push(place(f, dtype, batch, cursor)?);
    }
    Ok(features)
}

/// Places one area after `cursor`.
fn place(layout: &InputLayout, dtype: DataType, batch: usize, cursor: &mut usize) -> Result<Area> {
    let name = &layout.name;
    let ragged = layout.row_shape == [-1];
    let form = match (dtype, ragged) {
        (DataType::String, false) => Form::Strings,
        (DataType::String, true) => {
            return Err(Error::Input(format!(
                "input '{name}': strings of a ragged length per row are not supported; give every row the same \
                 number of strings"
            )))
        }
        (_, true) => {
            if layout.pad.len() != dtype.size() {
                return Err(Error::Input(format!(
                    "input '{name}': a pad element of {dtype:?} is {} bytes, got {}",
                    dtype.size(),
                    layout.pad.len()
                )));
            }
            Form::Ragged(layout.pad.clone())
        }
        _ => Form::Dense,
    };
    let entry = match form {
        Form::Dense => dtype.size(),
        Form::Strings => 8,
        Form::Ragged(_) => 8,
    };
    let arena_bytes = match form {
        Form::Dense => 0,
        _ => usize::try_from(layout.arena_bytes)
            .ok()
            .filter(|b| (1..=u32::MAX as usize).contains(b))
            .ok_or_else(|| {
                Error::Input(format!(
                    "input '{name}': arena_bytes {} must be between 1 and {}",
                    layout.arena_bytes,
                    u32::MAX
                ))
            })?,
    };
    let per_row = if ragged {
        1
    } else {
        layout.row_shape.iter().map(|d| *d as usize).product()
    };
    let row_bytes = entry.checked_mul(per_row).ok_or_else(|| too_big(name))?;
    let offset = align(*cursor);
    *cursor = batch
        .checked_mul(row_bytes)
        .and_then(|n| n.checked_add(offset))
        .ok_or_else(|| too_big(name))?;
    Ok(Area {
        name: name.clone(),
        dtype,
        row_shape: layout.row_shape.clone(),
        form,
        offset,
        row_bytes,
        arena: 0,
        arena_bytes,
    })
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
