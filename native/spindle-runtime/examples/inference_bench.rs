//! The Rust runtime alone, no JVM: rows/s of a SavedModel over `rows` rows in batches of `batch`, with the
//! same layout as the JVM benchmarks' `local[2]`: two threads (tasks), each with its own two-slot feeder
//! over one shared session (intra-op 1, inter-op 2). The slots are filled once (from `data`, a file of raw
//! rows, or with generated values); each batch is then only submitted, run and released.
//!
//! Usage: cargo run --release -p spindle-runtime --example inference_bench -- [rows] [batch] [repeats]
//!        [model=DIR] [input=NAME] [dtype=float32|uint8] [shape=D,D,...] [data=FILE]
//! The defaults are the MLP 784-128-10 (tests/fixtures/mnist_mlp) on float32 [784] rows.

use std::sync::Arc;
use std::time::Instant;

use spindle_proto::spindle::{DType, FeederConfig, InputLayout, ModelConfig};
use spindle_runtime::{Feeder, Model};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The runtime's log lines go to stderr at the level RUST_LOG names (only errors when unset), apart from
    // the figures on stdout.
    env_logger::init();
    let (numbers, options): (Vec<String>, Vec<String>) =
        std::env::args().skip(1).partition(|a| !a.contains('='));
    let numbers: Vec<usize> = numbers
        .iter()
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let option = |key: &str, default: &str| -> String {
        options
            .iter()
            .find_map(|o| o.strip_prefix(&format!("{key}=")).map(str::to_string))
            .unwrap_or_else(|| default.to_string())
    };
    let rows = numbers.first().copied().unwrap_or(60_000);
    let batch = numbers.get(1).copied().unwrap_or(256);
    let repeats = numbers.get(2).copied().unwrap_or(15);
    let tasks = 2usize;
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");
    let path = option("model", &format!("{fixtures}/mnist_mlp"));
    let (dtype, size) = match option("dtype", "float32").as_str() {
        "uint8" => (DType::Uint8, 1),
        _ => (DType::Float32, 4),
    };
    let shape: Vec<i64> = option("shape", "784")
        .split(',')
        .map(|d| d.parse())
        .collect::<Result<_, _>>()?;
    let row_bytes = shape.iter().product::<i64>() as usize * size;
    // One slot's bytes: the data file's first rows (repeated if it holds fewer), or generated floats.
    let bytes: Vec<u8> = match option("data", "").as_str() {
        "" => (0..batch * row_bytes / 4)
            .flat_map(|i| (((i * 2_654_435_761) % 1000) as f32 / 1000.0).to_le_bytes())
            .collect(),
        file => std::fs::read(file)?
            .into_iter()
            .cycle()
            .take(batch * row_bytes)
            .collect(),
    };
    let config = ModelConfig {
        path,
        intra_op_threads: 1,
        inter_op_threads: 2,
        ..Default::default()
    };
    let model = Arc::new(Model::load(&config)?);
    let feeder_config = FeederConfig {
        signature: "serving_default".into(),
        inputs: vec![InputLayout {
            name: option("input", "features"),
            dtype: dtype as i32,
            row_shape: shape,
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
                let bytes = bytes.clone();
                std::thread::spawn(move || {
                    let feeder = Feeder::open(model, &config, t as u64).expect("feeder opens");
                    for slot in 0..2 {
                        // SAFETY: the slot's [batch, row] array holds these bytes; the slot is free.
                        unsafe {
                            std::ptr::copy_nonoverlapping(
                                bytes.as_ptr(),
                                feeder.input_ptr(slot, 0),
                                bytes.len(),
                            )
                        };
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
    let mut times: Vec<f64> = (0..repeats).map(|_| run_once()).collect();
    times.sort_by(f64::total_cmp);
    let best = times[0];
    let n = times.len();
    let median = if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2.0
    };
    println!(
        "BENCH rust-runtime {:12.0} rows/s (best of {repeats}: {best:.3} s, median {median:.3} s)",
        rows as f64 / best
    );
    Ok(())
}
