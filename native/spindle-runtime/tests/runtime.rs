//! The runtime against real TensorFlow and the checked-in SavedModels in tests/fixtures.

mod common;

use std::sync::{Arc, Barrier};

use common::{input, load};
use spindle_proto::spindle::{DType, FeederConfig, ModelConfig};
use spindle_runtime::tf::{AliasGuard, DataType, Tensor, ALIGNMENT};
use spindle_runtime::{Error, Feeder, Model};

fn dtypes_config(batch: i32, slots: i32) -> FeederConfig {
    FeederConfig {
        signature: "serving_default".into(),
        inputs: vec![
            input("x_f32", DType::Float32, &[4]),
            input("x_f64", DType::Float64, &[3]),
            input("x_i32", DType::Int32, &[]),
            input("x_i64", DType::Int64, &[2]),
        ],
        outputs: vec![],
        batch_size: batch,
        num_slots: slots,
        label: "test".into(),
    }
}

/// Writes `rows` rows starting at value `first` into a slot of a dtypes_model feeder.
fn fill(feeder: &Feeder, slot: usize, first: i64, rows: usize) {
    for r in 0..rows {
        let i = first + r as i64;
        // SAFETY: rows < batch_size and every array lies inside the slot; the slot is free.
        unsafe {
            let f32s = feeder.input_ptr(slot, 0) as *mut f32;
            for j in 0..4 {
                *f32s.add(r * 4 + j) = i as f32 + j as f32 * 0.5;
            }
            let f64s = feeder.input_ptr(slot, 1) as *mut f64;
            for j in 0..3 {
                *f64s.add(r * 3 + j) = i as f64 + j as f64;
            }
            *(feeder.input_ptr(slot, 2) as *mut i32).add(r) = i as i32;
            let i64s = feeder.input_ptr(slot, 3) as *mut i64;
            *i64s.add(r * 2) = i;
            *i64s.add(r * 2 + 1) = -i;
        }
    }
}

/// Checks a dtypes_model batch: outputs sorted by name are y_f32, y_f64, y_i32, y_i64.
fn check(feeder: &Feeder, slot: i32, first: i64, rows: usize) {
    let out = feeder.await_slot(slot).expect("run succeeds");
    let names: Vec<&str> = out.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["y_f32", "y_f64", "y_i32", "y_i64"]);
    assert_eq!(out.outputs[0].shape, [rows as i64, 4]);
    assert_eq!(out.outputs[1].shape, [rows as i64]);
    // SAFETY: addresses stay valid until release_slot, and hold `rows` rows of the reported shape.
    unsafe {
        for r in 0..rows {
            let i = first + r as i64;
            let y_f32 = out.outputs[0].address as *const f32;
            for j in 0..4 {
                assert_eq!(*y_f32.add(r * 4 + j), (i as f32 + j as f32 * 0.5) * 2.0);
            }
            assert_eq!(
                *(out.outputs[1].address as *const f64).add(r),
                3.0 * i as f64 + 3.0
            );
            assert_eq!(*(out.outputs[2].address as *const i32).add(r), i as i32 + 1);
            let y_i64 = out.outputs[3].address as *const i64;
            assert_eq!((*y_i64.add(r * 2), *y_i64.add(r * 2 + 1)), (3 * i, -3 * i));
        }
    }
    feeder.release_slot(slot).expect("release");
}

#[test]
fn describes_signatures_sorted_with_dtypes_and_shapes() {
    let model = load("dtypes_model");
    let names: Vec<&str> = model
        .info()
        .signatures
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert!(names.contains(&"serving_default") && names.contains(&"double_only"));
    let sig = model.signature("serving_default").unwrap();
    let inputs: Vec<(&str, i32, &[i64])> = sig
        .inputs
        .iter()
        .map(|s| (s.name.as_str(), s.dtype, s.shape.as_slice()))
        .collect();
    assert_eq!(
        inputs,
        [
            ("x_f32", DType::Float32 as i32, &[-1, 4][..]),
            ("x_f64", DType::Float64 as i32, &[-1, 3][..]),
            ("x_i32", DType::Int32 as i32, &[-1][..]),
            ("x_i64", DType::Int64 as i32, &[-1, 2][..]),
        ]
    );
    let trainable = load("digits_mlp_init");
    for s in [
        "train",
        "gradients",
        "apply_gradients",
        "predict",
        "serving_default",
    ] {
        trainable.signature(s).unwrap();
    }
    assert!(trainable
        .saver_def()
        .is_some_and(|s| !s.restore_op_name.is_empty()));
}

