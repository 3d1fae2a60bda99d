//! The runtime's one error type. Its variant says which layer is at fault; the JNI layer maps each variant
//! to a Java exception class, never by reading the message.

use std::sync::Arc;

/// An error of the runtime, with a message naming the model, tensor, dtype, shape or slot at fault.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The SavedModel is missing, corrupt, or lacks what was asked for, or TensorFlow failed to run it.
    #[error("{0}")]
    Model(String),
    /// The data handed in does not fit the model (dtype, shape, row count, slot state).
    #[error("{0}")]
    Input(String),
    /// An op library (`opLibraries`) cannot be loaded: unreadable, built for another TensorFlow (the
    /// message names both versions), or refused by TensorFlow's loader.
    #[error("{0}")]
    OpLibrary(String),
    /// Cluster or peer trouble (rendezvous, network).
    #[error("{0}")]
    Cluster(String),
    /// Training cannot go on: a loss that turned NaN or infinite, or no data at all. The message names the
    /// step and what went wrong.
    #[error("{0}")]
    Training(String),
    /// A checkpoint cannot be written, read or used (corrupt, of another model).
    #[error("{0}")]
    Checkpoint(String),
    /// The operating system failed a file operation of the runtime's own (the spill file, an event file,
    /// an export): a full disk or a missing permission is not an input error. Checkpoints report their
    /// file trouble as [`Error::Checkpoint`], which callers handle apart.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The OS error; shared, because the error is cloned to every waiter of a failed trainer.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A broken internal invariant, a bad handle, or an OS failure outside file I/O (starting a thread).
    #[error("{0}")]
    Native(String),
}

impl Error {
    /// An [`Error::Io`]: `context` says what failed on which path, `source` why.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source: Arc::new(source),
        }
    }
}

/// Result of the runtime.
pub type Result<T> = std::result::Result<T, Error>;
