//! The baseline of benches/training.sh: a plain Rust loop running the `train` signature on in-memory batches,
//! no JVM, no feeder, no spill file. Same model, batch size and session threads as the JVM side.
//!
//! Usage: train_bench [model dir] [rows] [batch] [epochs] [repeats] [intra-op threads] [inter-op threads]
//! Prints samples/s, the best of `repeats` timed runs after one untimed run. Every run trains from the same
//! initial weights (the model is reloaded, untimed).

use std::time::Instant;

use spindle_proto::spindle::{DType, ModelConfig};
use spindle_runtime::tf::{DataType, Tensor};
use spindle_runtime::Model;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The runtime's log lines go to stderr at the level RUST_LOG names (only errors when unset), apart from
    // the figures on stdout.
    env_logger::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: usize| args.get(i).map_or(Ok(default), |a| a.parse());
    let path = args.first().cloned().unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/mnist_mlp"
        )
        .to_string()
    });
    let (rows, batch, epochs, repeats) = (
        number(1, 60_000)?,
        number(2, 256)?,
        number(3, 3)?,
        number(4, 3)?,
    );
    let config = ModelConfig {
        path,
        intra_op_threads: number(5, 1)? as i32,
        inter_op_threads: number(6, 1)? as i32,
        ..Default::default()
    };
    // The same value generator for every input: floats in [0, 1), integers as class ids 0..10.
    let batches = |model: &Model| -> Result<Vec<Vec<Tensor>>, Box<dyn std::error::Error>> {
        let sig = model.signature("train")?;
        let mut out = Vec::new();
        for start in (0..rows).step_by(batch) {
            let n = batch.min(rows - start);
            let mut tensors = Vec::new();
            for input in &sig.inputs {
                let mut dims: Vec<i64> = input.shape.clone();
                dims[0] = n as i64;
                let count = dims.iter().product::<i64>() as usize;
                let at = |i: usize| (start * 7919 + i * 2_654_435_761) % 1000;
                tensors.push(match DType::try_from(input.dtype)? {
                    DType::Float32 => {
                        let v: Vec<f32> = (0..count).map(|i| at(i) as f32 / 1000.0).collect();
                        Tensor::copy_from(DataType::Float32, &dims, &v)?
                    }
                    DType::Int64 => {
                        let v: Vec<i64> = (0..count).map(|i| (at(i) % 10) as i64).collect();
                        Tensor::copy_from(DataType::Int64, &dims, &v)?
                    }
                    DType::Int32 => {
                        let v: Vec<i32> = (0..count).map(|i| (at(i) % 10) as i32).collect();
                        Tensor::copy_from(DataType::Int32, &dims, &v)?
                    }
                    other => return Err(format!("input {} has dtype {other:?}", input.name).into()),
                });
            }
            out.push(tensors);
        }
        Ok(out)
    };
    let run_once = || -> Result<f64, Box<dyn std::error::Error>> {
        let model = Model::load(&config)?;
        let data = batches(&model)?;
        let sig = model.signature("train")?;
        let ports = sig
            .inputs
            .iter()
            .map(|i| model.port(&i.tensor))
            .collect::<Result<Vec<_>, _>>()?;
        let loss = model.port(&sig.outputs[0].tensor)?;
        let started = Instant::now();
        for _ in 0..epochs {
            for tensors in &data {
                let feeds: Vec<_> = ports.iter().cloned().zip(tensors.iter()).collect();
                model.run(&feeds, std::slice::from_ref(&loss), "train")?;
            }
        }
        Ok(started.elapsed().as_secs_f64())
    };
    run_once()?;
    let mut best = f64::INFINITY;
    for _ in 0..repeats {
        best = best.min(run_once()?);
    }
    println!(
        "BENCH rust-train-loop {:12.0} samples/s (best of {repeats}: {best:.3} s for {epochs} x {rows} rows)",
        (rows * epochs) as f64 / best
    );
    Ok(())
}