#[test]
fn every_dtype_round_trips_through_two_slots_with_partial_batches() {
    let model = load("dtypes_model");
    let feeder = Feeder::open(model, &dtypes_config(8, 2), 1).unwrap();
    let layout = feeder.layout();
    assert!(layout
        .input_offsets
        .iter()
        .all(|o| (*o as usize).is_multiple_of(ALIGNMENT)));
    assert!((layout.slot_stride as usize).is_multiple_of(ALIGNMENT));
    // 10 batches through 2 slots: fill both, then refill each as soon as it is released.
    let sizes = [8usize, 8, 3, 8, 1, 8, 8, 5, 8, 2];
    let mut first = 0i64;
    let mut pending = std::collections::VecDeque::new();
    for (n, rows) in sizes.iter().enumerate() {
        let slot = n % 2;
        if pending.len() == 2 {
            let (s, f, r) = pending.pop_front().unwrap();
            check(&feeder, s, f, r);
        }
        fill(&feeder, slot, first, *rows);
        feeder.submit(slot as i32, *rows as i32).unwrap();
        pending.push_back((slot as i32, first, *rows));
        first += *rows as i64;
    }
    for (s, f, r) in pending {
        check(&feeder, s, f, r);
    }
}

#[test]
fn external_tensors_alias_aligned_memory_and_release_it_once() {
    let guard = Arc::new(AliasGuard::default());
    let mut buffer = vec![0u8; 4 * 16 + ALIGNMENT];
    let aligned = buffer
        .as_mut_ptr()
        .wrapping_add(buffer.as_ptr().align_offset(ALIGNMENT));
    // SAFETY: 64 bytes inside `buffer`, which outlives the tensor.
    let t =
        unsafe { Tensor::from_external(DataType::Float32, &[4, 4], aligned, 64, &guard) }.unwrap();
    assert_eq!(
        t.data(),
        aligned,
        "TensorFlow must use the slot memory in place"
    );
    assert_eq!(guard.live(), 1);
    drop(t);
    assert_eq!(guard.live(), 0);
    // Misaligned memory is copied by TensorFlow, which is why slots are 64-byte aligned.
    let odd = aligned.wrapping_add(4);
    // SAFETY: as above, 64 bytes inside `buffer`.
    let t = unsafe { Tensor::from_external(DataType::Float32, &[4, 4], odd, 64, &guard) }.unwrap();
    assert_ne!(t.data(), odd);
    drop(t);
    assert_eq!(guard.live(), 0);
}

/// End to end through the feeder: TensorFlow hands back the fed tensor itself for an identity signature,
/// so the output's address is the slot's own memory. Had TensorFlow copied the input, it would differ.
#[test]
fn feeder_inputs_are_not_copied() {
    let model = load("dtypes_model");
    let config = FeederConfig {
        signature: "identity".into(),
        inputs: vec![input("x_f32", DType::Float32, &[4])],
        batch_size: 4,
        num_slots: 2,
        ..Default::default()
    };
    let feeder = Feeder::open(model, &config, 2).unwrap();
    let layout = feeder.layout();
    assert!(
        (layout.base_address as usize).is_multiple_of(4096),
        "slots start page aligned"
    );
    for slot in 0..2 {
        let p = feeder.input_ptr(slot, 0) as *mut f32;
        // SAFETY: 3 rows of 4 floats inside the free slot.
        unsafe { (0..12).for_each(|i| *p.add(i) = i as f32) };
        feeder.submit(slot as i32, 3).unwrap();
        let out = feeder.await_slot(slot as i32).unwrap();
        assert_eq!(
            out.outputs[0].address, p as i64,
            "output aliases slot {slot}"
        );
        assert_eq!(out.outputs[0].shape, [3, 4]);
        // Releasing drops the output, TensorFlow's last reference to the slot, and only then frees it.
        feeder.release_slot(slot as i32).unwrap();
        feeder.submit(slot as i32, 1).unwrap();
        feeder.release_slot(slot as i32).unwrap();
    }
}

