//! The step loop of one training worker: its epochs and steps, run by an actor on a thread of its own
//! (it blocks in TensorFlow and on the ring) that [`crate::trainer`] starts, and its report at the end.
//!
//! Epochs: epoch 1 runs each batch as the JVM submits it; later epochs replay the spill file, shuffled by
//! batch when asked (seeded by `seed`, the epoch and the rank), without recomputing the Spark lineage.
//!
//! Resume: every worker restores the same checkpoint before training and skips the batches it covered (its
//! `epoch_step` first batches of its epoch; the epochs before it whole). Epoch 1 is still streamed and
//! spilled, and later epochs replay the same seeded order, so the steps that follow are those an
//! uninterrupted run takes.
//!
//! The step rule, which keeps uneven and empty partitions from deadlocking the ring: a step runs while any
//! worker still has a batch in the epoch. A worker with no batch left still takes part in the step's
//! all-reduce, with zeros, and the summed rows say on every worker whether the epoch is over. So the
//! workers agree on the steps of an epoch, `max over workers of ceil(rows / batch_size)`, in the
//! all-reduce of each step (the first step of the epoch included) without another round trip. One worker
//! runs `train` instead.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::{Actor, Handler, SyncContext};
use crossbeam_channel::{bounded, Receiver};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use spindle_proto::spindle::{
    EpochMetrics, FloatTensor, StepMetrics, TrainerConfig, TrainingReport,
};

use crate::actors::{messages, Actors, Reply};
use crate::batch::run_batch;
use crate::batch_inputs::{self, lay_out, BatchInput};
use crate::checkpoint::Checkpointer;
use crate::error::{Error, Result};
use crate::exchange::Mode;
use crate::model::Model;
use crate::progress::Progress;
use crate::spill::Spill;
use crate::tf::{AliasGuard, DataType, Port, Tensor};
use crate::validation::{EarlyStopping, Evaluator};

/// Runs the session on batches in spill windows.
pub(crate) struct Runner {
    model: Arc<Model>,
    inputs: Vec<BatchInput>,
    guard: Arc<AliasGuard>,
}

/// Validation after every epoch: the windows after the training ones hold validation batches, run through
/// `evaluate` (its own runner: the same window layout, the signature's own input tensors).
pub(crate) struct Validation {
    runner: Runner,
    evaluator: Evaluator,
    /// Rows of each validation window, in spill order, once epoch 1 has fed them.
    rows: Vec<usize>,
}

/// The step loop's state, built by [`crate::trainer::Trainer::open`].
pub(crate) struct Worker {
    /// The windows the JVM fills, and the queue of those filled.
    pub(crate) spill: Arc<Spill>,
    /// Where each step's metrics go: progress reports and TensorBoard events.
    pub(crate) progress: Progress,
    /// Runs the training signature.
    pub(crate) runner: Runner,
    /// One worker's `train`, or the gradient exchange of several.
    pub(crate) mode: Mode,
    /// The trainer's config: epochs, shuffling, resume, export.
    pub(crate) config: TrainerConfig,
    /// What the loop reports at the end; filled as it goes.
    pub(crate) report: TrainingReport,
    /// The chief's, when checkpoints were asked for.
    pub(crate) checkpointer: Option<Checkpointer>,
    /// Global steps done, those before a restored checkpoint included.
    pub(crate) done: i64,
    /// Steps done in the current epoch, those skipped on resume included.
    pub(crate) epoch_step: i64,
    /// The last step whose loss was finite, and that loss: named when a loss turns NaN or infinite.
    pub(crate) last_finite: Option<(i64, f64)>,
    /// The evaluation after each epoch, when validation data was given.
    pub(crate) validation: Option<Validation>,
    /// The early-stopping rule, when one was asked for.
    pub(crate) stopping: Option<EarlyStopping>,
}

/// Runs a worker's epochs. It blocks in TensorFlow and on the ring, so it has a thread of its own.
struct StepLoop;

impl Actor for StepLoop {
    type Context = SyncContext<Self>;
}

