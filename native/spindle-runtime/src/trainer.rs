//! One worker of synchronous data-parallel training.
//!
//! Actors: the JVM task thread feeds (it writes batches straight into memory-mapped windows of a spill
//! file); the trainer thread, which [`Trainer::open`] starts, runs the steps; with more than one worker the
//! trainer owns the [`Ring`] to its peers and averages gradients through it. Each actor owns its state; the
//! feeder and the trainer meet only in `Queue`, under one lock. On the chief, the trainer also checkpoints
//! between steps and hands each checkpoint to the JVM's uploader ([`crate::checkpoint`]), and writes
//! TensorBoard events ([`crate::events`]).
//!
//! Resume: every worker restores the same checkpoint before training and skips the batches it covered (its
//! `epoch_step` first batches of its epoch; the epochs before it whole). Epoch 1 is still streamed and
//! spilled, and later epochs replay the same seeded order, so the steps that follow are those an
//! uninterrupted run takes.
//!
//! Memory: the first epoch's batches are written once, by the JVM, into the spill file: batch `i` lives at
//! `i * stride` and TensorFlow reads it in place (no copy). At most `num_slots` batches are mapped at a
//! time (backpressure: [`Trainer::acquire`] blocks), so resident memory does not grow with the partition;
//! the file's pages go to disk. Later epochs map the whole file and replay it, shuffled by batch when
//! asked, without recomputing the Spark lineage. The file is unlinked as soon as it is created, so it
//! disappears with its descriptor even if the process dies.
//!
//! The step rule, which keeps uneven and empty partitions from deadlocking the ring: a step runs while any
//! worker still has a batch in the epoch. Each worker adds `[gradients * rows, loss * rows, rows]` to the
//! step's all-reduce, zeros when it has no batch left; the summed rows say, on every worker at once, whether
//! the epoch is over (0) and how to average (divide by them). So the workers agree on the steps of an
//! epoch, `max over workers of ceil(rows / batch_size)`, in the all-reduce of each step (the first step
//! of the epoch included) without another round trip, and the gradient applied is the row-weighted mean:
//! exactly one step over the union of the workers' batches. One worker runs `train` instead.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use memmap2::{MmapMut, MmapOptions};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use spindle_proto::spindle::{
    CheckpointInfo, DType, FeederLayout, FloatTensor, SignatureInfo, StepMetrics, TrainerConfig,
    TrainingReport,
};

use crate::checkpoint::{self, Checkpointer, Handoff};
use crate::error::{Error, Result};
use crate::events::EventWriter;
use crate::feeder::{lay_out, run_batch, too_big, BatchInput};
use crate::model::Model;
use crate::ring::{Rendezvous, Ring, RingCloser, RingConfig};
use crate::tf::{AliasGuard, DataType, Port, Tensor};

/// Windows of the spill file are mapped at page-aligned offsets.
const PAGE: usize = 4096;

/// A window the JVM has filled and the trainer has not yet run.
struct Fed {
    rows: usize,
    map: MmapMut,
}

/// Where the feeder and the trainer meet.
#[derive(Default)]
struct Queue {
    /// The window the JVM is writing (acquired, not yet submitted).
    writing: Option<MmapMut>,
    fed: VecDeque<Fed>,
    /// Windows mapped and not yet released by the trainer: the backpressure count.
    held: usize,
    /// Index of the next window in the spill file.
    next: usize,
    input_done: bool,
    closing: bool,
    failure: Option<Error>,
}

struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
    /// The last step's metrics, for progress reports while training runs.
    last_step: Mutex<StepMetrics>,
    file: File,
    spill_path: PathBuf,
    stride: usize,
    num_slots: usize,
    batch_size: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, q: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
        self.changed.wait(q).unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves disk for window `index` before mapping it: writing to a mapped page the disk cannot hold
    /// would raise SIGBUS and kill the JVM, while a failed reservation is an ordinary error.
    fn window(&self, index: usize) -> Result<MmapMut> {
        let offset = index
            .checked_mul(self.stride)
            .ok_or_else(|| too_big("spill"))?;
        // SAFETY: a valid open descriptor; the range is checked by the kernel.
        let rc = unsafe {
            libc::posix_fallocate(
                self.file.as_raw_fd(),
                offset as libc::off_t,
                self.stride as libc::off_t,
            )
        };
        if rc != 0 {
            return Err(Error::Input(format!(
                "spill file {}: cannot reserve {} bytes for batch {index}: {}",
                self.spill_path.display(),
                self.stride,
                std::io::Error::from_raw_os_error(rc)
            )));
        }
        // SAFETY: the file is ours alone (unlinked) and the range was just allocated. Populating maps every
        // page in the one call, rather than taking a page fault per page as the JVM writes the rows.
        unsafe {
            MmapOptions::new()
                .offset(offset as u64)
                .len(self.stride)
                .populate()
                .map_mut(&self.file)
        }
        .map_err(|e| Error::Native(format!("mapping spill batch {index}: {e}")))
    }

    /// The next fed window for epoch 1, or `None` once the JVM has finished and everything ran.
    fn next_fed(&self) -> Result<Option<Fed>> {
        let mut q = self.lock();
        loop {
            if q.closing {
                return Err(Error::Native("trainer closed while training".into()));
            }
            if let Some(fed) = q.fed.pop_front() {
                return Ok(Some(fed));
            }
            if q.input_done {
                return Ok(None);
            }
            q = self.wait(q);
        }
    }

    fn release_window(&self) {
        self.lock().held -= 1;
        self.changed.notify_all();
    }
}

/// The gradient exchange of a job with several workers.
struct Exchange {
    ring: Ring,
    /// `gradients` outputs: the loss, then one gradient per `apply` input.
    fetch: Vec<Port>,
    /// `apply_gradients` inputs: port, shape, elements.
    apply: Vec<(Port, Vec<i64>, usize)>,
    step: Port,
    fused: Vec<f32>,
}

enum Mode {
    Single { loss: Port },
    Multi(Box<Exchange>),
}

/// Runs the session on batches in spill windows.
struct Runner {
    model: Arc<Model>,
    inputs: Vec<BatchInput>,
    guard: Arc<AliasGuard>,
}

/// The trainer thread's state.
struct Worker {
    shared: Arc<Shared>,
    runner: Runner,
    mode: Mode,
    config: TrainerConfig,
    report: TrainingReport,
    /// The chief's, when checkpoints were asked for.
    checkpointer: Option<Checkpointer>,
    /// The chief's TensorBoard event file, when asked for.
    events: Option<EventWriter>,
    /// Global steps done, those before a restored checkpoint included.
    done: i64,
    /// Steps done in the current epoch, those skipped on resume included.
    epoch_step: i64,
}

/// One training worker. Has one owner (the JNI handle table); [`Trainer::close`] is idempotent and runs
/// on drop.
pub struct Trainer {
    shared: Arc<Shared>,
    layout: FeederLayout,
    thread: Mutex<Option<JoinHandle<Result<TrainingReport>>>>,
    closer: Option<RingCloser>,
    checkpoints: Option<Arc<Handoff>>,
}

fn signature_output(sig: &SignatureInfo, model: &Model, name: &str) -> Result<Port> {
    let spec = sig.outputs.iter().find(|o| o.name == name).ok_or_else(|| {
        Error::Model(format!(
            "signature '{}' of {} has no output '{name}'",
            sig.name,
            model.path()
        ))
    })?;
    model.port(&spec.tensor)
}

fn exchange(model: &Model, ring: Ring) -> Result<Exchange> {
    let grads = model.signature("gradients")?;
    let apply = model.signature("apply_gradients")?;
    let mut fetch = vec![signature_output(grads, model, "loss")?];
    let mut inputs = Vec::with_capacity(apply.inputs.len());
    let mut total = 0usize;
    for spec in &apply.inputs {
        let name = &spec.name;
        if spec.dtype != DType::Float32 as i32 {
            return Err(Error::Model(format!(
                "apply_gradients input '{name}' is {}; multi-worker training all-reduces float32 gradients",
                spec.tf_dtype
            )));
        }
        if spec.unknown_rank || spec.shape.iter().any(|d| *d < 0) {
            return Err(Error::Model(format!(
                "apply_gradients input '{name}' has a shape that is not fully known ({:?})",
                spec.shape
            )));
        }
        fetch.push(signature_output(grads, model, name)?);
        let elements = spec.shape.iter().product::<i64>() as usize;
        total += elements;
        inputs.push((model.port(&spec.tensor)?, spec.shape.clone(), elements));
    }
    Ok(Exchange {
        ring,
        fetch,
        apply: inputs,
        step: signature_output(apply, model, "step")?,
        fused: vec![0.0; total + 2],
    })
}

