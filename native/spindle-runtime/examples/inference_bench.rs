//! The Rust runtime alone, no JVM: rows/s of the MLP 784-128-10 (tests/fixtures/mnist_mlp) over
//! `rows` rows in batches of `batch`, with the same layout as the JVM benchmark's `local[2]`: two threads
//! (tasks), each with its own two-slot feeder over one shared session (intra-op 1, inter-op 2).
//! The slots are filled once with random values; each batch is then only submitted, run and released.
//!
//! Usage: cargo run --release -p spindle-runtime --example inference_bench -- [rows] [batch] [repeats]

use std::sync::Arc;
use std::time::Instant;

use spindle_proto::spindle::{DType, FeederConfig, InputLayout, ModelConfig};
use spindle_runtime::{Feeder, Model};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let rows = args.first().copied().unwrap_or(60_000);
    let batch = args.get(1).copied().unwrap_or(256);
    let repeats = args.get(2).copied().unwrap_or(15);
    let tasks = 2usize;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/mnist_mlp"
    );
    let config = ModelConfig {
        path: path.into(),
        intra_op_threads: 1,
        inter_op_threads: 2,
        ..Default::default()
    };
    let model = Arc::new(Model::load(&config)?);
    let feeder_config = FeederConfig {
        signature: "serving_default".into(),
        inputs: vec![InputLayout {
            name: "features".into(),
            dtype: DType::Float32 as i32,
            row_shape: vec![784],
            ..Default::default()
        }],
        outputs: vec![],
        batch_size: batch as i32,
        num_slots: 2,
        label: "bench".into(),
    };
    let run_once = || -> f64 {
        let started = Instant::now();
        let workers: Vec<_> = (0..tasks)
            .map(|t| {
                let model = Arc::clone(&model);
                let config = feeder_config.clone();
                std::thread::spawn(move || {
                    let feeder = Feeder::open(model, &config, t as u64).expect("feeder opens");
                    for slot in 0..2 {
                        let p = feeder.input_ptr(slot, 0) as *mut f32;
                        for i in 0..batch * 784 {
                            // SAFETY: inside the slot's [batch, 784] array; the slot is free.
                            unsafe { *p.add(i) = ((i * 2_654_435_761) % 1000) as f32 / 1000.0 };
                        }
                    }
                    let mut left = rows / tasks;
                    let mut in_flight = std::collections::VecDeque::new();
                    let mut slot = 0;
                    while left > 0 || !in_flight.is_empty() {
                        if left > 0 && in_flight.len() < 2 {
                            let n = left.min(batch);
                            feeder.submit(slot, n as i32).expect("submit");
                            in_flight.push_back(slot);
                            slot = 1 - slot;
                            left -= n;
                        } else {
                            let s = in_flight.pop_front().expect("a slot in flight");
                            feeder.await_slot(s).expect("run");
                            feeder.release_slot(s).expect("release");
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker");
        }
        started.elapsed().as_secs_f64()
    };
    // The same warm-up and best-of-N as the JVM side.
    (0..repeats).for_each(|_| {
        run_once();
    });
    let best = (0..repeats)
        .map(|_| run_once())
        .fold(f64::INFINITY, f64::min);
    println!(
        "BENCH rust-runtime {:12.0} rows/s (best of {repeats}: {best:.3} s)",
        rows as f64 / best
    );
    Ok(())
}