/// Runs every epoch of `worker` and replies with its report.
struct Train {
    worker: Box<Worker>,
    reply: Reply<Result<TrainingReport>>,
}

messages!(Train);

impl Handler<Train> for StepLoop {
    type Result = ();
    fn handle(&mut self, Train { mut worker, reply }: Train, _: &mut SyncContext<Self>) {
        let result = worker.run();
        if let Err(e) = &result {
            worker.spill.fail(e);
        }
        // Dropping the worker closes the ring, which wakes peers blocked on us.
        drop(worker);
        let _ = reply.send(result);
    }
}

/// Starts the step loop of `worker` on a thread named after `label`, on `actors`; its report comes on the
/// receiver once every epoch is done (or the loop failed).
pub(crate) fn start(
    actors: &Actors,
    label: &str,
    worker: Box<Worker>,
) -> Result<Receiver<Result<TrainingReport>>> {
    let (reply, report) = bounded(1);
    actors
        .start_sync(format!("spindle-trainer {label}"), || StepLoop)?
        .do_send(Train { worker, reply });
    Ok(report)
}

/// The validation runner: `evaluate` must take the train inputs in the same layout, so that the same
/// windows feed both.
pub(crate) fn validation(
    model: &Arc<Model>,
    config: &TrainerConfig,
    batch: usize,
    bytes: usize,
    inputs: &[BatchInput],
) -> Result<Validation> {
    let evaluator = Evaluator::new(model)?;
    let (eval_inputs, eval_bytes) = lay_out(model, "evaluate", &config.inputs, batch)?;
    if eval_bytes != bytes
        || batch_inputs::feeder_layout(&eval_inputs) != batch_inputs::feeder_layout(inputs)
    {
        return Err(Error::Model(format!(
            "signature 'evaluate' of {} takes other inputs than the training signature",
            model.path()
        )));
    }
    Ok(Validation {
        runner: Runner::new(Arc::clone(model), eval_inputs),
        evaluator,
        rows: Vec::new(),
    })
}

fn scalar(t: &Tensor, what: &str) -> Result<f64> {
    match DataType::from_tf(t.tf_type()) {
        Some(DataType::Float32) => t
            .as_slice::<f32>(DataType::Float32)?
            .first()
            .map(|v| *v as f64),
        Some(DataType::Float64) => t.as_slice::<f64>(DataType::Float64)?.first().copied(),
        _ => None,
    }
    .ok_or_else(|| Error::Model(format!("{what} is not a float scalar")))
}

/// With `terminate_on_nan`, fails at the first step whose loss is NaN or infinite, naming it and the last
/// finite loss (like Keras's `TerminateOnNaN`); the checkpoints already taken stay, and none is taken
/// after it. `last_finite` remembers the last finite step and loss.
fn check_finite(
    last_finite: &mut Option<(i64, f64)>,
    config: &TrainerConfig,
    step: i64,
    epoch: i32,
    loss: f64,
) -> Result<()> {
    if loss.is_finite() {
        *last_finite = Some((step, loss));
        return Ok(());
    }
    if !config.terminate_on_nan {
        return Ok(());
    }
    let last = match last_finite {
        Some((s, l)) => format!("the last finite loss was {l:e}, at step {s}"),
        None => "no step had a finite loss: the last finite loss is unknown".to_string(),
    };
    Err(Error::Training(format!(
        "{}: training diverged: the loss of step {step} (epoch {epoch}) is {loss}; {last}. The \
         checkpoints already written are kept. Lower the learning rate, or set terminateOnNaN to false \
         to train on regardless",
        config.label
    )))
}

impl Drop for Worker {
    /// However the step loop ends (a panic included), the JVM's next acquire fails instead of waiting.
    fn drop(&mut self) {
        self.spill.close();
    }
}

impl Worker {
    /// Batches of `epoch` each worker skips because a restored checkpoint already trained on them
    /// (`usize::MAX`: the whole epoch). Every worker restores the same checkpoint, so all skip alike.
    fn skipped(&self, epoch: i32) -> usize {
        match &self.config.resume {
            Some(r) if epoch < r.epoch => usize::MAX,
            Some(r) if epoch == r.epoch => r.epoch_step as usize,
            _ => 0,
        }
    }

