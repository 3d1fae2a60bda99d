//! A ring of memory-mapped batch slots feeding one signature of a [`Model`].
//!
//! Ownership: the feeder owns one anonymous memory map holding `num_slots` slots. In a slot, each input's
//! `[batch_size, row_shape...]` array starts 64-byte aligned, so TensorFlow aliases it instead of copying.
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
    BatchOutputs, DType, FeederConfig, FeederLayout, InputLayout, OutputTensor, SignatureInfo,
    TensorSpec,
};

use crate::error::{Error, Result};
use crate::model::{from_proto, to_proto, Model};
use crate::tf::{AliasGuard, DataType, Port, Tensor, ALIGNMENT};

/// One input's place in a batch (a feeder slot or a trainer window): its `[rows, ...row_shape]` array of
/// `dtype` starts `offset` bytes into the batch.
pub(crate) struct BatchInput {
    name: String,
    pub(crate) port: Port,
    dtype: DataType,
    row_shape: Vec<i64>,
    pub(crate) offset: usize,
    pub(crate) row_bytes: usize,
}

impl BatchInput {
    /// A tensor over this input's first `rows` rows in the batch at `base`, without a copy.
    ///
    /// # Safety
    /// The batch at `base` must stay mapped and unwritten until `guard.live()` drops back.
    pub(crate) unsafe fn alias(
        &self,
        base: *mut u8,
        rows: usize,
        guard: &Arc<AliasGuard>,
    ) -> Result<Tensor> {
        let mut dims = Vec::with_capacity(self.row_shape.len() + 1);
        dims.push(rows as i64);
        dims.extend_from_slice(&self.row_shape);
        // SAFETY: the caller's contract; `rows * row_bytes` bytes from `offset` lie inside the batch.
        unsafe {
            Tensor::from_external(
                self.dtype,
                &dims,
                base.add(self.offset),
                rows * self.row_bytes,
                guard,
            )
        }
    }
}

/// Runs `fetch` of `model` on the first `rows` rows of the batch at `base`, its `inputs` aliased (no copy);
/// `what` names the signature in errors.
///
/// # Safety
/// The batch at `base` must stay mapped and unwritten until `guard.live()` drops back.
pub(crate) unsafe fn run_batch(
    model: &Model,
    inputs: &[BatchInput],
    base: *mut u8,
    rows: usize,
    guard: &Arc<AliasGuard>,
    fetch: &[Port],
    what: &str,
) -> Result<Vec<Tensor>> {
    let tensors = inputs
        .iter()
        // SAFETY: the caller's contract.
        .map(|input| unsafe { input.alias(base, rows, guard) })
        .collect::<Result<Vec<_>>>()?;
    let feeds: Vec<(Port, &Tensor)> = inputs
        .iter()
        .zip(&tensors)
        .map(|(i, t)| (i.port, t))
        .collect();
    model.run(&feeds, fetch, what)
}

/// Checks `layouts` against signature `sig_name` of `model` (every input fed once, dtypes and shapes that fit)
/// and places them, 64-byte aligned, in a batch of `batch` rows. Returns the inputs and the batch's bytes.
pub(crate) fn lay_out(
    model: &Model,
    sig_name: &str,
    layouts: &[InputLayout],
    batch: usize,
) -> Result<(Vec<BatchInput>, usize)> {
    let sig = model.signature(sig_name)?;
    let mut inputs: Vec<BatchInput> = Vec::with_capacity(layouts.len());
    let mut cursor = 0usize;
    for layout in layouts {
        let spec = sig
            .inputs
            .iter()
            .find(|s| s.name == layout.name)
            .ok_or_else(|| {
                let names: Vec<&str> = sig.inputs.iter().map(|s| s.name.as_str()).collect();
                Error::Input(format!(
                    "signature '{sig_name}' has no input '{}' (its inputs: {})",
                    layout.name,
                    names.join(", ")
                ))
            })?;
        if inputs.iter().any(|i| i.name == layout.name) {
            return Err(Error::Input(format!(
                "input '{}' is fed twice",
                layout.name
            )));
        }
        let dtype = check_input(spec, layout.dtype, &layout.row_shape, sig_name)?;
        let row_bytes = layout
            .row_shape
            .iter()
            .try_fold(dtype.size(), |n, d| n.checked_mul(*d as usize))
            .ok_or_else(|| too_big(&layout.name))?;
        let offset = align(cursor);
        cursor = batch
            .checked_mul(row_bytes)
            .and_then(|n| n.checked_add(offset))
            .ok_or_else(|| too_big(&layout.name))?;
        inputs.push(BatchInput {
            name: layout.name.clone(),
            port: model.port(&spec.tensor)?,
            dtype,
            row_shape: layout.row_shape.clone(),
            offset,
            row_bytes,
        });
    }
    if let Some(missing) = sig
        .inputs
        .iter()
        .find(|s| !inputs.iter().any(|i| i.name == s.name))
    {
        return Err(Error::Input(format!(
            "input '{}' of signature '{sig_name}' is not fed",
            missing.name
        )));
    }
    Ok((inputs, cursor))
}

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

pub(crate) fn align(n: usize) -> usize {
    n.div_ceil(ALIGNMENT) * ALIGNMENT
}

fn shape_text(dims: &[i64]) -> String {
    let d: Vec<String> = dims
        .iter()
        .map(|d| if *d < 0 { "?".into() } else { d.to_string() })
        .collect();
    format!("[{}]", d.join(", "))
}

pub(crate) fn too_big(what: &str) -> Error {
    Error::Input(format!(
        "slot size overflows for '{what}': lower batch_size, num_slots or the row shape"
    ))
}

/// Checks one input layout against its signature spec and returns its dtype.
pub(crate) fn check_input(
    spec: &TensorSpec,
    dtype: i32,
    row_shape: &[i64],
    sig: &str,
) -> Result<DataType> {
    let name = &spec.name;
    let want = DType::try_from(spec.dtype).unwrap_or(DType::DtypeUnspecified);
    let Some(tf_type) = from_proto(want) else {
        return Err(Error::Model(format!(
            "input '{name}' of signature '{sig}' has dtype {}, which Spindle does not feed",
            spec.tf_dtype
        )));
    };
    let got = DType::try_from(dtype).unwrap_or(DType::DtypeUnspecified);
    if got != want {
        return Err(Error::Input(format!(
            "input '{name}' of signature '{sig}': expected dtype {}, got {}",
            want.as_str_name().to_lowercase(),
            got.as_str_name().to_lowercase()
        )));
    }
    if let Some(bad) = row_shape.iter().find(|d| **d <= 0) {
        return Err(Error::Input(format!(
            "input '{name}': row dimension {bad} must be positive"
        )));
    }
    if !spec.unknown_rank {
        let inner = spec.shape.get(1..).unwrap_or(&[]);
        let fits = !spec.shape.is_empty()
            && inner.len() == row_shape.len()
            && inner.iter().zip(row_shape).all(|(s, r)| *s < 0 || s == r);
        if !fits {
            return Err(Error::Input(format!(
                "input '{name}' of signature '{sig}': expected shape {}, got rows of {}",
                shape_text(&spec.shape),
                shape_text(row_shape)
            )));
        }
    }
    Ok(tf_type)
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
