//! Training workers against real TensorFlow, the checked-in trainable digits MLP, a real spill file and a real
//! TCP ring on the loopback interface (each worker on its own thread).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spindle_proto::spindle::{
    CheckpointInfo, DType, InputLayout, ModelConfig, TrainerConfig, TrainingReport,
};
use spindle_proto::Message;
use spindle_runtime::{checkpoint, Error, Model, Rendezvous, Trainer};

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn load(path: &str) -> Arc<Model> {
    load_on(path, "")
}

/// [`load`] with the graph placed on `device` by Spindle's own import (empty: TensorFlow's loader).
fn load_on(path: &str, device: &str) -> Arc<Model> {
    let config = ModelConfig {
        path: path.into(),
        intra_op_threads: 1,
        inter_op_threads: 1,
        device: device.into(),
        ..Default::default()
    };
    Arc::new(Model::load(&config).expect("model loads"))
}

/// A learnable synthetic digits-shaped set: 64 features in [0, 1), raised by 0.5 in the label's group of six.
fn dataset(rows: usize, seed: u64) -> Vec<([f32; 64], i64)> {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32) / (1u64 << 31) as f32
    };
    (0..rows)
        .map(|_| {
            let label = ((next() * 10.0) as usize).min(9);
            let mut x = [0f32; 64];
            x.iter_mut().for_each(|v| *v = next());
            x[label * 6..label * 6 + 6]
                .iter_mut()
                .for_each(|v| *v += 0.5);
            (x, label as i64)
        })
        .collect()
}

fn config(batch: i32, epochs: i32, shuffle: bool) -> TrainerConfig {
    TrainerConfig {
        inputs: vec![
            InputLayout {
                name: "features".into(),
                dtype: DType::Float32 as i32,
                row_shape: vec![64],
                ..Default::default()
            },
            InputLayout {
                name: "labels".into(),
                dtype: DType::Int64 as i32,
                row_shape: vec![],
                ..Default::default()
            },
        ],
        batch_size: batch,
        num_slots: 2,
        epochs,
        shuffle,
        seed: 7,
        label: "test".into(),
        connect_timeout_ms: 10_000,
        io_timeout_ms: 30_000,
        ..Default::default()
    }
}

/// Feeds `rows` the way the JVM does: acquire a window, write rows at the layout's offsets, submit.
fn feed(trainer: &Trainer, rows: &[([f32; 64], i64)], batch: usize) -> TrainingReport {
    let layout = trainer.layout();
    for chunk in rows.chunks(batch) {
        let base = trainer.acquire().expect("a window") as *mut u8;
        for (r, (x, y)) in chunk.iter().enumerate() {
            // SAFETY: r < batch, so both rows lie inside the acquired window.
            unsafe {
                let xs = base.add(layout.input_offsets[0] as usize) as *mut f32;
                std::ptr::copy_nonoverlapping(x.as_ptr(), xs.add(r * 64), 64);
                *(base.add(layout.input_offsets[1] as usize) as *mut i64).add(r) = *y;
            }
        }
        trainer.submit(chunk.len() as i32).expect("submit");
    }
    trainer.finish().expect("training finishes")
}

/// Plays the JVM's uploader: copies each checkpoint the chief saves into `uploads`.
fn upload_checkpoints(trainer: &Trainer, uploads: &Path) {
    while let Some(info) = trainer.next_checkpoint() {
        let from = Path::new(&info.prefix).parent().expect("a checkpoint dir");
        let to = uploads.join(format!("ckpt-{}", info.step));
        std::fs::create_dir_all(&to).expect("upload dir");
        for entry in std::fs::read_dir(from).expect("checkpoint files") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
        trainer.checkpoint_done(info.step, None).expect("done");
    }
}

/// The uploaded checkpoint of `step`, as the JVM hands it to a resuming worker.
fn uploaded(uploads: &Path, step: i64) -> CheckpointInfo {
    let dir = uploads.join(format!("ckpt-{step}"));
    let bytes = std::fs::read(dir.join(checkpoint::INFO_FILE)).expect("checkpoint.pb");
    let mut info = CheckpointInfo::decode(bytes.as_slice()).expect("decodes");
    info.prefix = dir.join("variables").to_string_lossy().into_owned();
    info.source = format!("remote://{}", dir.display());
    info
}