    fn run(&mut self) -> Result<TrainingReport> {
        let started = Instant::now();
        let mut batch_rows = Vec::new();
        // Epoch 1 streams from the JVM; batches a restored checkpoint covers are only spilled.
        let skip = self.skipped(1);
        self.epoch_step = skip.min(i64::MAX as usize) as i64;
        // Once this worker's training part is over, it steps with nothing until every worker's is.
        let mut part_over = false;
        loop {
            let waiting = Instant::now();
            let fed = if part_over {
                None
            } else {
                self.spill.next_fed()?
            };
            part_over = fed.is_none();
            let waited = waiting.elapsed();
            match fed {
                Some(f) if batch_rows.len() < skip => {
                    batch_rows.push(f.rows);
                    self.spill.release(f);
                    continue;
                }
                None if skip == usize::MAX => break,
                _ => {}
            }
            let batch = fed.as_ref().map(|f| (f.base(), f.rows));
            let more = self.step(batch, 1, waited)?;
            if let Some(f) = fed {
                batch_rows.push(f.rows);
                self.spill.release(f);
            }
            if !more {
                break;
            }
        }
        // Not one step and nothing resumed: every worker's partition was empty (an all-reduced row count
        // of 0 at the first step tells each worker the same). An untrained export would hide that.
        if self.report.steps.is_empty() && skip == 0 {
            return Err(Error::Training(format!(
                "{}: no worker received a row: the DataFrame has no rows (were they all filtered away?)",
                self.config.label
            )));
        }
        self.report.first_epoch_micros = started.elapsed().as_micros() as i64;
        self.report.batches = batch_rows.len() as i64;
        self.report.rows = batch_rows.iter().sum::<usize>() as i64;
        // The validation windows follow the training ones; epoch 1 evaluates them as they come.
        let mut stop = false;
        if let Some(v) = &mut self.validation {
            while let Some(f) = self.spill.next_fed()? {
                if skip != usize::MAX {
                    v.evaluate(f.base(), f.rows)?;
                }
                v.rows.push(f.rows);
                self.spill.release(f);
            }
        }
        let mut last = 1;
        if skip != usize::MAX {
            stop = self.end_epoch(1)?;
        }
        // Later epochs replay the spill file, a window at a time.
        for epoch in 2..=self.config.epochs {
            if stop {
                break;
            }
            let skip = self.skipped(epoch);
            if skip == usize::MAX {
                continue;
            }
            self.epoch_step = skip as i64;
            let mut order: Vec<usize> = (0..batch_rows.len()).collect();
            if self.config.shuffle {
                let seed = (self.config.seed as u64)
                    ^ ((epoch as u64) << 32)
                    ^ (self.config.rank as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
            }
            let mut order = order.into_iter().skip(skip);
            loop {
                self.spill.check_open()?;
                let window = order
                    .next()
                    .map(|i| self.spill.replay(i, batch_rows[i]))
                    .transpose()?;
                let batch = window.as_ref().map(|w| (w.base(), w.rows));
                if !self.step(batch, epoch, Duration::ZERO)? {
                    break;
                }
            }
            if let Some(v) = &mut self.validation {
                for j in 0..v.rows.len() {
                    self.spill.check_open()?;
                    let w = self.spill.replay(batch_rows.len() + j, v.rows[j])?;
                    v.evaluate(w.base(), w.rows)?;
                }
            }
            last = epoch;
            stop = self.end_epoch(epoch)?;
        }
        if let Some((best, _)) = self.stopping.as_ref().and_then(|s| s.best()) {
            self.report.best_epoch = best;
            self.report.stopped_early = last < self.config.epochs;
            if best != last && self.config.rank == 0 {
                self.runner.model.restore(&self.best_prefix())?;
            }
        }
        if self.config.rank == 0 {
            self.report.variables = self.variables()?;
            if !self.config.export_dir.is_empty() {
                self.runner
                    .model
                    .export(Path::new(&self.config.export_dir))?;
            }
        }
        Ok(std::mem::take(&mut self.report))
    }

    /// Where the chief keeps the best epoch's weights.
    fn best_prefix(&self) -> std::path::PathBuf {
        Path::new(&self.config.best_dir).join("best")
    }

    /// Ends `epoch`: its mean loss, the validation metrics (summed over every worker), the log line, the
    /// report and TensorBoard, then early stopping's verdict. Returns whether to stop; every worker sees the
    /// same figures, so all return the same.
    fn end_epoch(&mut self, epoch: i32) -> Result<bool> {
        let steps: Vec<&StepMetrics> = self
            .report
            .steps
            .iter()
            .filter(|s| s.epoch == epoch)
            .collect();
        let examples: i64 = steps.iter().map(|s| s.examples).sum();
        let loss = steps
            .iter()
            .map(|s| s.loss * s.examples as f64)
            .sum::<f64>()
            / examples.max(1) as f64;
        let n_steps = steps.len();
        let mut metrics = vec![("loss".to_string(), loss)];
        if let Some(v) = &mut self.validation {
            let mut totals = v.evaluator.sums();
            self.mode.all_reduce_sums(&mut totals)?;
            metrics.extend(v.evaluator.finish(&self.runner.model, &totals)?);
        }
        let shown: Vec<String> = metrics[1..]
            .iter()
            .map(|(name, value)| format!(", {name} {value:.5}"))
            .collect();
        // Every rank sees the same all-reduced figures: the chief says them once, the others only at debug.
        let level = if self.config.rank == 0 {
            log::Level::Info
        } else {
            log::Level::Debug
        };
        log::log!(
            level,
            "{}: epoch {epoch} done, {n_steps} steps, {examples} examples, mean loss {loss:.5}{}",
            self.config.label,
            shown.concat()
        );
        let metrics_of_epoch = EpochMetrics {
            epoch,
            loss,
            validation: metrics[1..].iter().cloned().collect(),
        };
        self.progress
            .epoch_done(self.done, metrics_of_epoch.clone());
        self.report.epochs.push(metrics_of_epoch);
        let prefix = self.best_prefix();
        let Some(stopping) = &mut self.stopping else {
            return Ok(false);
        };
        let verdict = stopping.observe(epoch, &metrics)?;
        // The last epoch's weights, when best, are those in the session already.
        if verdict.improved && self.config.rank == 0 && epoch < self.config.epochs {
            if let Some(dir) = prefix.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            }
            self.runner.model.save(&prefix)?;
        }
        if verdict.stop {
            let (best, value) = stopping.best().unwrap_or((epoch, f64::NAN));
            log::log!(
                level,
                "{}: early stopping after epoch {epoch}: {} has not improved since epoch {best} ({value:.5})",
                self.config.label,
                stopping.metric()
            );
        }
        Ok(verdict.stop)
    }

