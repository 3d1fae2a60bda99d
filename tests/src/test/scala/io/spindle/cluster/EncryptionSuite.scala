package io.spindle.cluster

import java.io.{BufferedReader, InputStreamReader}
import java.nio.{ByteBuffer, ByteOrder}
import java.nio.file.Files
import java.util.concurrent.TimeUnit

import org.apache.spark.SparkConf
import org.apache.spark.sql.DataFrame

import io.spindle.{SpindleEstimator, TrainingSummary}
import io.spindle.examples.Digits
import io.spindle.internal.Channel

/** Spindle's channels as an eavesdropper on the host sees them: two workers on executor JVMs train while a raw packet
  * socket on the loopback interface records every TCP payload (`tests/python/capture_lo.py`; root or CAP_NET_RAW). The
  * known pattern is the tail of each step's all-reduced buffer: the loss summed over the step's 32 rows, then the 32
  * rows, as float32, which the ring's all-gather sends to every worker and the summary gives back exactly (the step's
  * loss is that sum over 32). It is on the wire when the channels are plain, and nowhere when they are encrypted, while
  * training computes the same bits.
  */
class EncryptionSuite extends ClusterSuite {

  private lazy val digits: DataFrame = Digits.load(spark, digitsCsv.toString).cache()

  /** Trains two workers (16 rows each per step, the ring) with `encrypt` while capturing loopback; the summary and the
    * bytes captured.
    */
  private def fitCaptured(encrypt: Boolean): (TrainingSummary, Array[Byte]) = {
    val dir = tempDir("spindle-capture")
    val (out, stop) = (dir.resolve("captured.bin"), dir.resolve("stop"))
    val capture = new ProcessBuilder(
      repoRoot.resolve(".venv/bin/python").toString,
      repoRoot.resolve("tests/python/capture_lo.py").toString,
      out.toString,
      stop.toString,
      "300"
    ).redirectErrorStream(true).start()
    try {
      val lines = new BufferedReader(new InputStreamReader(capture.getInputStream))
      val first = lines.readLine()
      if (first != "READY") {
        capture.waitFor(10, TimeUnit.SECONDS)
        val why = (first +: Iterator.continually(lines.readLine()).takeWhile(_ != null).toSeq).mkString("\n")
        cancel(s"no packet capture on lo (it needs root or CAP_NET_RAW):\n$why")
      }
      val summary = new SpindleEstimator()
        .setModelPath(fixture("digits_mlp_init"))
        .setInputCols(Map("features" -> "features", "labels" -> "label"))
        .setExportPath(dir.resolve("model").toString)
        .setNumWorkers(2)
        .setBatchSize(16)
        .setEpochs(2)
        .setSeed(1)
        .setShuffle(false)
        .setAllReduceAlgorithm("ring")
        .setEncryptChannels(encrypt)
        .fit(Digits.training(digits))
        .summary
      Files.createFile(stop)
      assert(capture.waitFor(60, TimeUnit.SECONDS), "the capture did not stop")
      val done = lines.readLine()
      assert(done != null && done.startsWith("CAPTURED"), s"capture: $done")
      (summary, Files.readAllBytes(out))
    } finally capture.destroyForcibly()
  }

  /** The tail of each step of 32 rows' all-reduced buffer, float32 little-endian (loss x 32, then 32), as the 8 bytes'
    * little-endian Long.
    */
  private def tails(summary: TrainingSummary): Set[Long] = summary.steps
    .filter(_.examples == 32)
    .map { s =>
      ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putFloat((s.loss * 32).toFloat).putFloat(32f).getLong(0)
    }
    .toSet

  /** How many of `patterns` occur in `captured`, at any offset: one pass over it. */
  private def found(captured: Array[Byte], patterns: Set[Long]): Int = {
    val wire = ByteBuffer.wrap(captured).order(ByteOrder.LITTLE_ENDIAN)
    (0 to captured.length - 8).iterator.map(wire.getLong).filter(patterns.contains).toSet.size
  }

  test("an eavesdropper on loopback sees the all-reduced sums of plain channels and none of encrypted ones") {
    val (plain, plainWire) = fitCaptured(encrypt = false)
    val (secured, securedWire) = fitCaptured(encrypt = true)
    assert(secured.lossHistory.sameElements(plain.lossHistory), "encryption changes no bit of training")
    val patterns = tails(plain)
    assert(patterns.size > 50, s"${patterns.size} distinct steps of 32 rows")
    val seenPlain = found(plainWire, patterns)
    assert(seenPlain >= patterns.size / 2, s"$seenPlain of ${patterns.size} sums on the plain wire")
    assert(found(securedWire, patterns) == 0, "an all-reduced sum crossed the encrypted wire in the clear")
  }

  test("Spark's own encryption switches Spindle's on") {
    assert(!Channel.sparkEncrypts(new SparkConf(false)))
    for (key <- Seq("spark.network.crypto.enabled", "spark.ssl.enabled", "spark.ssl.rpc.enabled"))
      assert(Channel.sparkEncrypts(new SparkConf(false).set(key, "true")), key)
  }
}
