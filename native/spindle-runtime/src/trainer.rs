//! One worker of synchronous data-parallel training: the public [`Trainer`], which checks its config, forms
//! the ring and starts the step loop (`crate::step_loop`, where the epochs, resume and the step rule are).
//!
//! Actors: each trainer runs an actix system of its own ([`Actors`]). The JVM task thread feeds (it
//! writes batches straight into memory-mapped windows of a spill file, `crate::spill`); the step loop, an
//! actor on a thread of its own since it blocks in TensorFlow and on the ring, runs the steps; with more
//! than one worker it owns the [`Ring`] to its peers and averages gradients through it
//! (`crate::exchange`). The feeder and the step loop meet only in the spill's channels. On the system's
//! thread, a progress actor keeps the last step's metrics and writes the chief's TensorBoard events
//! (`crate::progress`), and on the chief a hand-off actor passes each checkpoint, saved between steps,
//! to the JVM's uploader ([`crate::checkpoint`]).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use spindle_proto::spindle::{
    CheckpointInfo, FeederLayout, TrainerConfig, TrainerProgress, TrainingReport,
};

use crate::actors::Actors;
use crate::algorithms::Algorithm;
use crate::batch_inputs::{self, lay_out};
use crate::checkpoint::{self, Checkpointer, Checkpoints};
use crate::error::{Error, Result};
use crate::events::EventWriter;
use crate::exchange::Mode;
use crate::model::Model;
use crate::progress::Progress;
use crate::rendezvous::{Rendezvous, RingConfig};
use crate::ring::{Ring, RingCloser};
use crate::spill::Spill;
use crate::step_loop::{self, Runner, Worker};
use crate::validation::EarlyStopping;

/// The `allReduceAlgorithm` setting: `None` for "auto" (or unset), else the algorithm it forces.
fn algorithm(name: &str) -> Result<Option<Algorithm>> {
    match name {
        "" | "auto" => Ok(None),
        _ => Algorithm::parse(name).map(Some).ok_or_else(|| {
            let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
            Error::Input(format!(
                "allReduceAlgorithm '{name}' is none of auto, {}",
                names.join(", ")
            ))
        }),
    }
}

/// How long a silent ring neighbour may go unanswered when the config does not say.
const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(30);

/// One training worker. Has one owner (the JNI handle table); [`Trainer::close`] is idempotent and runs
/// on drop.
pub struct Trainer {
    spill: Arc<Spill>,
    progress: Progress,
    layout: FeederLayout,
    /// The step loop's outcome, once all epochs are done.
    report: Receiver<Result<TrainingReport>>,
    /// Whether `report` was taken (by finish or close).
    reported: AtomicBool,
    closer: Option<RingCloser>,
    checkpoints: Option<Checkpoints>,
    /// Stopped last, once everything on it is done.
    actors: Actors,
}

impl Trainer {
    /// Checks `config` against the model, forms the ring with the peers (blocking up to the connect
    /// timeout) and starts the step loop. `rendezvous` is required with more than one peer.
    pub fn open(
        model: Arc<Model>,
        config: &TrainerConfig,
        rendezvous: Option<Rendezvous>,
    ) -> Result<Trainer> {
        if config.batch_size < 1 || config.num_slots < 1 || config.epochs < 1 {
            return Err(Error::Input(format!(
                "batch_size ({}), num_slots ({}) and epochs ({}) must be at least 1",
                config.batch_size, config.num_slots, config.epochs
            )));
        }
        let world = config.peers.len().max(1);
        let rank = config.rank as usize;
        if rank >= world {
            return Err(Error::Input(format!(
                "rank {rank} is not below {world} workers"
            )));
        }
        let sig_name = if world > 1 { "gradients" } else { "train" };
        let batch = config.batch_size as usize;
        let (inputs, bytes) = lay_out(&model, sig_name, &config.inputs, batch)?;
        let spill = Arc::new(Spill::create(
            Path::new(&config.spill_dir),
            bytes,
            batch,
            config.num_slots as usize,
        )?);
        if let Some(resume) = &config.resume {
            checkpoint::restore(&model, resume)?;
        }
        let events = match config.events_dir.as_str() {
            "" => None,
            dir => Some(EventWriter::create(Path::new(dir))?),
        };
        let actors = Actors::start(&format!("spindle-trainer-actors {}", config.label))?;
        let progress = Progress::start(&actors, events, &config.label);
        let checkpoints = (!config.checkpoint_dir.is_empty()).then(|| Checkpoints::start(&actors));
        let checkpointer = checkpoints
            .as_ref()
            .map(|handoff| {
                Checkpointer::new(
                    handoff.clone(),
                    &model,
                    Path::new(&config.checkpoint_dir),
                    config.checkpoint_every_steps,
                    config.checkpoint_every_millis,
                )
            })
            .transpose()?;
        let mode = if world > 1 {
            let rendezvous = rendezvous.ok_or_else(|| {
                Error::Native(format!("rank {rank} of {world} has no rendezvous"))
            })?;
            let ring = Ring::connect(
                rendezvous,
                &RingConfig {
                    rank,
                    peers: config.peers.clone(),
                    secret: config.secret.clone(),
                    connect_timeout: Duration::from_millis(config.connect_timeout_ms.max(1) as u64),
                    io_timeout: Duration::from_millis(config.io_timeout_ms.max(1) as u64),
                    heartbeat_timeout: match config.heartbeat_timeout_ms {
                        ms if ms > 0 => Duration::from_millis(ms as u64),
                        _ => DEFAULT_HEARTBEAT_TIMEOUT,
                    },
                    algorithm: algorithm(&config.all_reduce_algorithm)?,
                    encrypt: config.encrypt_channels,
                },
                &actors,
            )?;
            Mode::multi(&model, ring)?
        } else {
            Mode::single(&model, sig_name)?
        };
        let closer = mode.closer()?;
        let validation = config
            .validate
            .then(|| step_loop::validation(&model, config, batch, bytes, &inputs))
            .transpose()?;
        let stopping = early_stopping(config)?;
        let layout = FeederLayout {
            slot_stride: spill.stride() as i64,
            num_slots: config.num_slots,
            ..batch_inputs::feeder_layout(&inputs)
        };
        let worker = Box::new(Worker {
            spill: Arc::clone(&spill),
            progress: progress.clone(),
            runner: Runner::new(model, inputs),
            mode,
            config: config.clone(),
            // Resumed: the history up to the checkpoint, so that the report covers the whole training.
            report: TrainingReport {
                rank: rank as i32,
                steps: config
                    .resume
                    .as_ref()
                    .map_or(Vec::new(), |r| r.steps.clone()),
                epochs: config
                    .resume
                    .as_ref()
                    .map_or(Vec::new(), |r| r.epochs.clone()),
                ..Default::default()
            },
            checkpointer,
            done: config.resume.as_ref().map_or(0, |r| r.step),
            epoch_step: 0,
            last_finite: None,
            validation,
            stopping,
        });
        let report = step_loop::start(&actors, &config.label, worker)?;
        Ok(Trainer {
            spill,
            progress,
            layout,
            report,
            reported: AtomicBool::new(false),
            closer,
            checkpoints,
            actors,
        })
    }