impl Trainer {
    /// Checks `config` against the model, forms the ring with the peers (blocking up to the connect
    /// timeout) and starts the trainer thread. `rendezvous` is required with more than one peer.
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
        let stride = bytes.max(1).div_ceil(PAGE) * PAGE;
        let (file, spill_path) = spill_file(Path::new(&config.spill_dir))?;
        if let Some(resume) = &config.resume {
            checkpoint::restore(&model, resume)?;
        }
        let events = match config.events_dir.as_str() {
            "" => None,
            dir => Some(EventWriter::create(Path::new(dir))?),
        };
        let checkpoints = (!config.checkpoint_dir.is_empty()).then(Arc::<Handoff>::default);
        let checkpointer = checkpoints
            .as_ref()
            .map(|handoff| {
                Checkpointer::new(
                    Arc::clone(handoff),
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
                },
            )?;
            Mode::Multi(Box::new(exchange(&model, ring)?))
        } else {
            Mode::Single {
                loss: signature_output(model.signature(sig_name)?, &model, "loss")?,
            }
        };
        let closer = match &mode {
            Mode::Multi(x) => Some(x.ring.closer()?),
            Mode::Single { .. } => None,
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            last_step: Mutex::default(),
            file,
            spill_path,
            stride,
            num_slots: config.num_slots as usize,
            batch_size: batch,
        });
        let layout = FeederLayout {
            base_address: 0,
            slot_stride: stride as i64,
            input_offsets: inputs.iter().map(|i| i.offset as i64).collect(),
            row_bytes: inputs.iter().map(|i| i.row_bytes as i64).collect(),
            num_slots: config.num_slots,
        };
        let mut worker = Worker {
            shared: Arc::clone(&shared),
            runner: Runner {
                model,
                inputs,
                guard: Arc::new(AliasGuard::default()),
            },
            mode,
            config: config.clone(),
            report: TrainingReport {
                rank: rank as i32,
                ..Default::default()
            },
            checkpointer,
            events,
            done: config.resume.as_ref().map_or(0, |r| r.step),
            epoch_step: 0,
        };
        let thread = std::thread::Builder::new()
            .name(format!("spindle-trainer {}", config.label))
            .spawn(move || {
                let result = worker.run();
                if let Err(e) = &result {
                    let mut q = worker.shared.lock();
                    q.failure.get_or_insert_with(|| e.clone());
                    drop(q);
                    worker.shared.changed.notify_all();
                }
                // Dropping the worker here closes the ring, which wakes peers blocked on us.
                result
            })
            .map_err(|e| Error::Native(format!("starting a trainer thread: {e}")))?;
        Ok(Trainer {
            shared,
            layout,
            thread: Mutex::new(Some(thread)),
            closer,
            checkpoints,
        })
    }

    /// Where the JVM writes each input inside a batch window (`base_address` is 0: see [`Self::acquire`]).
    pub fn layout(&self) -> FeederLayout {
        self.layout.clone()
    }

    /// Maps the next batch window and returns its address; blocks while `num_slots` windows are mapped.
    pub fn acquire(&self) -> Result<i64> {
        let s = &self.shared;
        let mut q = s.lock();
        loop {
            if let Some(e) = &q.failure {
                return Err(e.clone());
            }
            if q.closing || q.input_done {
                return Err(Error::Native("trainer input is already finished".into()));
            }
            if q.writing.is_some() {
                return Err(Error::Input(
                    "a batch is already being written; submit it first".into(),
                ));
            }
            if q.held < s.num_slots {
                break;
            }
            q = s.wait(q);
        }
        let map = s.window(q.next)?;
        let address = map.as_ptr() as i64;
        q.next += 1;
        q.held += 1;
        q.writing = Some(map);
        Ok(address)
    }

    /// Hands the written window, holding `rows` rows, to the trainer.
    pub fn submit(&self, rows: i32) -> Result<()> {
        let s = &self.shared;
        if rows < 1 || rows as usize > s.batch_size {
            return Err(Error::Input(format!(
                "{rows} rows do not fit a batch of 1..={} rows",
                s.batch_size
            )));
        }
        let mut q = s.lock();
        let map = q
            .writing
            .take()
            .ok_or_else(|| Error::Input("no batch was acquired".into()))?;
        q.fed.push_back(Fed {
            rows: rows as usize,
            map,
        });
        drop(q);
        s.changed.notify_all();
        Ok(())
    }

    /// Ends the input and waits for every epoch to finish; returns this worker's report.
    pub fn finish(&self) -> Result<TrainingReport> {
        {
            let mut q = self.shared.lock();
            if q.writing.take().is_some() {
                q.held -= 1;
            }
            q.input_done = true;
        }
        self.shared.changed.notify_all();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| Error::Native("training already finished".into()))?;
        thread
            .join()
            .map_err(|_| Error::Native("the trainer thread panicked".into()))?
    }

    /// The metrics of the last step done (all zero before the first).
    pub fn progress(&self) -> StepMetrics {
        *self
            .shared
            .last_step
            .lock()
            .unwrap_or_else(|p| p.into_inner())
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

    /// Stops training: wakes every wait, shuts the ring (so peers fail at once instead of timing out)
    /// and joins the thread. Idempotent.
    pub fn close(&self) {
        self.shared.lock().closing = true;
        self.shared.changed.notify_all();
        if let Some(closer) = &self.closer {
            closer.close();
        }
        if let Some(handoff) = &self.checkpoints {
            handoff.finish();
        }
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            if let Ok(Err(e)) = thread.join() {
                log::debug!("trainer closed: {e}");
            }
        }
    }
}

