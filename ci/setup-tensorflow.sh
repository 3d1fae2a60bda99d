#!/usr/bin/env bash
# Makes libtensorflow (TF 2.21) available to the Rust build, from Maven Central only.
#
# TensorFlow Java's org.tensorflow:tensorflow-core-native jar (classifier linux-x86_64) carries
# libtensorflow_cc.so.2 and libtensorflow_framework.so.2 with the whole C API. This script fetches it
# with Maven (cached in ~/.m2), extracts both libraries into target/tensorflow/lib, adds the unversioned
# names the linker wants (-ltensorflow -ltensorflow_framework) and writes target/tensorflow/tensorflow.pc,
# which tensorflow-sys's build script finds through PKG_CONFIG_PATH (.cargo/config.toml sets it), so it
# never tries to download a library. Idempotent: does nothing when the jar and libraries are there.
# TF_NATIVE_JAR may name the jar explicitly.
# `setup-tensorflow.sh gpu` instead only fetches the GPU build's jar (classifier linux-x86_64-gpu, 427 MB) into ~/.m2
# and prints its path: the tests load it in place of the CPU build on a machine without a GPU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="${TF_JAVA_VERSION:-1.2.0}"
if [[ "${1:-}" == gpu ]]; then
  gpu="$HOME/.m2/repository/org/tensorflow/tensorflow-core-native/$version/tensorflow-core-native-$version-linux-x86_64-gpu.jar"
  if [[ ! -f "$gpu" ]]; then
    echo "[tensorflow] fetching org.tensorflow:tensorflow-core-native:$version:linux-x86_64-gpu from Maven Central" >&2
    mvn -q -B dependency:get -Dartifact="org.tensorflow:tensorflow-core-native:$version:jar:linux-x86_64-gpu" \
      -Dtransitive=false >&2
  fi
  echo "$gpu"
  exit 0
fi
out="$root/target/tensorflow"
lib="$out/lib"
jar="${TF_NATIVE_JAR:-$HOME/.m2/repository/org/tensorflow/tensorflow-core-native/$version/tensorflow-core-native-$version-linux-x86_64.jar}"
if [[ ! -f "$jar" ]]; then
  echo "[tensorflow] fetching org.tensorflow:tensorflow-core-native:$version:linux-x86_64 from Maven Central" >&2
  mvn -q -B dependency:get -Dartifact="org.tensorflow:tensorflow-core-native:$version:jar:linux-x86_64" \
    -Dtransitive=false >&2
fi
if [[ -f "$out/tensorflow.pc" && -f "$lib/libtensorflow_cc.so.2" ]]; then exit 0; fi
rm -rf "$out" && mkdir -p "$lib"
unzip -q -j -o "$jar" 'org/tensorflow/internal/c_api/linux-x86_64/libtensorflow_cc.so.2' \
  'org/tensorflow/internal/c_api/linux-x86_64/libtensorflow_framework.so.2' -d "$lib"
ln -sf libtensorflow_cc.so.2 "$lib/libtensorflow.so"
ln -sf libtensorflow_framework.so.2 "$lib/libtensorflow_framework.so"
cat > "$out/tensorflow.pc" <<PC
libdir=$lib
Name: tensorflow
Description: TensorFlow C API (from org.tensorflow:tensorflow-core-native:$version)
Version: 2.21.0
Libs: -L\${libdir} -ltensorflow -ltensorflow_framework
Cflags:
PC
echo "[tensorflow] libraries ready in $lib" >&2