    /// Runs one step on `batch` (its address and rows; `None` when this worker has no batch left).
    /// Returns false, without stepping, when no worker had a batch: the epoch is over.
    fn step(
        &mut self,
        batch: Option<(*mut u8, usize)>,
        epoch: i32,
        waited: Duration,
    ) -> Result<bool> {
        let started = Instant::now();
        let (loss, examples, reduce) = match &mut self.mode {
            Mode::Single { loss } => {
                let Some((base, rows)) = batch else {
                    return Ok(false);
                };
                let out = self.runner.run(base, rows, &[*loss], "signature 'train'")?;
                let loss = scalar(&out[0], "the loss of 'train'")?;
                check_finite(
                    &mut self.last_finite,
                    &self.config,
                    self.done + 1,
                    epoch,
                    loss,
                )?;
                (loss, rows, Duration::ZERO)
            }
            Mode::Multi(x) => {
                match batch {
                    Some((base, rows)) => {
                        let out =
                            self.runner
                                .run(base, rows, x.fetch(), "signature 'gradients'")?;
                        let loss = scalar(&out[0], "the loss of 'gradients'")?;
                        x.fuse(&out[1..], loss, rows)?;
                    }
                    None => x.fuse_nothing(),
                }
                let reducing = Instant::now();
                let summed = x.all_reduce()?;
                let reduce = reducing.elapsed();
                let Some(summed) = summed else {
                    return Ok(false);
                };
                // Every worker sees the same all-reduced loss, so all stop at the same step, before
                // applying gradients that would carry the NaN into the weights.
                check_finite(
                    &mut self.last_finite,
                    &self.config,
                    self.done + 1,
                    epoch,
                    summed.loss,
                )?;
                x.apply(&self.runner.model, summed.rows)?;
                (summed.loss, summed.rows as usize, reduce)
            }
        };
        let elapsed = started.elapsed();
        self.done += 1;
        self.epoch_step += 1;
        let step = self.done;
        // In the history before the checkpoint, which saves the history up to its step.
        self.report.steps.push(StepMetrics {
            step,
            epoch,
            loss,
            examples: examples as i64,
            input_wait_micros: waited.as_micros() as i64,
            compute_micros: (elapsed - reduce).as_micros() as i64,
            allreduce_micros: reduce.as_micros() as i64,
            step_micros: (elapsed + waited).as_micros() as i64,
            checkpoint_micros: 0,
        });
        let checkpointing = Instant::now();
        if let Some(c) = &mut self.checkpointer {
            let at = (step, epoch, self.epoch_step);
            c.after_step(
                &self.runner.model,
                at,
                &self.report.steps,
                &self.report.epochs,
            )?;
        }
        let checkpoint = checkpointing.elapsed().as_micros() as i64;
        let metrics = self.report.steps.last_mut().expect("pushed above");
        metrics.checkpoint_micros = checkpoint;
        metrics.step_micros += checkpoint;
        self.progress.stepped(*metrics);
        if self.report.first_step_done_millis == 0 {
            self.report.first_step_done_millis = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
        }
        log::debug!("step {step} epoch {epoch}: loss {loss:.6}, {examples} examples");
        Ok(true)
    }
}

