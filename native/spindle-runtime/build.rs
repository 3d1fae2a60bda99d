//! Test and example binaries of this crate find libtensorflow through an rpath to the directory
//! ci/setup-tensorflow.sh fills. The JVM-loaded cdylib gets none: the JVM loads TensorFlow first.

fn main() {
    let lib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tensorflow/lib");
    let lib = lib.canonicalize().unwrap_or(lib);
    for kind in ["tests", "examples"] {
        println!("cargo:rustc-link-arg-{kind}=-Wl,-rpath,{}", lib.display());
    }
    println!("cargo:rerun-if-changed=build.rs");
}