impl Drop for Trainer {
    fn drop(&mut self) {
        self.close();
    }
}

/// Creates the spill file in `dir` and unlinks it at once: it lives exactly as long as its descriptor.
fn spill_file(dir: &Path) -> Result<(File, PathBuf)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = if dir.as_os_str().is_empty() {
        std::env::temp_dir()
    } else {
        dir.to_path_buf()
    };
    let path = dir.join(format!(
        "spindle-spill-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::Input(format!("creating spill file {}: {e}", path.display())))?;
    // The open descriptor keeps the data; only the name goes.
    let _ = std::fs::remove_file(&path);
    Ok((file, path))
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
        loop {
            let waiting = Instant::now();
            let fed = self.shared.next_fed()?;
            let waited = waiting.elapsed();
            match &fed {
                Some(f) if batch_rows.len() < skip => {
                    batch_rows.push(f.rows);
                    drop(fed);
                    self.shared.release_window();
                    continue;
                }
                None if skip == usize::MAX => break,
                _ => {}
            }
            let batch = fed.as_ref().map(|f| (f.map.as_ptr() as *mut u8, f.rows));
            let more = self.step(batch, 1, waited)?;
            if let Some(f) = fed {
                batch_rows.push(f.rows);
                drop(f.map);
                self.shared.release_window();
            }
            if !more {
                break;
            }
        }
        self.report.first_epoch_micros = started.elapsed().as_micros() as i64;
        self.report.batches = batch_rows.len() as i64;
        self.report.rows = batch_rows.iter().sum::<usize>() as i64;
        self.log_epoch(1);
        // Later epochs replay the spill file.
        let stride = self.shared.stride;
        let replay = if self.config.epochs > 1 && !batch_rows.is_empty() {
            // SAFETY: the file is ours alone and every window in it was written in epoch 1.
            let map = unsafe {
                MmapOptions::new()
                    .len(batch_rows.len() * stride)
                    .map_mut(&self.shared.file)
            }
            .map_err(|e| Error::Native(format!("mapping the spill file for replay: {e}")))?;
            Some(map)
        } else {
            None
        };
        for epoch in 2..=self.config.epochs {
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
                if self.shared.lock().closing {
                    return Err(Error::Native("trainer closed while training".into()));
                }
                let batch = match (order.next(), &replay) {
                    // SAFETY: index < batches, so the window lies inside the mapping.
                    (Some(i), Some(map)) => Some((
                        unsafe { (map.as_ptr() as *mut u8).add(i * stride) },
                        batch_rows[i],
                    )),
                    _ => None,
                };
                if !self.step(batch, epoch, Duration::ZERO)? {
                    break;
                }
            }
            self.log_epoch(epoch);
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
                (
                    scalar(&out[0], "the loss of 'train'")?,
                    rows,
                    Duration::ZERO,
                )
            }
            Mode::Multi(x) => {
                match batch {
                    Some((base, rows)) => {
                        let out = self
                            .runner
                            .run(base, rows, &x.fetch, "signature 'gradients'")?;
                        let loss = scalar(&out[0], "the loss of 'gradients'")?;
                        fuse(x, &out[1..], loss, rows)?;
                    }
                    None => x.fused.fill(0.0),
                }
                let reducing = Instant::now();
                x.ring.all_reduce(&mut x.fused)?;
                let reduce = reducing.elapsed();
                let n = x.fused.len();
                let total = x.fused[n - 1];
                if total == 0.0 {
                    return Ok(false);
                }
                let loss = (x.fused[n - 2] / total) as f64;
                apply(&self.runner.model, x, total)?;
                (loss, total as usize, reduce)
            }
        };
        let elapsed = started.elapsed();
        self.done += 1;
        self.epoch_step += 1;
        let step = self.done;
        let checkpointing = Instant::now();
        if let Some(c) = &mut self.checkpointer {
            c.after_step(&self.runner.model, step, epoch, self.epoch_step)?;
        }
        let checkpoint = checkpointing.elapsed();
        let metrics = StepMetrics {
            step,
            epoch,
            loss,
            examples: examples as i64,
            input_wait_micros: waited.as_micros() as i64,
            compute_micros: (elapsed - reduce).as_micros() as i64,
            allreduce_micros: reduce.as_micros() as i64,
            step_micros: (elapsed + waited + checkpoint).as_micros() as i64,
            checkpoint_micros: checkpoint.as_micros() as i64,
        };
        *self
            .shared
            .last_step
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = metrics;
        self.report.steps.push(metrics);
        log::debug!("step {step} epoch {epoch}: loss {loss:.6}, {examples} examples");
        self.write_events(&metrics);
        Ok(true)
    }
}

