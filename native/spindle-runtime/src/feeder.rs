//! A ring of memory-mapped batch slots feeding one signature of a [`Model`].
//!
//! Ownership: the feeder owns one anonymous memory map holding `num_slots` slots, each laid out as
//! `crate::layout` says (every input's array 64-byte aligned, so TensorFlow aliases it instead of copying).
//! The JVM writes rows into a *free* slot, then [`Feeder::submit`] hands it to the feeder's batch runner, an
//! actor on a thread of its own (it blocks in TensorFlow; `crate::actors`), which wraps the arrays as
//! tensors (no copy) and runs the session. [`Feeder::await_slot`] returns where the
//! outputs are; they stay valid until [`Feeder::release_slot`], which drops them and frees the slot once
//! TensorFlow has released every tensor over it (an identity op can alias an input into an output).
//!
//! Slot states: Free -> (submit) -> Running -> (run ends) -> Done -> (release) -> Free. Only the JVM thread
//! that feeds moves them. Submitted slots reach the runner on a channel, and each run's outcome comes back
//! once, on a channel of its own, so that the runner and the JVM share nothing under a lock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use actix::{Actor, Handler, SyncContext};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use memmap2::MmapMut;
use spindle_proto::spindle::{
    BatchOutputs, DType, FeederConfig, FeederLayout, OutputTensor, SignatureInfo, TensorSpec,
};
use tokio::sync::oneshot;

use crate::actors::{messages, Actors, Reply};
use crate::batch::run_batch;
use crate::batch_inputs::{self, lay_out, BatchInput};
use crate::error::{Error, Result};
use crate::layout::{self, ALIGNMENT};
use crate::model::{to_proto, Model};
use crate::tf::{AliasGuard, DataType, Port, Tensor};

/// A run's outputs and its duration in microseconds.
type Ran = (Result<Outputs>, i64);

/// The fetched tensors (which may alias the slot) and, for each string output, the (address, length) of
/// every element, which the JVM reads in place, with the first element that is not UTF-8 (-1 for none).
struct Outputs {
    tensors: Vec<Tensor>,
    strings: Vec<Option<(Vec<[u64; 2]>, i64)>>,
}

impl Outputs {
    fn new(tensors: Vec<Tensor>) -> Result<Outputs> {
        let strings = tensors
            .iter()
            .map(|t| {
                if DataType::from_tf(t.tf_type()) != Some(DataType::String) {
                    return Ok(None);
                }
                let values = t.string_values()?;
                let non_utf8 = values
                    .iter()
                    .position(|v| std::str::from_utf8(v).is_err())
                    .map_or(-1, |i| i as i64);
                let pairs = values
                    .iter()
                    .map(|v| [v.as_ptr() as u64, v.len() as u64])
                    .collect();
                Ok(Some((pairs, non_utf8)))
            })
            .collect::<Result<_>>()?;
        Ok(Outputs { tensors, strings })
    }
}

enum SlotState {
    Free,
    /// Submitted; the outcome comes on this channel.
    Running(oneshot::Receiver<Ran>),
    Done(Ran),
}

struct Shared {
    model: Arc<Model>,
    /// `signature '<name>'`, as errors name it.
    signature: String,
    inputs: Vec<BatchInput>,
    output_names: Vec<String>,
    output_ports: Vec<Port>,
    batch_size: usize,
    stride: usize,
    guards: Vec<Arc<AliasGuard>>,
    closing: AtomicBool,
    region: MmapMut,
}

/// A slot ring with its own batch runner. Has one owner; [`Feeder::close`] is idempotent and runs on drop.
pub struct Feeder {
    // Declared before `shared` so that output tensors (which may alias slot memory) drop first.
    /// Touched only by the JVM thread that feeds: behind a lock only so that the handle is shared.
    slots: Mutex<Vec<SlotState>>,
    shared: Arc<Shared>,
    /// Submitted slots, to the batch runner; dropped to end it.
    jobs: Option<Sender<Job>>,
    /// Answered once the batch runner has ended.
    served: Receiver<()>,
    actors: Actors,
}

/// Runs submitted slots. It blocks in TensorFlow, so it has a thread of its own.
struct BatchRunner(Arc<Shared>);

impl Actor for BatchRunner {
    type Context = SyncContext<Self>;
}

/// Run `rows` rows of `slot`, and reply with the outcome.
struct Job {
    slot: usize,
    rows: usize,
    reply: oneshot::Sender<Ran>,
}

/// Serves `jobs` until the feeder drops their sender, then replies on `done`. The slots come on a
/// crossbeam channel, not one actix message each: a slot's batch takes about 0.5 ms, and a message through
/// actix costs tens of microseconds more than a channel (docs/choices.md, "Actors").
struct Serve {
    jobs: Receiver<Job>,
    done: Reply<()>,
}

messages!(Serve);

