//! Spindle's JNI entry points, and the only crate with any. Each JVM class with natives has one module
//! here; every entry point is a thin shell that runs an `inner_*` function returning `Result` through
//! [`errors::guard`], which turns errors and panics into typed Java exceptions.

mod errors;
mod handles;
mod native_runtime;