fn open_err(config: FeederConfig) -> Error {
    match Feeder::open(load("dtypes_model"), &config, 3) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn bad_feeder_configs_name_the_cause() {
    let mut c = dtypes_config(4, 2);
    c.inputs[0].dtype = DType::Float64 as i32;
    let e = open_err(c);
    assert!(
        matches!(&e, Error::Input(m) if m.contains("x_f32") && m.contains("float32") && m.contains("float64")),
        "{e}"
    );

    let mut c = dtypes_config(4, 2);
    c.inputs[0].row_shape = vec![5];
    let e = open_err(c);
    assert!(
        matches!(&e, Error::Input(m) if m.contains("x_f32") && m.contains("[?, 4]") && m.contains("[5]")),
        "{e}"
    );

    let mut c = dtypes_config(4, 2);
    c.inputs.pop();
    assert!(matches!(open_err(c), Error::Input(m) if m.contains("x_i64") && m.contains("not fed")));

    let mut c = dtypes_config(4, 2);
    c.signature = "nope".into();
    assert!(
        matches!(open_err(c), Error::Model(m) if m.contains("'nope'") && m.contains("double_only"))
    );

    let mut c = dtypes_config(4, 2);
    c.outputs = vec!["y_zzz".into()];
    assert!(matches!(open_err(c), Error::Model(m) if m.contains("y_zzz")));

    assert!(matches!(open_err(dtypes_config(0, 2)), Error::Input(_)));
}

#[test]
fn bad_slot_use_is_an_input_error() {
    let feeder = Feeder::open(load("dtypes_model"), &dtypes_config(4, 2), 4).unwrap();
    assert!(matches!(feeder.submit(2, 1), Err(Error::Input(_))));
    assert!(matches!(feeder.submit(0, 5), Err(Error::Input(_))));
    assert!(matches!(feeder.await_slot(1), Err(Error::Input(m)) if m.contains("not submitted")));
    fill(&feeder, 0, 0, 1);
    feeder.submit(0, 1).unwrap();
    assert!(matches!(feeder.submit(0, 1), Err(Error::Input(m)) if m.contains("busy")));
    check(&feeder, 0, 0, 1);
    feeder.release_slot(1).unwrap(); // a free slot: no-op
}

#[test]
fn missing_and_corrupt_models_are_model_errors_naming_the_path() {
    let missing = ModelConfig {
        path: "/no/such/model".into(),
        ..Default::default()
    };
    assert!(matches!(Model::load(&missing), Err(Error::Model(m)) if m.contains("/no/such/model")));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("saved_model.pb"), b"not a protobuf").unwrap();
    let corrupt = ModelConfig {
        path: dir.path().to_string_lossy().into_owned(),
        ..Default::default()
    };
    assert!(matches!(Model::load(&corrupt), Err(Error::Model(m)) if m.contains(&corrupt.path)));
}

/// A session bound to GPUs that this (CPU) libtensorflow cannot see fails to load, naming the task's GPU ids;
/// the same model without GPUs loads.
#[test]
fn a_session_bound_to_gpus_tensorflow_cannot_see_is_a_model_error_naming_them() {
    let config = ModelConfig {
        path: common::fixture("dtypes_model"),
        intra_op_threads: 1,
        inter_op_threads: 1,
        gpu_addresses: vec!["3".into(), "5".into()],
        ..Default::default()
    };
    match Model::load(&config) {
        Err(Error::Model(m)) => assert!(
            m.contains("the task holds GPU(s) 3,5") && m.contains("TensorFlow sees 0 GPU(s)"),
            "{m}"
        ),
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("loaded on GPUs 3,5 without any GPU"),
    }
    let cpu = ModelConfig {
        gpu_addresses: vec![],
        ..config
    };
    assert!(Model::load(&cpu).is_ok());
}

