//! The batch layout, held once: where each input lies in a batch (a feeder slot, a trainer's or a script's
//! spill window), the bytes of a row, a batch and a slot, and the size checks that turn an overflow into an
//! input error. Pure arithmetic: nothing here touches memory or TensorFlow, so it tests without either.
//!
//! Each input has an *area* of `[batch_size, row...]` entries, 64-byte aligned ([`ALIGNMENT`]), so that
//! TensorFlow aliases it instead of copying:
//! * fixed-width dtypes hold their values there;
//! * strings hold an (offset, length) pair of `u32` per element, pointing into the input's *arena*;
//! * ragged inputs (rank 2, inner size unknown) hold an (offset, count) pair per row into the arena.
//!
//! A batch is laid out in two passes by one [`Cursor`]: every area, one after another ([`Cursor::area`]),
//! then every arena ([`Cursor::arenas`]). Arenas go after all areas so that the areas stay where a batch
//! of fixed-width inputs alone has them.
//!
//! The JVM computes no offset of its own: it writes by the [`FeederLayout`] built here
//! ([`feeder_layout`]), with the stride and slot count its owner fills in.

use spindle_proto::spindle::{FeederLayout, InputLayout};

use crate::error::{Error, Result};
use crate::tf::DataType;
pub(crate) use crate::tf::ALIGNMENT;

/// Bytes of one (offset, length) or (offset, count) pair of `u32` in an area.
const PAIR: usize = 8;

/// How one input's values lie in its area.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Form {
    /// The values themselves.
    Dense,
    /// An (offset, length) pair per element into the arena.
    Strings,
    /// An (offset, count) pair per row into the arena; rows are padded with this element.
    Ragged(Vec<u8>),
}

/// Where one input (or one tf.Example feature) lies in a batch: its area of `row_bytes` per row starts
/// `offset` bytes into the batch, its arena (strings and ragged rows only) of `arena_bytes` at `arena`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Area {
    /// The input's (or feature's) name, for errors.
    pub(crate) name: String,
    /// The dtype of its values.
    pub(crate) dtype: DataType,
    /// Its row shape as the JVM gave it (`[-1]` for a ragged input).
    pub(crate) row_shape: Vec<i64>,
    /// What its area holds.
    pub(crate) form: Form,
    /// Where its area starts in the batch (a multiple of [`ALIGNMENT`]).
    pub(crate) offset: usize,
    /// Bytes of one row in its area.
    pub(crate) row_bytes: usize,
    /// Where its arena starts in the batch (a multiple of [`ALIGNMENT`]); 0 without one.
    pub(crate) arena: usize,
    /// Bytes of its arena; 0 without one.
    pub(crate) arena_bytes: usize,
}

/// Lays out a batch of `rows` rows: each array or arena placed after the last, 64-byte aligned.
#[derive(Debug)]
pub(crate) struct Cursor {
    rows: usize,
    end: usize,
}

impl Cursor {
    /// An empty batch of `rows` rows.
    pub(crate) fn new(rows: usize) -> Cursor {
        Cursor { rows, end: 0 }
    }

    /// The bytes of the batch laid out so far (the last array's end, not rounded up).
    pub(crate) fn bytes(&self) -> usize {
        self.end
    }

    /// Places an array of `rows x row_bytes` bytes after the last one; returns its offset. `name` names
    /// the input in the overflow error.
    pub(crate) fn array(&mut self, name: &str, row_bytes: usize) -> Result<usize> {
        let bytes = self
            .rows
            .checked_mul(row_bytes)
            .ok_or_else(|| too_big(name))?;
        self.place(name, bytes)
    }

    /// Places `bytes` bytes after the last array; returns their offset.
    fn place(&mut self, name: &str, bytes: usize) -> Result<usize> {
        let offset = align(self.end).ok_or_else(|| too_big(name))?;
        self.end = offset.checked_add(bytes).ok_or_else(|| too_big(name))?;
        Ok(offset)
    }