/// Trains one job: each worker gets its shard, on its own thread; returns the reports by rank. With `uploads`,
/// the chief checkpoints (as `base` says) and its checkpoints are copied there.
fn train(
    shards: Vec<Vec<([f32; 64], i64)>>,
    base: TrainerConfig,
    export: Option<String>,
    uploads: Option<&Path>,
) -> Vec<TrainingReport> {
    train_on("", shards, base, export, uploads)
}

/// [`train`] with each worker's graph placed on `device` (see [`load_on`]).
fn train_on(
    device: &str,
    shards: Vec<Vec<([f32; 64], i64)>>,
    mut base: TrainerConfig,
    export: Option<String>,
    uploads: Option<&Path>,
) -> Vec<TrainingReport> {
    let world = shards.len();
    let batch = base.batch_size as usize;
    let rendezvous: Vec<Option<Rendezvous>> = (0..world)
        .map(|_| (world > 1).then(|| Rendezvous::bind("127.0.0.1").expect("bind")))
        .collect();
    if world > 1 {
        base.peers = rendezvous
            .iter()
            .map(|r| {
                r.as_ref()
                    .map(|r| r.address().to_string())
                    .unwrap_or_default()
            })
            .collect();
    }
    base.secret = b"job secret".to_vec();
    let threads: Vec<_> = shards
        .into_iter()
        .zip(rendezvous)
        .enumerate()
        .map(|(rank, (rows, rendezvous))| {
            let mut config = base.clone();
            config.rank = rank as i32;
            let uploads = uploads.filter(|_| rank == 0).map(Path::to_path_buf);
            let local = tempfile::tempdir().expect("local checkpoint dir");
            if rank == 0 {
                config.export_dir = export.clone().unwrap_or_default();
                if uploads.is_some() {
                    config.checkpoint_dir = local.path().to_string_lossy().into_owned();
                }
            }
            let device = device.to_string();
            std::thread::spawn(move || {
                let model = load_on(&fixture("digits_mlp_init"), &device);
                let trainer = Trainer::open(model, &config, rendezvous).expect("trainer opens");
                let report = std::thread::scope(|s| {
                    if let Some(uploads) = &uploads {
                        s.spawn(|| upload_checkpoints(&trainer, uploads));
                    }
                    feed(&trainer, &rows, batch)
                });
                let left = std::fs::read_dir(local.path()).expect("local dir").count();
                assert_eq!(left, 0, "uploaded checkpoints leave local disk");
                report
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("worker thread"))
        .collect()
}

fn epoch_loss(report: &TrainingReport, epoch: i32) -> f64 {
    let steps: Vec<_> = report.steps.iter().filter(|s| s.epoch == epoch).collect();
    steps.iter().map(|s| s.loss).sum::<f64>() / steps.len() as f64
}

fn variables(report: &TrainingReport) -> Vec<f32> {
    assert!(
        !report.variables.is_empty(),
        "the fixture has a 'variables' signature"
    );
    report
        .variables
        .iter()
        .flat_map(|v| v.values.iter().copied())
        .collect()
}

/// Element-wise |a - b| <= rel * max(|a|, |b|), with magnitudes below 1e-3 counted as 1e-3: for rel = 1e-5 this
/// is numpy.allclose's default (rtol 1e-5, atol 1e-8). Adam keeps some weights oscillating around zero, where
/// float32 rounding alone differs by a few 1e-9.
fn assert_close(a: &[f32], b: &[f32], rel: f32) {
    assert_eq!(a.len(), b.len());
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(1e-3))
        .fold(0f32, f32::max);
    assert!(worst <= rel, "largest relative difference {worst} > {rel}");
}

#[test]
fn one_worker_learns_over_replayed_epochs() {
    let data = dataset(600, 1);
    let reports = train(vec![data], config(50, 4, true), None, None);
    let r = &reports[0];
    assert_eq!(r.rows, 600);
    assert_eq!(r.batches, 12);
    assert_eq!(r.steps.len(), 48, "12 steps in each of 4 epochs");
    assert!(r.steps.iter().all(|s| s.allreduce_micros == 0));
    let (first, last) = (epoch_loss(r, 1), epoch_loss(r, 4));
    assert!(
        last < first * 0.8,
        "loss falls: epoch 1 {first}, epoch 4 {last}"
    );
}

/// The load path of a task holding a GPU (Spindle's own import, placing the graph on the task's device), here on
/// the CPU: two workers train to the weights TensorFlow's loader gives, and learn.
#[test]
fn workers_on_a_graph_placed_by_spindle_train_as_on_tensorflows_loader() {
    let shards = || vec![dataset(300, 2), dataset(300, 3)];
    let placed = train_on("/device:CPU:0", shards(), config(25, 3, true), None, None);
    let by_tensorflow = train(shards(), config(25, 3, true), None, None);
    assert_close(&variables(&placed[0]), &variables(&by_tensorflow[0]), 1e-5);
    let losses = |r: &TrainingReport| r.steps.iter().map(|s| s.loss as f32).collect::<Vec<_>>();
    assert_close(&losses(&placed[1]), &losses(&by_tensorflow[1]), 1e-5);
    let (first, last) = (epoch_loss(&placed[0], 1), epoch_loss(&placed[0], 3));
    assert!(
        last < first * 0.8,
        "loss falls: epoch 1 {first}, epoch 3 {last}"
    );
}

#[test]
fn two_workers_with_batch_b_equal_one_worker_with_batch_2b() {
    let data = dataset(320, 2);
    // Worker 0 takes the first half of every 2B-row batch, worker 1 the second half.
    let (b, mut shard0, mut shard1) = (20, Vec::new(), Vec::new());
    for (i, chunk) in data.chunks(b).enumerate() {
        if i % 2 == 0 {
            shard0.extend_from_slice(chunk)
        } else {
            shard1.extend_from_slice(chunk)
        }
    }
    let two = train(vec![shard0, shard1], config(b as i32, 1, false), None, None);
    let one = train(vec![data], config(2 * b as i32, 1, false), None, None);
    assert_eq!(two[0].steps.len(), 8);
    assert_eq!(one[0].steps.len(), 8);
    for (x, y) in two[0].steps.iter().zip(&one[0].steps) {
        assert_eq!(x.examples, y.examples);
        assert!(
            (x.loss - y.loss).abs() <= 1e-5 * y.loss.abs(),
            "step {}: {} vs {}",
            x.step,
            x.loss,
            y.loss
        );
    }
    assert!(
        two[1].variables.is_empty(),
        "only the chief reports variables"
    );
    assert_close(&variables(&two[0]), &variables(&one[0]), 1e-5);
}

/// `encrypt_channels` reaches the ring: two workers train to the same bits with it as without, and a worker
/// that encrypts refuses one that does not.
#[test]
fn encrypted_channels_train_to_the_same_bits_and_refuse_a_plain_peer() {
    let shards = || vec![dataset(160, 4), dataset(160, 5)];
    let plain = train(shards(), config(20, 1, false), None, None);
    let sealed = train(
        shards(),
        TrainerConfig {
            encrypt_channels: true,
            ..config(20, 1, false)
        },
        None,
        None,
    );
    let bits = |r: &TrainingReport| variables(r).iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&sealed[0]), bits(&plain[0]));
    let losses = |r: &TrainingReport| r.steps.iter().map(|s| s.loss).collect::<Vec<_>>();
    assert_eq!(losses(&sealed[1]), losses(&plain[1]));

    let rendezvous: Vec<_> = (0..2)
        .map(|_| Rendezvous::bind("127.0.0.1").expect("bind"))
        .collect();
    let peers: Vec<String> = rendezvous.iter().map(|r| r.address().to_string()).collect();
    let opened: Vec<_> = rendezvous
        .into_iter()
        .enumerate()
        .map(|(rank, r)| {
            let config = TrainerConfig {
                rank: rank as i32,
                peers: peers.clone(),
                secret: b"job secret".to_vec(),
                encrypt_channels: rank == 0,
                ..config(20, 1, false)
            };
            std::thread::spawn(move || {
                let model = load(&fixture("digits_mlp_init"));
                // The ring times itself as it forms: the first all-reduce meets the mismatch.
                Trainer::open(model, &config, Some(r))
                    .err()
                    .map(|e| e.to_string())
            })
        })
        .collect();
    let errors: Vec<_> = opened
        .into_iter()
        .map(|t| t.join().expect("worker"))
        .collect();
    let named = errors[0].as_deref().expect("the encrypting worker refuses");
    assert!(
        named.contains("not encrypted") && named.contains(&format!("rank 1 ({})", peers[1])),
        "{named}"
    );
    assert!(errors[1].is_some(), "the plain worker fails too");
}

