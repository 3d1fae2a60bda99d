//! Inputs whose values do not fit a fixed slot array: strings, ragged rows, tf.Examples built per row,
//! and string outputs, written into a slot as the JVM writes them and run on the real strings_model.

mod common;

use std::sync::Arc;

use common::{input, load};
use spindle_proto::spindle::{BatchOutputs, DType, FeederConfig, InputLayout};
use spindle_runtime::Feeder;

/// Writes one slot's entries and arena for one input: per entry, the (offset, length) pair of its bytes
/// (strings) or of its values (ragged rows, `unit` bytes per value).
struct Writer {
    entries: *mut u32,
    arena: *mut u8,
    used: usize,
    count: usize,
}

impl Writer {
    fn new(feeder: &Feeder, input: usize) -> Writer {
        Writer {
            entries: feeder.input_ptr(0, input) as *mut u32,
            arena: feeder.arena_ptr(0, input),
            used: 0,
            count: 0,
        }
    }

    fn put(&mut self, bytes: &[u8], unit: usize) {
        // SAFETY: the tests size every arena above what they write; entries lie in the input's area.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.arena.add(self.used), bytes.len());
            *self.entries.add(2 * self.count) = self.used as u32;
            *self.entries.add(2 * self.count + 1) = (bytes.len() / unit) as u32;
        }
        self.used += bytes.len();
        self.count += 1;
    }
}

fn arena(name: &str, dtype: DType, row_shape: &[i64], bytes: i64) -> InputLayout {
    InputLayout {
        arena_bytes: bytes,
        ..input(name, dtype, row_shape)
    }
}

fn config(signature: &str, inputs: Vec<InputLayout>, rows: i32) -> FeederConfig {
    FeederConfig {
        signature: signature.into(),
        inputs,
        batch_size: rows,
        num_slots: 1,
        label: "test".into(),
        ..Default::default()
    }
}

/// Output `name`'s values, read as `T`.
fn values<T: Copy>(out: &BatchOutputs, name: &str) -> Vec<T> {
    let o = out.outputs.iter().find(|o| o.name == name).expect(name);
    let n = o.shape.iter().product::<i64>() as usize;
    // SAFETY: the output is valid until release_slot and holds n values.
    unsafe { std::slice::from_raw_parts(o.address as *const T, n).to_vec() }
}

/// String output `name`'s elements, read through their (address, length) pairs.
fn strings(out: &BatchOutputs, name: &str) -> Vec<Vec<u8>> {
    values::<[u64; 2]>(out, name)
        .iter()
        // SAFETY: each pair points into the output tensor, valid until release_slot.
        .map(|[at, len]| unsafe {
            std::slice::from_raw_parts(*at as *const u8, *len as usize).to_vec()
        })
        .collect()
}

fn first_non_utf8(out: &BatchOutputs, name: &str) -> i64 {
    out.outputs
        .iter()
        .find(|o| o.name == name)
        .unwrap()
        .first_non_utf8
}

#[test]
fn strings_go_in_as_one_tensor_and_come_back_in_place() {
    let model = load("strings_model");
    let layout = vec![arena("pair", DType::String, &[2], 256)];
    let feeder = Feeder::open(Arc::clone(&model), &config("pairs", layout, 3), 1).expect("opens");
    let mut w = Writer::new(&feeder, 0);
    for s in [
        "ab",
        "c",
        "",
        "long string past the inline size",
        "été",
        "x",
    ] {
        w.put(s.as_bytes(), 1);
    }
    feeder.submit(0, 3).expect("submit");
    let out = feeder.await_slot(0).expect("runs");
    let text = |v: Vec<Vec<u8>>| -> Vec<String> {
        v.into_iter()
            .map(|b| String::from_utf8(b).unwrap())
            .collect()
    };
    assert_eq!(
        text(strings(&out, "joined")),
        ["ab+c", "+long string past the inline size", "été+x"]
    );
    assert_eq!(
        text(strings(&out, "upper")),
        [
            "AB",
            "C",
            "",
            "LONG STRING PAST THE INLINE SIZE",
            "éTé",
            "X"
        ]
    );
    assert_eq!(first_non_utf8(&out, "joined"), -1);
    // The first byte of "été" is half of a two-byte character.
    assert_eq!(
        strings(&out, "first_byte"),
        [b"a".to_vec(), vec![], vec![0xC3]]
    );
    assert_eq!(first_non_utf8(&out, "first_byte"), 2);
    feeder.release_slot(0).expect("release");
}

