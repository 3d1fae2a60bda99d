"""Spark's own Parquet scan of the issue 35 data against the native reader, in alternating rounds. See
benches/parquet-native.sh.

Usage: parquet_scan.py DIR ROWS REPEATS WIDTH [NATIVE_BINARY]

Writes DIR once (if DIR/_SUCCESS is missing): ROWS rows of `id` and `features`, an array<float> of WIDTH values
(pseudo-random: a hash of the row and position scaled into [-1, 1], so that snappy finds nothing to compress, as with
random floats), `.repartition(2)`, Spark's default codec (snappy) and row group size. Then REPEATS + 1 rounds, the
first untimed, each of, on local[2]:
- spark noop: `spark.read.parquet(DIR).write.format("noop")`: the vectorized reader decodes every value of each batch;
- spark max: the same scan taking `array_max` of every row (generated code reading every float), for reference;
- native: NATIVE_BINARY (benches/parquet-native) once over the part files, every reader on 1 and 2 threads.
Alternating keeps the machine's drift (other work on the 2 cores) from landing on one side only. Prints
`TIMES <side> k=v ... rows=N ms t1 t2 ...` lines, and checksums that must agree (each row's first and last value,
summed).
"""

import glob
import os
import re
import subprocess
import sys
import time

from pyspark.sql import SparkSession

DIR, ROWS, REPEATS, WIDTH = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
NATIVE = sys.argv[5] if len(sys.argv) > 5 else None

spark = (
    SparkSession.builder.master("local[2]")
    .appName("parquet-scan")
    .config("spark.driver.memory", "2g")
    .config("spark.ui.enabled", "false")
    .config("spark.sql.shuffle.partitions", "2")
    .getOrCreate()
)
spark.sparkContext.setLogLevel("WARN")
conf = spark.conf
print(
    f"[spark] {spark.version}; vectorized {conf.get('spark.sql.parquet.enableVectorizedReader')}, "
    f"nested vectorized {conf.get('spark.sql.parquet.enableNestedColumnVectorizedReader')}, "
    f"codec {conf.get('spark.sql.parquet.compression.codec')}, "
    f"maxPartitionBytes {conf.get('spark.sql.files.maxPartitionBytes')}",
    flush=True,
)

if not os.path.exists(os.path.join(DIR, "_SUCCESS")):
    t = time.perf_counter()
    (
        spark.range(ROWS)
        .selectExpr(
            "id",
            f"transform(sequence(0, {WIDTH - 1}), i -> cast(hash(id, i) / 2147483648D as float)) as features",
        )
        .repartition(2)
        .write.mode("overwrite")
        .parquet(DIR)
    )
    print(f"[spark] wrote {DIR} in {time.perf_counter() - t:.1f} s", flush=True)

files = sorted(glob.glob(os.path.join(DIR, "part-*.parquet")))
df = spark.read.parquet(DIR)
check = df.selectExpr(f"double(features[0]) + double(features[{WIDTH - 1}]) as c").agg({"c": "sum"}).collect()[0][0]
print(f"[spark] {len(files)} files, {df.rdd.getNumPartitions()} scan tasks; checksum {check:.6e}", flush=True)


def noop():
    df.write.format("noop").mode("overwrite").save()


def array_max():
    df.selectExpr("array_max(features) as m").agg({"m": "max"}).collect()


times = {}
for i in range(REPEATS + 1):
    for name, run in (("spark case=noop", noop), ("spark case=max", array_max)):
        t = time.perf_counter()
        run()
        if i > 0:
            times.setdefault(name, []).append((time.perf_counter() - t) * 1e3)
    if NATIVE:
        out = subprocess.run(
            [NATIVE, "--width", str(WIDTH), "--repeats", "1", "--warmup", "0", *files],
            check=True,
            capture_output=True,
            text=True,
        )
        if i == 0:
            print("[native] " + out.stderr.strip().replace("\n", "\n[native] "), flush=True)
            print("[native] " + next(s for s in out.stdout.splitlines() if s.startswith("LAYOUT")), flush=True)
        if i > 0:
            for line in out.stdout.splitlines():
                m = re.match(r"TIMES (native .*) rows=\d+ groups=\d+ ms (\S+)$", line)
                if m:
                    times.setdefault(m.group(1), []).append(float(m.group(2)))

for name, ms in times.items():
    print(f"TIMES {name} rows={ROWS} ms {' '.join(f'{t:.2f}' for t in ms)}", flush=True)

spark.stop()