impl Runner {
    /// Runs `inputs` of `model`.
    pub(crate) fn new(model: Arc<Model>, inputs: Vec<BatchInput>) -> Runner {
        Runner {
            model,
            inputs,
            guard: Arc::new(AliasGuard::default()),
        }
    }

    /// Runs the batch at `base` (in a spill window) and fetches `fetch`; the inputs alias the window.
    fn run(&self, base: *mut u8, rows: usize, fetch: &[Port], what: &str) -> Result<Vec<Tensor>> {
        // SAFETY: the window outlives the run; the guard is waited on before the window is unmapped or
        // rewritten.
        let out = unsafe {
            run_batch(
                &self.model,
                &self.inputs,
                base,
                rows,
                &self.guard,
                fetch,
                what,
            )
        };
        self.guard.wait_released("a batch")?;
        out
    }
}

impl Validation {
    /// Adds the validation batch at `base` to the epoch's sums.
    fn evaluate(&mut self, base: *mut u8, rows: usize) -> Result<()> {
        let out = self
            .runner
            .run(base, rows, self.evaluator.fetch(), "signature 'evaluate'")?;
        self.evaluator.add(&out)
    }
}

impl Worker {
    /// The chief's trained variables, when the model has a `variables` signature.
    fn variables(&self) -> Result<Vec<FloatTensor>> {
        let model = &self.runner.model;
        let Ok(sig) = model.signature("variables") else {
            return Ok(Vec::new());
        };
        let ports = sig
            .outputs
            .iter()
            .map(|o| model.port(&o.tensor))
            .collect::<Result<Vec<_>>>()?;
        let values = model.run(&[], &ports, "signature 'variables'")?;
        sig.outputs
            .iter()
            .zip(&values)
            .filter(|(_, t)| DataType::from_tf(t.tf_type()) == Some(DataType::Float32))
            .map(|(o, t)| {
                Ok(FloatTensor {
                    name: o.name.clone(),
                    shape: t.dims(),
                    values: t.as_slice::<f32>(DataType::Float32)?.to_vec(),
                })
            })
            .collect()
    }
}
