//! A ring of memory-mapped batch slots feeding one signature of a [`Model`].
//!
//! Ownership: the feeder owns one anonymous memory map holding `num_slots` slots, each laid out as
//! `crate::batch` says (every input's array 64-byte aligned, so TensorFlow aliases it instead of copying).
//! The JVM writes rows into a *free* slot, then [`Feeder::submit`] hands it to the feeder's thread, which
//! wraps the arrays as tensors (no copy) and runs the session. [`Feeder::await_slot`] returns where the
//! outputs are; they stay valid until [`Feeder::release_slot`], which drops them and frees the slot once
//! TensorFlow has released every tensor over it (an identity op can alias an input into an output).
//!
//! Slot states: Free -> (submit) -> Running -> (run ends) -> Done -> (release) -> Free.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{unbounded, Sender};
use memmap2::MmapMut;
use spindle_proto::spindle::{
    BatchOutputs, DType, FeederConfig, FeederLayout, OutputTensor, SignatureInfo, TensorSpec,
};

use crate::batch::{align, lay_out, run_batch, too_big, BatchInput};
use crate::error::{Error, Result};
use crate::model::{to_proto, Model};
use crate::tf::{AliasGuard, DataType, Port, Tensor};

enum SlotState {
    Free,
    Running,
    Done(Result<Vec<Tensor>>, i64),
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
    // Declared before `region` so that output tensors (which may alias slot memory) drop first.
    slots: Mutex<Vec<SlotState>>,
    changed: Condvar,
    guards: Vec<Arc<AliasGuard>>,
    closing: AtomicBool,
    region: MmapMut,
}

/// A slot ring with its own run thread. Has one owner; [`Feeder::close`] is idempotent and runs on drop.
pub struct Feeder {
    shared: Arc<Shared>,
    jobs: Option<Sender<(usize, usize)>>,
    worker: Option<JoinHandle<()>>,
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
        let stride = align(bytes.max(1));
        let slots = config.num_slots as usize;
        let bytes = stride.checked_mul(slots).ok_or_else(|| too_big("slots"))?;
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
            slots: Mutex::new((0..slots).map(|_| SlotState::Free).collect()),
            changed: Condvar::new(),
            guards: (0..slots)
                .map(|_| Arc::new(AliasGuard::default()))
                .collect(),
            closing: AtomicBool::new(false),
            region,
        });
        let (tx, rx) = unbounded::<(usize, usize)>();
        let worker_shared = Arc::clone(&shared);
        let worker = std::thread::Builder::new()
            .name(if config.label.is_empty() {
                format!("spindle-feeder-{id}")
            } else {
                format!("spindle-feeder {}", config.label)
            })
            .spawn(move || {
                for (slot, rows) in rx {
                    let s = &worker_shared;
                    let started = Instant::now();
                    let result = if s.closing.load(Ordering::Acquire) {
                        Err(Error::Native("feeder closed before the batch ran".into()))
                    } else {
                        s.run_slot(slot, rows)
                    };
                    let micros = started.elapsed().as_micros() as i64;
                    s.lock()[slot] = SlotState::Done(result, micros);
                    s.changed.notify_all();
                }
            })
            .map_err(|e| Error::Native(format!("starting a feeder thread: {e}")))?;
        Ok(Feeder {
            shared,
            jobs: Some(tx),
            worker: Some(worker),
        })
    }

    /// Where the JVM writes rows.
    pub fn layout(&self) -> FeederLayout {
        let s = &self.shared;
        FeederLayout {
            base_address: s.region.as_ptr() as i64,
            slot_stride: s.stride as i64,
            input_offsets: s.inputs.iter().map(|i| i.offset as i64).collect(),
            row_bytes: s.inputs.iter().map(|i| i.row_bytes as i64).collect(),
            num_slots: s.guards.len() as i32,
        }
    }

    /// Address of an input's array in a slot (for writers in Rust, such as tests and benchmarks).
    pub fn input_ptr(&self, slot: usize, input: usize) -> *mut u8 {
        let s = &self.shared;
        // SAFETY: in bounds of the region for valid indices; callers write only into free slots.
        unsafe { (s.region.as_ptr() as *mut u8).add(slot * s.stride + s.inputs[input].offset) }
    }

    fn check_slot(&self, slot: i32) -> Result<usize> {
        let n = self.shared.guards.len();
        usize::try_from(slot)
            .ok()
            .filter(|s| *s < n)
            .ok_or_else(|| Error::Input(format!("slot {slot} is out of range 0..{n}")))
    }

    /// Hands a filled slot to the feeder's thread; returns at once.
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
        let mut states = self.shared.lock();
        if !matches!(states[slot], SlotState::Free) {
            return Err(Error::Input(format!(
                "slot {slot} is busy; release it before refilling it"
            )));
        }
        states[slot] = SlotState::Running;
        jobs.send((slot, rows as usize))
            .map_err(|_| Error::Native("feeder thread is gone".into()))
    }

    /// Waits for a submitted slot's run and says where its outputs are.
    pub fn await_slot(&self, slot: i32) -> Result<BatchOutputs> {
        let slot = self.check_slot(slot)?;
        let s = &self.shared;
        let mut states = s.lock();
        loop {
            match &states[slot] {
                SlotState::Running => {
                    states = s.changed.wait(states).unwrap_or_else(|p| p.into_inner())
                }
                SlotState::Free => {
                    return Err(Error::Input(format!("slot {slot} was not submitted")))
                }
                SlotState::Done(Err(e), _) => return Err(e.clone()),
                SlotState::Done(Ok(tensors), micros) => return s.describe(tensors, *micros),
            }
        }
    }

    /// Drops a slot's outputs and frees it once TensorFlow holds nothing over its memory.
    pub fn release_slot(&self, slot: i32) -> Result<()> {
        let slot = self.check_slot(slot)?;
        let s = &self.shared;
        let mut states = s.lock();
        while matches!(states[slot], SlotState::Running) {
            states = s.changed.wait(states).unwrap_or_else(|p| p.into_inner());
        }
        states[slot] = SlotState::Free; // drops the outputs, which may release aliases
        drop(states);
        s.guards[slot].wait_released(&format!("slot {slot}"))
    }

    /// Stops the thread (skipping batches not yet started) and waits for it. Idempotent.
    pub fn close(&mut self) {
        self.shared.closing.store(true, Ordering::Release);
        self.jobs.take();
        if let Some(worker) = self.worker.take() {
            if worker.join().is_err() {
                log::error!("a feeder thread of {} panicked", self.shared.signature);
            }
        }
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.close();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<SlotState>> {
        // A panic while holding the lock leaves consistent states behind: keep going.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

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

    fn describe(&self, tensors: &[Tensor], micros: i64) -> Result<BatchOutputs> {
        let outputs = self
            .output_names
            .iter()
            .zip(tensors)
            .map(|(name, t)| {
                let dtype = DataType::from_tf(t.tf_type()).ok_or_else(|| {
                    Error::Model(format!("output '{name}' came back as an unsupported dtype"))
                })?;
                Ok(OutputTensor {
                    name: name.clone(),
                    dtype: to_proto(dtype) as i32,
                    shape: t.dims(),
                    address: t.data() as i64,
                })
            })
            .collect::<Result<_>>()?;
        Ok(BatchOutputs {
            outputs,
            run_micros: micros,
        })
    }
}
