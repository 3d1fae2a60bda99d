//! Generates Rust types for the one .proto tree at the repository root, with the protoc that
//! `protoc-bin-vendored` ships (36.2, the same version the JVM build uses), never a system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        root.join("spindle/runtime.proto"),
        root.join("tensorflow/meta_graph_subset.proto"),
        root.join("tensorflow/event_subset.proto"),
        root.join("tensorflow/example_subset.proto"),
    ];
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    prost_build::Config::new().compile_protos(&files, &[root])?;
    Ok(())
}