impl Runner {
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

    /// Adds the step to the TensorBoard event file. A failed write stops the events, not the training: the
    /// model is worth more than its curves.
    fn write_events(&mut self, m: &StepMetrics) {
        let Some(writer) = &mut self.events else {
            return;
        };
        let ms = |micros: i64| micros as f64 / 1e3;
        let written = writer
            .scalars(
                m.step,
                &[
                    ("loss", m.loss),
                    (
                        "examples_per_second",
                        m.examples as f64 * 1e6 / m.step_micros.max(1) as f64,
                    ),
                    ("step_time_ms/input_wait", ms(m.input_wait_micros)),
                    ("step_time_ms/compute", ms(m.compute_micros)),
                    ("step_time_ms/allreduce", ms(m.allreduce_micros)),
                    ("step_time_ms/checkpoint", ms(m.checkpoint_micros)),
                ],
            )
            .and_then(|_| writer.flush());
        if let Err(e) = written {
            log::warn!("{}: TensorBoard events stop: {e}", self.config.label);
            self.events = None;
        }
    }

    fn log_epoch(&self, epoch: i32) {
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
        log::info!(
            "{}: epoch {epoch} done, {} steps, {examples} examples, mean loss {loss:.5}",
            self.config.label,
            steps.len()
        );
    }
}

/// Writes this worker's share of the all-reduce: gradients and loss weighted by its rows, then the rows.
fn fuse(x: &mut Exchange, grads: &[Tensor], loss: f64, rows: usize) -> Result<()> {
    let weight = rows as f32;
    let mut at = 0;
    for (t, (_, shape, elements)) in grads.iter().zip(&x.apply) {
        let values = t.as_slice::<f32>(DataType::Float32)?;
        if values.len() != *elements {
            return Err(Error::Model(format!(
                "a gradient has {} values, but apply_gradients expects shape {shape:?}",
                values.len()
            )));
        }
        for (d, v) in x.fused[at..at + elements].iter_mut().zip(values) {
            *d = v * weight;
        }
        at += elements;
    }
    let n = x.fused.len();
    x.fused[n - 2] = loss as f32 * weight;
    x.fused[n - 1] = weight;
    Ok(())
}

/// Applies the summed gradients divided by the summed rows: the row-weighted mean.
fn apply(model: &Model, x: &mut Exchange, total: f32) -> Result<()> {
    let mut tensors = Vec::with_capacity(x.apply.len());
    let mut at = 0;
    for (_, shape, elements) in &x.apply {
        let slice = &mut x.fused[at..at + elements];
        for v in slice.iter_mut() {
            *v /= total;
        }
        tensors.push(Tensor::copy_from(DataType::Float32, shape, slice)?);
        at += elements;
    }
    let feeds: Vec<(Port, &Tensor)> = x.apply.iter().map(|a| a.0).zip(&tensors).collect();
    model.run(&feeds, &[x.step], "signature 'apply_gradients'")?;
    Ok(())
}
