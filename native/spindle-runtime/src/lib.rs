//! Spindle's executor runtime, free of JNI so that it tests without a JVM.
//!
//! Inference and training share:
//! - [`tf`]: a small safe wrapper over TensorFlow's C API (sessions, tensors that alias our memory).
//! - [`model`]: a loaded SavedModel and what its signatures offer.
//! - [`loader`]: a SavedModel loaded into a session placed as the task needs, over `tf`; `saved_model_import`
//!   (internal) imports a graph onto a device of our choosing.
//! - [`op_libraries`]: custom op libraries (tensorflow-text's) checked against the running TensorFlow and
//!   loaded once per process.
//! - [`placement`]: the device a session's graph runs on, from the GPUs Spark gave the task.
//! - [`error`]: the one error type, whose variant says which layer is at fault.
//! - `layout` (internal): where each input lies in a batch buffer and the bytes of a slot, pure arithmetic.
//! - `batch_inputs` (internal): the JVM's inputs checked against a signature and laid out.
//! - `batch` (internal): the tensors read out of a batch buffer, and the run of a signature over them.
//!
//! Inference:
//! - [`feeder`]: a ring of memory-mapped batch slots that the JVM fills and TensorFlow reads in place.
//!
//! Training:
//! - [`trainer`]: one worker of synchronous data-parallel training: its handle, which opens it.
//! - `step_loop` (internal): the worker's epochs and steps, on a thread of its own.
//! - `spill` (internal): the spill file whose windows the JVM fills, and the queue to the trainer thread.
//! - `exchange` (internal): the gradient exchange of several workers (fuse, all-reduce, average, apply).
//! - [`rendezvous`]: how the workers form their ring: bound ports and the HMAC handshake.
//! - [`ring`]: the workers' authenticated TCP ring, its pipelined all-reduce, and the choice of algorithm.
//! - [`algorithms`]: recursive doubling, halving-doubling and two-level all-reduce as pure schedules.
//! - [`cost`]: the cost model that predicts each algorithm's time and picks one.
//! - `mesh` (internal): the partners' connections those algorithms use, and the runner of their steps.
//! - `liveness` (internal): heartbeats between ring neighbours, so that a silent peer fails the ring.
//! - `schedule` (internal): the all-reduce's chunk schedule, pure arithmetic.
//! - `crypto` (internal): when a job encrypts, the keys of each connection and the sealed frame, pure.
//! - `frames` (internal): how sealed frames travel on the ring's, the heartbeats' and the mesh's streams.
//! - [`checkpoint`]: the chief's checkpoints, their hand-off to the JVM's uploader, and restore.
//! - [`events`]: TensorBoard event files of the chief's step metrics.
//! - `validation` (internal): the evaluation after each epoch, summed over the workers, and early stopping.
//!
//! Scripts (`spindle.run`):
//! - [`script_feed`]: spill windows the JVM fills and a Python script reads as NumPy arrays.

pub mod actors;
pub mod algorithms;
mod batch;
mod batch_inputs;
pub mod checkpoint;
pub mod cost;
mod crypto;
pub mod error;
pub mod events;
mod exchange;
pub mod feeder;
mod frames;
mod layout;
mod liveness;
pub mod loader;
mod mesh;
pub mod model;
pub mod op_libraries;
pub mod placement;
mod progress;
pub mod rendezvous;
pub mod ring;
mod saved_model_import;
mod schedule;
pub mod script_feed;
mod spill;
mod step_loop;
pub mod tf;
pub mod trainer;
mod validation;

pub use actors::Actors;
pub use error::{Error, Result};
pub use events::EventWriter;
pub use feeder::Feeder;
pub use model::Model;
pub use rendezvous::{Rendezvous, RingConfig};
pub use ring::{Ring, RingCloser};
pub use script_feed::{Acquired, ScriptFeed};
pub use trainer::Trainer;