#[test]
fn uneven_and_empty_partitions_finish() {
    let data = dataset(130, 3);
    let shards = vec![data[..100].to_vec(), data[100..].to_vec(), Vec::new()];
    let reports = train(shards, config(16, 2, true), None, None);
    // Worker 0 has ceil(100 / 16) = 7 batches, the most, so every epoch has 7 steps.
    for r in &reports {
        assert_eq!(r.steps.len(), 14, "rank {}", r.rank);
    }
    assert_eq!(
        reports.iter().map(|r| r.rows).collect::<Vec<_>>(),
        [100, 30, 0]
    );
    let first_epoch: i64 = reports[0]
        .steps
        .iter()
        .filter(|s| s.epoch == 1)
        .map(|s| s.examples)
        .sum();
    assert_eq!(first_epoch, 130, "every row once per epoch");
    assert_eq!(
        reports[0].steps[0].loss, reports[2].steps[0].loss,
        "all ranks see the global loss"
    );
}

#[test]
fn the_chief_exports_a_savedmodel_holding_the_trained_variables() {
    let dir = tempfile::tempdir().expect("temp dir");
    let export = dir.path().join("model").to_string_lossy().into_owned();
    let reports = train(
        vec![dataset(200, 4)],
        config(25, 1, false),
        Some(export.clone()),
        None,
    );
    let exported = load(&export);
    let sig = exported
        .signature("variables")
        .expect("variables signature");
    let ports: Vec<_> = sig
        .outputs
        .iter()
        .map(|o| exported.port(&o.tensor).expect("port"))
        .collect();
    let values = exported.run(&[], &ports, "variables").expect("runs");
    let read: Vec<f32> = values.iter().flat_map(|t| t.to_vec::<f32>()).collect();
    assert_eq!(
        read,
        variables(&reports[0]),
        "exported variables are the trained ones"
    );
    let init = load(&fixture("digits_mlp_init"));
    let before = init.run(&[], &ports_of(&init), "variables").expect("runs");
    let before: Vec<f32> = before.iter().flat_map(|t| t.to_vec::<f32>()).collect();
    assert_ne!(read, before, "training changed the weights");
}

