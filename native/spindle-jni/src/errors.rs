//! The JNI layer's one error type, and the guard every entry point runs under: a Rust error or panic
//! never crosses into the JVM raw; it becomes a Java exception of Spindle's hierarchy, classified by
//! variant (never by message text).

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

use jni::JNIEnv;
use spindle_runtime::Error as RuntimeError;

/// An error of the JNI layer.
#[derive(Debug)]
pub enum JniError {
    /// Raised by the runtime.
    Runtime(RuntimeError),
    /// A JNI call failed; when a Java exception is pending it is left to propagate unchanged.
    Jni(jni::errors::Error),
    /// Bytes from the JVM that are not the protobuf message expected.
    Decode(String),
}

impl From<RuntimeError> for JniError {
    fn from(e: RuntimeError) -> Self {
        JniError::Runtime(e)
    }
}

impl From<jni::errors::Error> for JniError {
    fn from(e: jni::errors::Error) -> Self {
        JniError::Jni(e)
    }
}

/// Result of the JNI layer.
pub type Result<T> = std::result::Result<T, JniError>;

const MODEL: &str = "io/spindle/SpindleModelException";
const INPUT: &str = "io/spindle/SpindleInputException";
const CLUSTER: &str = "io/spindle/SpindleClusterException";
const NATIVE: &str = "io/spindle/SpindleNativeException";
const CHECKPOINT: &str = "io/spindle/SpindleCheckpointException";
const TRAINING: &str = "io/spindle/SpindleTrainingException";
const IO: &str = "io/spindle/SpindleIOException";
const OP_LIBRARY: &str = "io/spindle/SpindleOpLibraryException";

fn class_and_message(e: &JniError) -> (&'static str, String) {
    match e {
        JniError::Runtime(RuntimeError::Model(m)) => (MODEL, m.clone()),
        JniError::Runtime(RuntimeError::Input(m)) => (INPUT, m.clone()),
        JniError::Runtime(RuntimeError::Cluster(m)) => (CLUSTER, m.clone()),
        JniError::Runtime(RuntimeError::OpLibrary(m)) => (OP_LIBRARY, m.clone()),
        JniError::Runtime(RuntimeError::Native(m)) => (NATIVE, m.clone()),
        JniError::Runtime(RuntimeError::Checkpoint(m)) => (CHECKPOINT, m.clone()),
        JniError::Runtime(RuntimeError::Training(m)) => (TRAINING, m.clone()),
        // A failed file operation of the runtime's own (spill file, event file, export): neither the
        // model's nor the input's fault. The message carries the context and the OS error.
        JniError::Runtime(e @ RuntimeError::Io { .. }) => (IO, e.to_string()),
        JniError::Jni(jni::errors::Error::NullPtr(what)) => {
            (NATIVE, format!("null argument: {what}"))
        }
        JniError::Jni(e) => (NATIVE, format!("JNI call failed: {e}")),
        JniError::Decode(m) => (NATIVE, m.clone()),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".to_string())
}

fn throw(env: &mut JNIEnv, class: &str, message: &str) {
    // Never throw over a pending exception: that one is the real cause and propagates as it is.
    if env.exception_check().unwrap_or(true) {
        return;
    }
    if env.throw_new(class, message).is_err() && !env.exception_check().unwrap_or(true) {
        let _ = env.throw_new("java/lang/RuntimeException", message);
    }
}

/// Runs an entry point's body, catching every panic; on error or panic throws the matching Java exception
/// and returns `default` (which the JVM ignores because an exception is pending).
pub fn guard<'l, T, F>(env: &mut JNIEnv<'l>, default: T, body: F) -> T
where
    F: FnOnce(&mut JNIEnv<'l>) -> Result<T>,
{
    match panic::catch_unwind(AssertUnwindSafe(|| body(env))) {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => {
            let (class, message) = class_and_message(&e);
            throw(env, class, &message);
            default
        }
        Err(payload) => {
            let message = format!(
                "panic in Spindle's native runtime: {}",
                panic_message(&*payload)
            );
            throw(env, NATIVE, &message);
            default
        }
    }
}
