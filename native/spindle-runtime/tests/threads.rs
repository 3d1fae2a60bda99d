//! Feeders, trainers and rings run on actor systems (`spindle_runtime::actors`); closing them leaves none
//! of their threads behind. An executor JVM opens them task after task for as long as it lives, so a
//! thread left per task would pile up. Its own test binary: no other test's threads run beside it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spindle_proto::spindle::{DType, FeederConfig, InputLayout, ModelConfig, TrainerConfig};
use spindle_runtime::checkpoint::Checkpoints;
use spindle_runtime::{Actors, Feeder, Model, Rendezvous, Trainer};

fn load(name: &str) -> Arc<Model> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name);
    let config = ModelConfig {
        path: path.to_string_lossy().into_owned(),
        intra_op_threads: 1,
        inter_op_threads: 1,
        ..Default::default()
    };
    Arc::new(Model::load(&config).expect("fixture loads"))
}

fn input(name: &str, dtype: DType, row_shape: &[i64]) -> InputLayout {
    InputLayout {
        name: name.into(),
        dtype: dtype as i32,
        row_shape: row_shape.to_vec(),
    }
}

/// Names of this process's threads that Spindle started.
fn spindle_threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .filter(|name| name.starts_with("spindle"))
        .collect()
}

/// Spindle's threads still running 2 s after the close: a blocking actor's thread ends just after its
/// actor system stops, not with it.
fn left_behind() -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let threads = spindle_threads();
        if threads.is_empty() || Instant::now() >= deadline {
            return threads;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_a_feeder() {
    let config = FeederConfig {
        signature: "serving_default".into(),
        inputs: vec![input("features", DType::Float32, &[784])],
        batch_size: 8,
        num_slots: 2,
        label: "threads test".into(),
        ..Default::default()
    };
    let feeder = Feeder::open(load("mnist_mlp"), &config, 1).expect("feeder opens");
    feeder.submit(0, 8).expect("submit");
    feeder.await_slot(0).expect("the batch runs");
    feeder.release_slot(0).expect("release");
    assert!(
        spindle_threads()
            .iter()
            .any(|t| t.starts_with("spindle-feeder")),
        "the feeder runs on threads of its own: {:?}",
        spindle_threads()
    );
}

/// Two workers on a ring, one epoch of one batch each.
fn run_two_trainers() {
    let rendezvous: Vec<Rendezvous> = (0..2)
        .map(|_| Rendezvous::bind("127.0.0.1").expect("bind"))
        .collect();
    let peers: Vec<String> = rendezvous.iter().map(|r| r.address().to_string()).collect();
    let workers: Vec<_> = rendezvous
        .into_iter()
        .enumerate()
        .map(|(rank, r)| {
            let config = TrainerConfig {
                inputs: vec![
                    input("features", DType::Float32, &[64]),
                    input("labels", DType::Int64, &[]),
                ],
                batch_size: 4,
                num_slots: 2,
                epochs: 1,
                rank: rank as i32,
                peers: peers.clone(),
                secret: b"threads".to_vec(),
                label: format!("threads test {rank}"),
                connect_timeout_ms: 10_000,
                io_timeout_ms: 30_000,
                ..Default::default()
            };
            std::thread::spawn(move || {
                let trainer =
                    Trainer::open(load("digits_mlp_init"), &config, Some(r)).expect("opens");
                assert!(
                    spindle_threads()
                        .iter()
                        .any(|t| t.starts_with("spindle-ring")),
                    "the ring's actors run on threads of their own: {:?}",
                    spindle_threads()
                );
                trainer.acquire().expect("a window"); // zeros: features 0, label 0
                trainer.submit(4).expect("submit");
                let report = trainer.finish().expect("trains");
                assert_eq!(report.steps.len(), 1);
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
}

#[test]
fn closed_feeders_trainers_and_rings_leave_no_thread_behind() {
    assert_eq!(
        spindle_threads(),
        Vec::<String>::new(),
        "before anything opens"
    );
    for round in 0..3 {
        run_a_feeder();
        run_two_trainers();
        assert_eq!(left_behind(), Vec::<String>::new(), "after round {round}");
    }
}

#[test]
fn a_request_to_a_stopped_actor_system_fails_instead_of_waiting() {
    let actors = Actors::start("stopped-test-actors").expect("actors");
    let checkpoints = Checkpoints::start(&actors);
    actors.stop();
    let started = Instant::now();
    assert_eq!(
        checkpoints.next(),
        None,
        "no checkpoint comes from a stopped hand-off"
    );
    assert!(
        checkpoints.done(1, None).is_err(),
        "nor does an answer to a report"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}