    /// Where the JVM writes each input inside a batch window (`base_address` is 0: see [`Self::acquire`]).
    pub fn layout(&self) -> FeederLayout {
        self.layout.clone()
    }

    /// Maps the next batch window and returns its address; blocks while `num_slots` windows are mapped.
    pub fn acquire(&self) -> Result<i64> {
        self.spill.acquire()
    }

    /// Hands the written window, holding `rows` rows, to the trainer.
    pub fn submit(&self, rows: i32) -> Result<()> {
        self.spill.submit(rows)
    }

    /// Ends the training data: the batches submitted from now on are validation data (`validate`).
    pub fn end_training_data(&self) -> Result<()> {
        self.spill.end_training_part()
    }

    /// Ends the input and waits for every epoch to finish; returns this worker's report.
    pub fn finish(&self) -> Result<TrainingReport> {
        self.spill.end_input();
        if self.reported.swap(true, Ordering::AcqRel) {
            return Err(Error::Native("training already finished".into()));
        }
        let report = self
            .report
            .recv()
            .map_err(|_| Error::Native("the trainer's step loop panicked".into()))?;
        // The events of every step are in the file before fit sees the report.
        self.progress.drain();
        report
    }

    /// The metrics of the last step and the last epoch done (all zero before the first).
    pub fn progress(&self) -> TrainerProgress {
        self.progress.latest()
    }

    /// Blocks until the chief saved a checkpoint for the JVM to upload and hands it over; `None` once no
    /// more will come (training ended or was closed, or this worker does not checkpoint).
    pub fn next_checkpoint(&self) -> Option<CheckpointInfo> {
        self.checkpoints.as_ref().and_then(|h| h.next())
    }

    /// The JVM finished uploading checkpoint `step`, or failed to (then training fails with `failure`).
    pub fn checkpoint_done(&self, step: i64, failure: Option<String>) -> Result<()> {
        match &self.checkpoints {
            Some(h) => h.done(step, failure),
            None => Err(Error::Input("this trainer takes no checkpoints".into())),
        }
    }

    /// Stops training: wakes every wait, shuts the ring (so peers fail at once instead of timing out),
    /// waits for the step loop to end and stops the actor system. Idempotent.
    pub fn close(&self) {
        self.spill.close();
        if let Some(closer) = &self.closer {
            closer.close();
        }
        if let Some(handoff) = &self.checkpoints {
            handoff.finish();
        }
        if !self.reported.swap(true, Ordering::AcqRel) {
            if let Ok(Err(e)) = self.report.recv() {
                log::debug!("trainer closed: {e}");
            }
        }
        self.actors.stop();
    }
}

impl Drop for Trainer {
    fn drop(&mut self) {
        self.close();
    }
}

fn early_stopping(config: &TrainerConfig) -> Result<Option<EarlyStopping>> {
    let metric = config.early_stopping_metric.as_str();
    if metric.is_empty() {
        return Ok(None);
    }
    if metric.starts_with("val_") && !config.validate {
        return Err(Error::Input(format!(
            "early stopping watches '{metric}', a validation metric, but there is no validation data \
             (set validationData or validationFraction, or watch 'loss')"
        )));
    }
    Ok(Some(EarlyStopping::new(
        metric,
        config.early_stopping_patience,
        config.early_stopping_min_delta,
        config.early_stopping_maximize,
    )))
}