impl Handler<Serve> for BatchRunner {
    type Result = ();
    fn handle(&mut self, Serve { jobs, done }: Serve, _: &mut SyncContext<Self>) {
        let s = &self.0;
        for job in jobs {
            let started = Instant::now();
            let result = if s.closing.load(Ordering::Acquire) {
                Err(Error::Native("feeder closed before the batch ran".into()))
            } else {
                s.run_slot(job.slot, job.rows).and_then(Outputs::new)
            };
            let _ = job
                .reply
                .send((result, started.elapsed().as_micros() as i64));
        }
        let _ = done.send(());
    }
}

impl Feeder {
    /// Opens a feeder for `config` over `model`, after checking the config against the signature.
    pub fn open(model: Arc<Model>, config: &FeederConfig, id: u64) -> Result<Feeder> {
        let sig: &SignatureInfo = model.signature(&config.signature)?;
        let sig_name = &config.signature;
        if config.batch_size < 1 || config.num_slots < 1 {
            return Err(Error::Input(format!(
                "batch_size ({}) and num_slots ({}) must be at least 1",
                config.batch_size, config.num_slots
            )));
        }
        let batch = config.batch_size as usize;
        let (inputs, bytes) = lay_out(&model, sig_name, &config.inputs, batch)?;
        let wanted: Vec<&TensorSpec> = if config.outputs.is_empty() {
            sig.outputs.iter().collect()
        } else {
            config
                .outputs
                .iter()
                .map(|o| {
                    sig.outputs.iter().find(|s| &s.name == o).ok_or_else(|| {
                        let names: Vec<&str> =
                            sig.outputs.iter().map(|s| s.name.as_str()).collect();
                        Error::Model(format!(
                            "signature '{sig_name}' has no output '{o}' (its outputs: {})",
                            names.join(", ")
                        ))
                    })
                })
                .collect::<Result<_>>()?
        };
        let (mut output_names, mut output_ports) = (Vec::new(), Vec::new());
        for spec in wanted {
            if spec.dtype == DType::DtypeUnspecified as i32 {
                return Err(Error::Model(format!(
                    "output '{}' of signature '{sig_name}' has dtype {}, which Spindle does not read",
                    spec.name, spec.tf_dtype
                )));
            }
            output_names.push(spec.name.clone());
            output_ports.push(model.port(&spec.tensor)?);
        }
        let stride = layout::stride(bytes, ALIGNMENT)?;
        let slots = config.num_slots as usize;
        // The region ends where a slot after the last would start.
        let bytes = layout::slot_offset(slots, stride, "slots")?;
        let region = MmapMut::map_anon(bytes).map_err(|e| {
            Error::Input(format!(
                "mapping {bytes} bytes of slots failed ({e}): lower batch_size or num_slots"
            ))
        })?;
        let shared = Arc::new(Shared {
            model,
            signature: format!("signature '{sig_name}'"),
            inputs,
            output_names,
            output_ports,
            batch_size: batch,
            stride,
            guards: (0..slots)
                .map(|_| Arc::new(AliasGuard::default()))
                .collect(),
            closing: AtomicBool::new(false),
            region,
        });
        let name = if config.label.is_empty() {
            format!("spindle-feeder-{id}")
        } else {
            format!("spindle-feeder {}", config.label)
        };
        let actors = Actors::start(&format!("{name} actors"))?;
        let (jobs, queued) = unbounded();
        let (done, served) = bounded(1);
        let runner = Arc::clone(&shared);
        actors
            .start_sync(name, move || BatchRunner(Arc::clone(&runner)))?
            .do_send(Serve { jobs: queued, done });
        Ok(Feeder {
            slots: Mutex::new((0..slots).map(|_| SlotState::Free).collect()),
            shared,
            jobs: Some(jobs),
            served,
            actors,
        })
    }

    /// Where the JVM writes rows.
    pub fn layout(&self) -> FeederLayout {
        let s = &self.shared;
        FeederLayout {
            base_address: s.region.as_ptr() as i64,
            slot_stride: s.stride as i64,
            num_slots: s.guards.len() as i32,
            ..batch_inputs::feeder_layout(&s.inputs)
        }
    }

    /// Address of an input's area in a slot (for writers in Rust, such as tests and benchmarks).
    pub fn input_ptr(&self, slot: usize, input: usize) -> *mut u8 {
        self.slot_ptr(slot, |s| {
            batch_inputs::areas(&s.inputs)
                .nth(input)
                .map_or(0, |a| a.offset)
        })
    }

    /// Address of an input's arena in a slot (strings and ragged rows), as [`Self::input_ptr`].
    pub fn arena_ptr(&self, slot: usize, input: usize) -> *mut u8 {
        self.slot_ptr(slot, |s| {
            batch_inputs::areas(&s.inputs)
                .nth(input)
                .map_or(0, |a| a.arena)
        })
    }

    fn slot_ptr(&self, slot: usize, offset: impl Fn(&Shared) -> usize) -> *mut u8 {
        let s = &self.shared;
        // SAFETY: in bounds of the region for valid indices; callers write only into free slots.
        unsafe { (s.region.as_ptr() as *mut u8).add(slot * s.stride + offset(s)) }
    }