/// Four threads, each with its own feeder over one shared model: each gets its own rows back, and the
/// feeders keep the session alive after the other holder drops it. Whether runs overlap in time is left
/// to the scheduler here; the next test makes batches of two feeders pending at once for certain.
#[test]
fn feeders_on_one_shared_model_in_four_threads_get_their_own_outputs_and_outlive_other_holders() {
    let model = load("dtypes_model");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let model = Arc::clone(&model);
            std::thread::spawn(move || {
                let mut feeder = Feeder::open(model, &dtypes_config(16, 2), 10 + t).unwrap();
                for b in 0..20 {
                    let first = (t * 1000 + b * 16) as i64;
                    fill(&feeder, 0, first, 16);
                    feeder.submit(0, 16).unwrap();
                    check(&feeder, 0, first, 16);
                }
                feeder.close();
                feeder.close();
            })
        })
        .collect();
    drop(model); // the feeders keep the session alive
    for t in threads {
        t.join().unwrap();
    }
}

/// Two feeders over one shared model, in lockstep: both submit a batch, and neither awaits its own until
/// the other's is submitted too, so in every round both batches are pending on the one session at once.
/// Each must still get exactly its own rows back.
#[test]
fn batches_pending_at_once_on_two_feeders_of_one_model_each_get_their_own_outputs() {
    let model = load("dtypes_model");
    let both_submitted = Barrier::new(2);
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (model, both_submitted) = (Arc::clone(&model), &both_submitted);
            s.spawn(move || {
                let feeder = Feeder::open(model, &dtypes_config(16, 2), 20 + t).unwrap();
                for b in 0..50u64 {
                    let (slot, first) = ((b % 2) as usize, (t * 100_000 + b * 16) as i64);
                    fill(&feeder, slot, first, 16);
                    feeder.submit(slot as i32, 16).unwrap();
                    both_submitted.wait();
                    check(&feeder, slot as i32, first, 16);
                }
            });
        }
    });
}