fn ports_of(model: &Model) -> Vec<spindle_runtime::tf::Port> {
    let sig = model.signature("variables").expect("variables signature");
    sig.outputs
        .iter()
        .map(|o| model.port(&o.tensor).expect("port"))
        .collect()
}

#[test]
fn a_closed_trainer_fails_its_feeder_instead_of_blocking() {
    // One window, and a checkpoint after every step that nobody uploads: step 1 saves and offers its
    // checkpoint; step 2's save waits for that upload forever, inside the step, so the trainer never
    // releases batch 2's window and a third acquire must block.
    let local = tempfile::tempdir().expect("local checkpoint dir");
    let mut c = config(10, 1, false);
    c.num_slots = 1;
    c.checkpoint_dir = local.path().to_string_lossy().into_owned();
    c.checkpoint_every_steps = 1;
    let trainer =
        Arc::new(Trainer::open(load(&fixture("digits_mlp_init")), &c, None).expect("opens"));
    for batch in 1..=2 {
        trainer
            .acquire()
            .unwrap_or_else(|e| panic!("window {batch}: {e}"));
        trainer.submit(1).expect("submit");
    }
    // A detached thread, not a scoped one: should close fail to wake it, the test fails, not hangs.
    let (tx, rx) = mpsc::channel();
    let feeder = Arc::clone(&trainer);
    std::thread::spawn(move || tx.send(feeder.acquire()));
    assert!(
        matches!(
            rx.recv_timeout(Duration::from_millis(300)),
            Err(RecvTimeoutError::Timeout)
        ),
        "the third acquire blocks while the trainer holds the only window"
    );
    let closing = Instant::now();
    trainer.close();
    let acquired = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("close wakes the blocked acquire within 5 s");
    assert!(acquired.is_err(), "the woken acquire fails");
    assert!(closing.elapsed() < Duration::from_secs(5));
    trainer.close();
    assert!(trainer.acquire().is_err(), "no window after close");
    assert!(
        trainer.finish().is_err(),
        "finish after close reports the closed trainer"
    );
}