    fn check_slot(&self, slot: i32) -> Result<usize> {
        let n = self.shared.guards.len();
        usize::try_from(slot)
            .ok()
            .filter(|s| *s < n)
            .ok_or_else(|| Error::Input(format!("slot {slot} is out of range 0..{n}")))
    }

    fn lock(&self) -> MutexGuard<'_, Vec<SlotState>> {
        // A panic while holding the lock leaves consistent states behind: keep going.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands a filled slot to the batch runner; returns at once.
    pub fn submit(&self, slot: i32, rows: i32) -> Result<()> {
        let slot = self.check_slot(slot)?;
        let batch = self.shared.batch_size;
        if rows < 1 || rows as usize > batch {
            return Err(Error::Input(format!(
                "{rows} rows do not fit a slot of 1..={batch} rows"
            )));
        }
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| Error::Native("feeder is closed".into()))?;
        let mut states = self.lock();
        if !matches!(states[slot], SlotState::Free) {
            return Err(Error::Input(format!(
                "slot {slot} is busy; release it before refilling it"
            )));
        }
        let (reply, outcome) = oneshot::channel();
        states[slot] = SlotState::Running(outcome);
        jobs.send(Job {
            slot,
            rows: rows as usize,
            reply,
        })
        .map_err(|_| Error::Native("the feeder's batch runner stopped".into()))
    }

    /// Waits until slot `slot`'s run, if it runs, has ended.
    fn settle(states: &mut [SlotState], slot: usize) {
        states[slot] = match std::mem::replace(&mut states[slot], SlotState::Free) {
            SlotState::Running(outcome) => {
                SlotState::Done(outcome.blocking_recv().unwrap_or_else(|_| {
                    let stopped = Error::Native("the feeder's batch runner stopped".into());
                    (Err(stopped), 0)
                }))
            }
            settled => settled,
        };
    }

    /// Waits for a submitted slot's run and says where its outputs are.
    pub fn await_slot(&self, slot: i32) -> Result<BatchOutputs> {
        let slot = self.check_slot(slot)?;
        let mut states = self.lock();
        Self::settle(&mut states, slot);
        match &states[slot] {
            SlotState::Free => Err(Error::Input(format!("slot {slot} was not submitted"))),
            SlotState::Done((Err(e), _)) => Err(e.clone()),
            SlotState::Done((Ok(outputs), micros)) => self.shared.describe(outputs, *micros),
            SlotState::Running(_) => unreachable!("settled above"),
        }
    }

    /// Drops a slot's outputs and frees it once TensorFlow holds nothing over its memory.
    pub fn release_slot(&self, slot: i32) -> Result<()> {
        let slot = self.check_slot(slot)?;
        let mut states = self.lock();
        Self::settle(&mut states, slot);
        states[slot] = SlotState::Free; // drops the outputs, which may release aliases
        drop(states);
        self.shared.guards[slot].wait_released(&format!("slot {slot}"))
    }

    /// Stops the runner (skipping batches not yet started), waits for it and stops the actor system.
    /// Idempotent.
    pub fn close(&mut self) {
        self.shared.closing.store(true, Ordering::Release);
        if self.jobs.take().is_some() {
            let _ = self.served.recv();
        }
        self.actors.stop();
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.close();
    }
}

impl Shared {
    fn run_slot(&self, slot: usize, rows: usize) -> Result<Vec<Tensor>> {
        // SAFETY: the slot lies inside the region, which outlives the tensors (the region drops after
        // every slot state), and the JVM does not write a slot until release_slot sees no alias.
        unsafe {
            run_batch(
                &self.model,
                &self.inputs,
                (self.region.as_ptr() as *mut u8).add(slot * self.stride),
                rows,
                &self.guards[slot],
                &self.output_ports,
                &self.signature,
            )
        }
    }

    fn describe(&self, outputs: &Outputs, micros: i64) -> Result<BatchOutputs> {
        let outputs = self
            .output_names
            .iter()
            .zip(&outputs.tensors)
            .zip(&outputs.strings)
            .map(|((name, t), strings)| {
                let dtype = DataType::from_tf(t.tf_type()).ok_or_else(|| {
                    Error::Model(format!("output '{name}' came back as an unsupported dtype"))
                })?;
                let (address, first_non_utf8) = match strings {
                    Some((pairs, non_utf8)) => (pairs.as_ptr() as i64, *non_utf8),
                    None => (t.data() as i64, -1),
                };
                Ok(OutputTensor {
                    name: name.clone(),
                    dtype: to_proto(dtype) as i32,
                    shape: t.dims(),
                    address,
                    first_non_utf8,
                })
            })
            .collect::<Result<_>>()?;
        Ok(BatchOutputs {
            outputs,
            run_micros: micros,
        })
    }
}
