//! Protobuf messages shared with the JVM (`spindle`) and the subset of TensorFlow's own messages the
//! runtime reads or writes (`tensorflow`). Generated at build time from `proto/`.

/// Spindle's control messages (`proto/spindle/runtime.proto`).
pub mod spindle {
    include!(concat!(env!("OUT_DIR"), "/spindle.rs"));
}

/// Wire-compatible subset of TensorFlow's MetaGraphDef, ConfigProto, the Event and Summary of event files, and
/// tf.train.Example.
pub mod tensorflow {
    include!(concat!(env!("OUT_DIR"), "/tensorflow.rs"));
}

pub use prost::Message;