/// The model contract: a Keras model exported by python/spindle/keras trains through the C API, and
/// `gradients` + `apply_gradients` match `train` bit for bit.
#[test]
fn exported_keras_model_trains_and_split_step_matches_train() {
    let (a, b) = (load("digits_mlp_init"), load("digits_mlp_init"));
    let rows = 32usize;
    let x: Vec<f32> = (0..rows * 64)
        .map(|i| ((i * 7919) % 17) as f32 / 16.0)
        .collect();
    let y: Vec<i64> = (0..rows).map(|r| (r % 10) as i64).collect();
    let run = |m: &Model, sig: &str, feeds: Vec<(&str, Tensor)>| -> Vec<(String, Tensor)> {
        let s = m.signature(sig).unwrap();
        let ports: Vec<_> = feeds
            .iter()
            .map(|(n, _)| {
                m.port(&s.inputs.iter().find(|i| i.name == *n).unwrap().tensor)
                    .unwrap()
            })
            .collect();
        let inputs: Vec<_> = ports
            .into_iter()
            .zip(feeds.iter().map(|(_, t)| t))
            .collect();
        let outs: Vec<_> = s
            .outputs
            .iter()
            .map(|o| m.port(&o.tensor).unwrap())
            .collect();
        let got = m.run(&inputs, &outs, sig).unwrap();
        s.outputs.iter().map(|o| o.name.clone()).zip(got).collect()
    };
    let batch = || {
        vec![
            (
                "features",
                Tensor::copy_from(DataType::Float32, &[rows as i64, 64], &x).unwrap(),
            ),
            (
                "labels",
                Tensor::copy_from(DataType::Int64, &[rows as i64], &y).unwrap(),
            ),
        ]
    };
    let mut losses = Vec::new();
    for _ in 0..60 {
        let out = run(&a, "train", batch());
        losses.push(out[0].1.to_vec::<f32>()[0]);
        let grads = run(&b, "gradients", batch());
        assert_eq!(grads[grads.len() - 1].0, "loss");
        assert_eq!(
            grads[grads.len() - 1].1.to_vec::<f32>(),
            [*losses.last().unwrap()]
        );
        let feeds: Vec<(&str, Tensor)> = grads
            .into_iter()
            .filter(|(n, _)| n != "loss")
            .map(|(n, t)| (leak(n), t))
            .collect();
        run(&b, "apply_gradients", feeds);
    }
    assert!(
        losses[59] < losses[0] * 0.5,
        "loss falls: {} -> {}",
        losses[0],
        losses[59]
    );
    let pa = run(&a, "predict", batch().into_iter().take(1).collect());
    let pb = run(&b, "predict", batch().into_iter().take(1).collect());
    let (va, vb) = (pa[0].1.to_vec::<u32>(), pb[0].1.to_vec::<u32>());
    assert_eq!(
        va, vb,
        "weights after split steps equal weights after train, bit for bit"
    );
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[test]
fn absurd_slot_sizes_are_input_errors_not_crashes() {
    let mut c = dtypes_config(i32::MAX, i32::MAX);
    c.inputs[0].row_shape = vec![4];
    assert!(matches!(open_err(c), Error::Input(_)));
}

#[test]
fn every_fixed_width_dtype_is_described_fed_in_place_and_read_back() {
    let model = load("widths_model");
    let sig = model.signature("serving_default").unwrap();
    let dtypes: Vec<(&str, i32)> = sig
        .inputs
        .iter()
        .map(|s| (s.name.as_str(), s.dtype))
        .collect();
    assert_eq!(
        dtypes,
        [
            ("x_bf16", DType::Bfloat16 as i32),
            ("x_bool", DType::Bool as i32),
            ("x_f16", DType::Float16 as i32),
            ("x_i16", DType::Int16 as i32),
            ("x_i8", DType::Int8 as i32),
            ("x_u16", DType::Uint16 as i32),
            ("x_u32", DType::Uint32 as i32),
            ("x_u64", DType::Uint64 as i32),
            ("x_u8", DType::Uint8 as i32),
        ]
    );
    let config = FeederConfig {
        signature: "serving_default".into(),
        inputs: sig
            .inputs
            .iter()
            .map(|s| input(&s.name, DType::try_from(s.dtype).unwrap(), &s.shape[1..]))
            .collect(),
        outputs: vec!["y_u8".into(), "y_bool".into(), "y_i16".into()],
        batch_size: 2,
        num_slots: 1,
        label: "test".into(),
    };
    let feeder = Feeder::open(Arc::clone(&model), &config, 1).expect("opens");
    // Every input is zeros but these: uint8 rows [255, 1, 2] and [3, 4, 5], bools [true, false], int16 [-7, 8].
    // SAFETY: the slot is free and every write lies inside its input's [2, ...] array.
    unsafe {
        for (i, s) in sig.inputs.iter().enumerate() {
            let bytes = feeder.layout().row_bytes[i] as usize * 2;
            std::ptr::write_bytes(feeder.input_ptr(0, i), 0, bytes);
            match s.name.as_str() {
                "x_u8" => std::ptr::copy_nonoverlapping(
                    [255u8, 1, 2, 3, 4, 5].as_ptr(),
                    feeder.input_ptr(0, i),
                    6,
                ),
                "x_bool" => *feeder.input_ptr(0, i) = 1,
                "x_i16" => {
                    let p = feeder.input_ptr(0, i) as *mut i16;
                    *p = -7;
                    *p.add(1) = 8;
                }
                _ => {}
            }
        }
    }
    feeder.submit(0, 2).expect("submit");
    let out = feeder.await_slot(0).expect("runs");
    let dtypes: Vec<i32> = out.outputs.iter().map(|o| o.dtype).collect();
    assert_eq!(
        dtypes,
        [DType::Uint8 as i32, DType::Bool as i32, DType::Int16 as i32]
    );
    // SAFETY: the outputs stay valid until release_slot; their shapes say how many values they hold.
    let (u8s, bools, i16s) = unsafe {
        (
            std::slice::from_raw_parts(out.outputs[0].address as *const u8, 6).to_vec(),
            std::slice::from_raw_parts(out.outputs[1].address as *const u8, 2).to_vec(),
            std::slice::from_raw_parts(out.outputs[2].address as *const i16, 4).to_vec(),
        )
    };
    // The model adds 1 (uint8 wraps at 255), negates the bools and subtracts 1 from the int16s.
    assert_eq!(u8s, [0, 2, 3, 4, 5, 6]);
    assert_eq!(bools, [0, 1]);
    assert_eq!(i16s, [-8, 7, -1, -1]);
    feeder.release_slot(0).expect("release");
}
