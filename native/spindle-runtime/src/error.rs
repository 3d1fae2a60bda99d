//! The runtime's one error type. Its variant says which layer is at fault; the JNI layer maps each variant
//! to a Java exception class, never by reading the message.

/// An error of the runtime, with a message naming the model, tensor, dtype, shape or slot at fault.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The SavedModel is missing, corrupt, or lacks what was asked for, or TensorFlow failed to run it.
    #[error("{0}")]
    Model(String),
    /// The data handed in does not fit the model (dtype, shape, row count, slot state).
    #[error("{0}")]
    Input(String),
    /// Cluster or peer trouble (rendezvous, network).
    #[error("{0}")]
    Cluster(String),
    /// A checkpoint cannot be written, read or used (corrupt, of another model).
    #[error("{0}")]
    Checkpoint(String),
    /// A broken internal invariant, a bad handle or an OS failure.
    #[error("{0}")]
    Native(String),
}

/// Result of the runtime.
pub type Result<T> = std::result::Result<T, Error>;