    /// Places the area of the input `layout` describes, whose values are of `dtype` (already checked
    /// against what it feeds): its form, its row bytes, and its arena's size, placed by [`Self::arenas`].
    pub(crate) fn area(&mut self, layout: &InputLayout, dtype: DataType) -> Result<Area> {
        let name = &layout.name;
        let ragged = layout.row_shape == [-1];
        let form = match (dtype, ragged) {
            (DataType::String, false) => Form::Strings,
            (DataType::String, true) => {
                return Err(Error::Input(format!(
                    "input '{name}': strings of a ragged length per row are not supported; give every row the \
                     same number of strings"
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
        let arena_bytes = match form {
            Form::Dense => 0,
            // The pairs address the arena with `u32` offsets.
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
        let row_bytes = match form {
            Form::Dense => row_bytes(name, dtype.size(), &layout.row_shape)?,
            Form::Strings => row_bytes(name, PAIR, &layout.row_shape)?,
            // One pair per row, however long the row.
            Form::Ragged(_) => PAIR,
        };
        let offset = self.array(name, row_bytes)?;
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

    /// Places the arena of every area that has one, after every area (call once, after the last
    /// [`Self::area`]).
    pub(crate) fn arenas<'a>(
        &mut self,
        areas: impl IntoIterator<Item = &'a mut Area>,
    ) -> Result<()> {
        for area in areas.into_iter().filter(|a| a.arena_bytes > 0) {
            area.arena = self.place(&area.name, area.arena_bytes)?;
        }
        Ok(())
    }
}

/// Bytes of one row of `entry`-byte entries in `row_shape` (empty: one entry); a negative dimension or
/// a product that overflows is the too-big error naming `name`.
pub(crate) fn row_bytes(name: &str, entry: usize, row_shape: &[i64]) -> Result<usize> {
    row_shape
        .iter()
        .try_fold(entry, |n, d| {
            usize::try_from(*d).ok().and_then(|d| n.checked_mul(d))
        })
        .ok_or_else(|| too_big(name))
}

/// `n` rounded up to [`ALIGNMENT`]: where an array may start so that TensorFlow uses it in place; `None`
/// when that overflows.
pub(crate) fn align(n: usize) -> Option<usize> {
    n.checked_next_multiple_of(ALIGNMENT)
}

/// Bytes from one slot to the next: a batch of `batch_bytes` rounded up to a whole `unit` (a multiple of
/// [`ALIGNMENT`]: 64 bytes in a feeder's region, a page in a spill file, whose windows are mapped at page
/// offsets). An empty batch still takes one unit, so that no two slots share an address.
pub(crate) fn stride(batch_bytes: usize, unit: usize) -> Result<usize> {
    debug_assert!(unit > 0 && unit.is_multiple_of(ALIGNMENT));
    batch_bytes
        .max(1)
        .checked_next_multiple_of(unit)
        .ok_or_else(|| too_big("slots"))
}

/// Where slot `index` starts, `index` strides into its region (with `index` the slot count: the region's
/// bytes); `what` names the region in the overflow error.
pub(crate) fn slot_offset(index: usize, stride: usize, what: &str) -> Result<usize> {
    index.checked_mul(stride).ok_or_else(|| too_big(what))
}

/// The layout the JVM writes by, over `areas` in the order it writes them; the caller fills in the
/// address, the stride and the slot count.
pub(crate) fn feeder_layout<'a>(areas: impl Iterator<Item = &'a Area> + Clone) -> FeederLayout {
    FeederLayout {
        input_offsets: areas.clone().map(|a| a.offset as i64).collect(),
        row_bytes: areas.clone().map(|a| a.row_bytes as i64).collect(),
        arena_offsets: areas.map(|a| a.arena as i64).collect(),
        ..Default::default()
    }
}

/// The error for a batch, slot ring or spill offset whose size overflows `usize`; `what` names it.
pub(crate) fn too_big(what: &str) -> Error {
    Error::Input(format!(
        "slot size overflows for '{what}': lower batch_size, num_slots or the row shape"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every dtype with the bytes of one value in an area.
    const DENSE: [(DataType, usize); 13] = [
        (DataType::Float32, 4),
        (DataType::Float64, 8),
        (DataType::Int32, 4),
        (DataType::Int64, 8),
        (DataType::Bool, 1),
        (DataType::UInt8, 1),
        (DataType::Int8, 1),
        (DataType::Int16, 2),
        (DataType::UInt16, 2),
        (DataType::UInt32, 4),
        (DataType::UInt64, 8),
        (DataType::Float16, 2),
        (DataType::BFloat16, 2),
    ];

    fn input(name: &str, row_shape: &[i64]) -> InputLayout {
        InputLayout {
            name: name.into(),
            row_shape: row_shape.to_vec(),
            ..Default::default()
        }
    }

    fn with_arena(name: &str, row_shape: &[i64], arena_bytes: i64, pad: &[u8]) -> InputLayout {
        InputLayout {
            arena_bytes,
            pad: pad.to_vec(),
            ..input(name, row_shape)
        }
    }

    fn is_too_big(e: Error, name: &str) -> bool {
        matches!(&e, Error::Input(m) if m.contains("overflows") && m.contains(&format!("'{name}'")))
    }

    #[test]
    fn align_rounds_up_to_64_bytes() {
        assert_eq!(ALIGNMENT, 64);
        let cases = [(0, 0), (1, 64), (63, 64), (64, 64), (65, 128), (1000, 1024)];
        for (n, want) in cases {
            assert_eq!(align(n), Some(want), "{n}");
        }
        assert_eq!(align(usize::MAX - 62), None);
    }

    #[test]
    fn row_bytes_multiply_the_row_shape() {
        for (dtype, size) in DENSE {
            assert_eq!(dtype.size(), size, "{dtype:?}");
            assert_eq!(row_bytes("x", size, &[]).unwrap(), size);
            assert_eq!(row_bytes("x", size, &[3]).unwrap(), 3 * size);
            assert_eq!(row_bytes("x", size, &[28, 28, 3]).unwrap(), 2352 * size);
        }
        assert_eq!(row_bytes("x", 4, &[0]).unwrap(), 0);
    }

    #[test]
    fn row_bytes_refuse_negative_and_overflowing_shapes() {
        assert!(is_too_big(row_bytes("x", 4, &[-2]).unwrap_err(), "x"));
        assert!(is_too_big(
            row_bytes("big", 8, &[1 << 31, 1 << 31, 1 << 2]).unwrap_err(),
            "big"
        ));
    }

    #[test]
    fn dense_areas_are_aligned_one_after_another() {
        let mut cursor = Cursor::new(4);
        let x = cursor.area(&input("x", &[3]), DataType::Float32).unwrap();
        let y = cursor.area(&input("y", &[]), DataType::Int64).unwrap();
        assert_eq!(
            (x.offset, x.row_bytes, x.form.clone()),
            (0, 12, Form::Dense)
        );
        assert_eq!((y.offset, y.row_bytes), (64, 8));
        assert_eq!(cursor.bytes(), 64 + 4 * 8);
        let layout = feeder_layout([&x, &y].into_iter());
        assert_eq!(layout.input_offsets, vec![0, 64]);
        assert_eq!(layout.row_bytes, vec![12, 8]);
        assert_eq!(layout.arena_offsets, vec![0, 0]);
    }

    #[test]
    fn every_dtype_and_shape_lays_out_without_overlap() {
        let shapes: [&[i64]; 5] = [&[], &[1], &[3], &[7, 5], &[2, 3, 4]];
        for batch in [1, 3, 64, 1000] {
            let mut cursor = Cursor::new(batch);
            let mut areas = Vec::new();
            for (i, (dtype, size)) in DENSE.iter().enumerate() {
                for (j, shape) in shapes.iter().enumerate() {
                    let area = cursor
                        .area(&input(&format!("in{i}_{j}"), shape), *dtype)
                        .unwrap();
                    let per_row: i64 = shape.iter().product();
                    assert_eq!(area.row_bytes, size * per_row as usize);
                    areas.push(area);
                }
            }
            let mut end = 0;
            for a in &areas {
                assert_eq!(a.offset % ALIGNMENT, 0, "{}", a.name);
                assert!(a.offset >= end && a.offset < end + ALIGNMENT, "{}", a.name);
                end = a.offset + batch * a.row_bytes;
            }
            assert_eq!(cursor.bytes(), end);
        }
    }

    #[test]
    fn arenas_follow_every_area() {
        let mut cursor = Cursor::new(2);
        let mut areas = vec![
            cursor
                .area(&with_arena("s", &[2], 100, &[]), DataType::String)
                .unwrap(),
            cursor
                .area(&with_arena("r", &[-1], 50, &[0; 4]), DataType::Float32)
                .unwrap(),
            cursor.area(&input("d", &[]), DataType::Int8).unwrap(),
        ];
        // Strings: a pair per element; ragged: a pair per row.
        assert_eq!((areas[0].offset, areas[0].row_bytes), (0, 16));
        assert_eq!((areas[1].offset, areas[1].row_bytes), (64, 8));
        assert_eq!(areas[1].form, Form::Ragged(vec![0; 4]));
        assert_eq!((areas[2].offset, areas[2].row_bytes), (128, 1));
        cursor.arenas(&mut areas).unwrap();
        assert_eq!((areas[0].arena, areas[0].arena_bytes), (192, 100));
        assert_eq!((areas[1].arena, areas[1].arena_bytes), (320, 50));
        assert_eq!((areas[2].arena, areas[2].arena_bytes), (0, 0));
        assert_eq!(cursor.bytes(), 370);
        let layout = feeder_layout(areas.iter());
        assert_eq!(layout.arena_offsets, vec![192, 320, 0]);
    }

    #[test]
    fn arenas_need_a_size_a_u32_offset_reaches() {
        for bytes in [0, -1, u32::MAX as i64 + 1] {
            let e = Cursor::new(1)
                .area(&with_arena("s", &[], bytes, &[]), DataType::String)
                .unwrap_err()
                .to_string();
            assert!(e.contains("'s'") && e.contains("arena_bytes"), "{e}");
        }
        let area = Cursor::new(1)
            .area(
                &with_arena("s", &[], u32::MAX as i64, &[]),
                DataType::String,
            )
            .unwrap();
        assert_eq!(area.arena_bytes, u32::MAX as usize);
    }

    #[test]
    fn ragged_inputs_need_a_pad_of_their_dtype_and_no_strings() {
        let e = Cursor::new(1)
            .area(&with_arena("r", &[-1], 8, &[0; 2]), DataType::Int64)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("pad element") && e.contains("8 bytes, got 2"),
            "{e}"
        );
        let e = Cursor::new(1)
            .area(&with_arena("s", &[-1], 8, &[]), DataType::String)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ragged"), "{e}");
    }

    #[test]
    fn batches_that_overflow_are_input_errors() {
        let e = Cursor::new(usize::MAX / 2)
            .area(&input("wide", &[4]), DataType::Float32)
            .unwrap_err();
        assert!(is_too_big(e, "wide"));
        let mut cursor = Cursor::new(usize::MAX / 8);
        cursor.area(&input("a", &[]), DataType::Int64).unwrap();
        assert!(is_too_big(
            cursor.area(&input("b", &[]), DataType::Int64).unwrap_err(),
            "b"
        ));
        let mut cursor = Cursor::new(1);
        let mut areas = vec![cursor
            .area(&with_arena("s", &[], 10, &[]), DataType::String)
            .unwrap()];
        cursor.end = usize::MAX - 8;
        assert!(is_too_big(cursor.arenas(&mut areas).unwrap_err(), "s"));
    }

    #[test]
    fn strides_round_a_batch_up_to_whole_units() {
        assert_eq!(stride(0, ALIGNMENT).unwrap(), 64);
        assert_eq!(stride(96, ALIGNMENT).unwrap(), 128);
        assert_eq!(stride(128, ALIGNMENT).unwrap(), 128);
        assert_eq!(stride(1, 4096).unwrap(), 4096);
        assert_eq!(stride(4097, 4096).unwrap(), 8192);
        assert!(is_too_big(stride(usize::MAX, 4096).unwrap_err(), "slots"));
    }

    #[test]
    fn slot_offsets_are_strides_in() {
        assert_eq!(slot_offset(0, 128, "slots").unwrap(), 0);
        assert_eq!(slot_offset(3, 128, "slots").unwrap(), 384);
        assert!(is_too_big(
            slot_offset(usize::MAX / 64, 128, "spill").unwrap_err(),
            "spill"
        ));
    }
}
