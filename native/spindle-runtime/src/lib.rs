//! Spindle's executor runtime, free of JNI so that it tests without a JVM.
//!
//! - [`tf`]: a small safe wrapper over TensorFlow's C API (sessions, tensors that alias our memory).
//! - [`model`]: a loaded SavedModel and what its signatures offer.
//! - [`feeder`]: a ring of memory-mapped batch slots that the JVM fills and TensorFlow reads in place.

pub mod error;
pub mod feeder;
pub mod model;
pub mod tf;

pub use error::{Error, Result};
pub use feeder::Feeder;
pub use model::Model;
