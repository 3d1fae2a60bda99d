//! Feeders, trainers and rings run on actor systems (`spindle_runtime::actors`); closing them leaves none
//! of their threads behind. An executor JVM opens them task after task for as long as it lives, so a
//! thread left per task would pile up. Its own test binary: no other test's threads run beside it.

mod common;

use std::time::{Duration, Instant};

use common::{input, load};
use spindle_proto::spindle::{DType, FeederConfig, TrainerConfig};
use spindle_runtime::checkpoint::Checkpoints;
use spindle_runtime::{Actors, Feeder, Rendezvous, Trainer};

/// Names of this process's threads that Spindle started.
fn spindle_threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .filter(|name| name.starts_with("spindle"))
        .collect()
}

/// Spindle's threads once `settled` holds of them, or after 2 s. A thread takes its name a moment after it
/// starts, and a blocking actor's thread ends just after its actor system stops, not with it.
fn threads_once(settled: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let threads = spindle_threads();
        if settled(&threads) || Instant::now() >= deadline {
            return threads;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn has(threads: &[String], prefix: &str) -> bool {
    threads.iter().any(|t| t.starts_with(prefix))
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
    let threads = threads_once(|t| has(t, "spindle-feeder"));
    assert!(
        has(&threads, "spindle-feeder"),
        "the feeder runs on threads of its own: {threads:?}"
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
                let threads = threads_once(|t| has(t, "spindle-ring"));
                assert!(
                    has(&threads, "spindle-ring"),
                    "the ring's actors run on threads of their own: {threads:?}"
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
        assert_eq!(
            threads_once(|t| t.is_empty()),
            Vec::<String>::new(),
            "after round {round}"
        );
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
