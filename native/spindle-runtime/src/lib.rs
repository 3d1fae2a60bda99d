//! Spindle's executor runtime, free of JNI so that it tests without a JVM.
//!
//! - [`tf`]: a small safe wrapper over TensorFlow's C API (sessions, tensors that alias our memory).
//! - [`model`]: a loaded SavedModel and what its signatures offer.
//! - [`feeder`]: a ring of memory-mapped batch slots that the JVM fills and TensorFlow reads in place.
//! - [`ring`]: the workers' authenticated TCP ring and its pipelined all-reduce.
//! - [`trainer`]: one worker of synchronous data-parallel training, fed through a spill file.

pub mod checkpoint;
pub mod error;
pub mod events;
pub mod feeder;
pub mod model;
pub mod ring;
pub mod tf;
pub mod trainer;

pub use error::{Error, Result};
pub use events::EventWriter;
pub use feeder::Feeder;
pub use model::Model;
pub use ring::{Rendezvous, Ring, RingCloser, RingConfig};
pub use trainer::Trainer;