#[test]
fn a_run_resumed_from_any_checkpoint_ends_with_the_uninterrupted_weights() {
    let data = dataset(230, 5);
    // 150 and 80 rows in batches of 20: 8 and 4 batches, so 8 steps an epoch and 24 in all.
    let shards = vec![data[..150].to_vec(), data[150..].to_vec()];
    let uploads = tempfile::tempdir().expect("upload dir");
    let mut base = config(20, 3, true);
    base.checkpoint_every_steps = 5;
    let full = train(shards.clone(), base.clone(), None, Some(uploads.path()));
    assert_eq!(full[0].steps.len(), 24);
    // Step 5 is in epoch 1 (streamed), 10 early in epoch 2, 20 in epoch 3 (both replayed, shuffled).
    for (step, epoch, epoch_step) in [(5, 1, 5), (10, 2, 2), (20, 3, 4)] {
        let info = uploaded(uploads.path(), step);
        assert_eq!(
            (info.step, info.epoch, info.epoch_step),
            (step, epoch, epoch_step)
        );
        let mut resume = config(20, 3, true);
        resume.resume = Some(info);
        let rest = train(shards.clone(), resume, None, None);
        // The history saved with the checkpoint (the chief's own, to the bit), then the steps run after it.
        assert_eq!(rest[0].steps.len(), 24, "from step {step}");
        for (x, y) in rest[0].steps.iter().zip(&full[0].steps) {
            assert_eq!((x.step, x.epoch, x.examples), (y.step, y.epoch, y.examples));
        }
        for (x, y) in rest[0].steps.iter().zip(&full[0].steps).take(step as usize) {
            assert_eq!(
                x.loss.to_bits(),
                y.loss.to_bits(),
                "step {} restored",
                x.step
            );
        }
        assert_eq!(rest[0].epochs.len(), 3, "from step {step}");
        assert_close(&variables(&rest[0]), &variables(&full[0]), 1e-6);
    }
    let kept: Vec<_> = std::fs::read_dir(uploads.path())
        .expect("uploads")
        .collect();
    assert_eq!(kept.len(), 4, "checkpoints at steps 5, 10, 15 and 20");
}

#[test]
fn corrupt_and_foreign_checkpoints_are_checkpoint_errors_naming_the_path() {
    let uploads = tempfile::tempdir().expect("upload dir");
    let mut base = config(25, 1, false);
    base.checkpoint_every_steps = 2;
    train(vec![dataset(100, 6)], base, None, Some(uploads.path()));

    let info = uploaded(uploads.path(), 2);
    let other = load(&fixture("mnist_mlp"));
    match checkpoint::restore(&other, &info) {
        Err(Error::Checkpoint(m)) => {
            assert!(
                m.contains(&info.source) && m.contains("different model"),
                "{m}"
            )
        }
        other => panic!("expected a checkpoint error, got {:?}", other.err()),
    }

    let corrupt = uploaded(uploads.path(), 4);
    let data = PathBuf::from(format!("{}.data-00000-of-00001", corrupt.prefix));
    let len = std::fs::metadata(&data).expect("data file").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&data)
        .and_then(|f| f.set_len(len / 2))
        .expect("truncate");
    let mut resume = config(25, 1, false);
    resume.resume = Some(corrupt.clone());
    match Trainer::open(load(&fixture("digits_mlp_init")), &resume, None) {
        Err(Error::Checkpoint(m)) => assert!(m.contains(&corrupt.source), "{m}"),
        other => panic!("expected a checkpoint error, got {:?}", other.err()),
    }
    // The older checkpoint is untouched and still restores.
    resume.resume = Some(info);
    Trainer::open(load(&fixture("digits_mlp_init")), &resume, None).expect("step 2 restores");
}