#[test]
fn ragged_rows_are_padded_to_the_longest_of_their_batch() {
    let model = load("strings_model");
    let ragged = |name: &str, dtype: DType, pad: Vec<u8>| InputLayout {
        pad,
        ..arena(name, dtype, &[-1], 1024)
    };
    let layout = vec![
        ragged("ids", DType::Int64, 0i64.to_le_bytes().to_vec()),
        ragged("weights", DType::Float32, 0.5f32.to_le_bytes().to_vec()),
    ];
    let feeder = Feeder::open(Arc::clone(&model), &config("ragged", layout, 4), 1).expect("opens");
    let ids: [&[i64]; 3] = [&[1, 2, 3], &[], &[7]];
    let weights: [&[f32]; 3] = [&[1.0], &[2.0, 2.0], &[]];
    let (mut wi, mut ww) = (Writer::new(&feeder, 0), Writer::new(&feeder, 1));
    for (i, w) in ids.iter().zip(weights) {
        wi.put(
            &i.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>(),
            8,
        );
        ww.put(
            &w.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>(),
            4,
        );
    }
    feeder.submit(0, 3).expect("submit");
    let out = feeder.await_slot(0).expect("runs");
    assert_eq!(values::<i64>(&out, "ids_sum"), [6, 0, 7]);
    assert_eq!(values::<i64>(&out, "nonzero"), [3, 0, 1]);
    // Weights pad with 0.5 to a width of 2: [1, .5], [2, 2], [.5, .5].
    assert_eq!(values::<f32>(&out, "weights_sum"), [1.5, 4.0, 1.0]);
    assert_eq!(values::<i32>(&out, "width"), [3, 3, 3]);
    feeder.release_slot(0).expect("release");

    // Rows of one length, one after another, are fed as they lie.
    let (mut wi, mut ww) = (Writer::new(&feeder, 0), Writer::new(&feeder, 1));
    for r in 0..2i64 {
        wi.put(
            &[r, 10 * r]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<_>>(),
            8,
        );
        ww.put(&1.0f32.to_le_bytes(), 4);
    }
    feeder.submit(0, 2).expect("submit");
    let out = feeder.await_slot(0).expect("runs");
    assert_eq!(values::<i64>(&out, "ids_sum"), [0, 11]);
    assert_eq!(values::<i32>(&out, "width"), [2, 2]);
    feeder.release_slot(0).expect("release");
}

#[test]
fn examples_are_built_per_row_from_their_features() {
    let model = load("strings_model");
    let features = vec![
        input("x", DType::Float32, &[2]),
        input("n", DType::Int64, &[]),
        arena("tag", DType::String, &[], 64),
        InputLayout {
            pad: 0i64.to_le_bytes().to_vec(),
            ..arena("ids", DType::Int64, &[-1], 256)
        },
    ];
    let layout = vec![InputLayout {
        example_features: features,
        ..input("examples", DType::String, &[])
    }];
    let feeder =
        Feeder::open(Arc::clone(&model), &config("examples", layout, 2), 1).expect("opens");
    // SAFETY: the slot is free; x is [2, 2] float32 and n [2] int64.
    unsafe {
        let x = feeder.input_ptr(0, 0) as *mut f32;
        for (i, v) in [1.0f32, 2.0, 0.25, -1.0].iter().enumerate() {
            *x.add(i) = *v;
        }
        let n = feeder.input_ptr(0, 1) as *mut i64;
        *n = 5;
        *n.add(1) = -3;
    }
    let (mut tags, mut ids) = (Writer::new(&feeder, 2), Writer::new(&feeder, 3));
    tags.put(b"cat", 1);
    tags.put("é".as_bytes(), 1);
    ids.put(
        &[4i64, 5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>(),
        8,
    );
    ids.put(&[], 8);
    feeder.submit(0, 2).expect("submit");
    let out = feeder.await_slot(0).expect("runs");
    assert_eq!(values::<f32>(&out, "x_sum"), [3.0, -0.75]);
    assert_eq!(values::<i64>(&out, "n"), [5, -3]);
    assert_eq!(values::<i64>(&out, "ids_sum"), [9, 0]);
    assert_eq!(
        strings(&out, "tag"),
        [b"cat".to_vec(), "é".as_bytes().to_vec()]
    );
    feeder.release_slot(0).expect("release");
}

#[test]
fn arenas_and_examples_are_checked_when_the_feeder_opens() {
    let model = load("strings_model");
    let open = |sig: &str, layout: Vec<InputLayout>| {
        Feeder::open(Arc::clone(&model), &config(sig, layout, 2), 1)
            .err()
            .expect("refused")
            .to_string()
    };
    let no_arena = open("pairs", vec![input("pair", DType::String, &[2])]);
    assert!(
        no_arena.contains("input 'pair': arena_bytes 0"),
        "{no_arena}"
    );
    let bad_pad = open(
        "ragged",
        vec![
            InputLayout {
                pad: vec![0; 3],
                ..arena("ids", DType::Int64, &[-1], 64)
            },
            arena("weights", DType::Float32, &[-1], 64),
        ],
    );
    assert!(
        bad_pad.contains("a pad element of Int64 is 8 bytes, got 3"),
        "{bad_pad}"
    );
    let bad_feature = open(
        "examples",
        vec![InputLayout {
            example_features: vec![input("x", DType::Float64, &[2])],
            ..input("examples", DType::String, &[])
        }],
    );
    assert!(
        bad_feature.contains(
            "feature 'x' of input 'examples': a tf.Example holds float32, int64 or string"
        ),
        "{bad_feature}"
    );
}

#[test]
fn entries_outside_their_arena_fail_the_batch_not_the_process() {
    let model = load("strings_model");
    let layout = vec![arena("pair", DType::String, &[2], 16)];
    let feeder = Feeder::open(Arc::clone(&model), &config("pairs", layout, 1), 1).expect("opens");
    let mut w = Writer::new(&feeder, 0);
    w.put(b"ok", 1);
    // SAFETY: entry 1 lies in the area; it claims 100 bytes of a 16-byte arena.
    unsafe {
        let e = feeder.input_ptr(0, 0) as *mut u32;
        *e.add(2) = 8;
        *e.add(3) = 100;
    }
    feeder.submit(0, 1).expect("submit");
    let err = feeder.await_slot(0).expect_err("refused").to_string();
    assert!(
        err.contains("input 'pair': entry 1 points outside its arena of 16 bytes"),
        "{err}"
    );
}
