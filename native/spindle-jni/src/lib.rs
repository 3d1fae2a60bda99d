//! Spindle's JNI entry points, and the only crate with any. Each JVM class with natives has one module
//! here. Every entry point is a thin shell that runs its body through [`errors::guard`], which turns
//! errors and panics into typed Java exceptions. The entries that decode a config or create an object
//! (and `init`, `modelInfo`) delegate to an `inner_*` function returning `Result`; the rest, a handle
//! lookup and a call or two, run inline in the guard's closure.

mod errors;
mod handles;
mod log_bridge;
mod native_runtime;
