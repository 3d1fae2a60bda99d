package io.spindle.benches

import java.nio.file.Files

import io.spindle.SpindleEstimator

/** Cost of checkpointing: samples/s of a 1-worker fit of the MNIST MLP (784-128-10, SGD: about 0.4 MB of variables per
  * checkpoint) with a checkpoint every `every` steps into a local `checkpointDir`, against the same fit without
  * checkpoints, in the same run. Samples/s is all examples over the sum of the step times, and a step's time includes
  * the checkpoint after it (the save, or the wait for the previous upload). The two fits alternate; each figure is the
  * best of `repeats` after one untimed fit of each, and the ratio of the medians is printed too. The saver's one-time
  * setup (a first save when the trainer opens) is outside the step times, like the model load.
  *
  * Usage: CheckpointBench [rows=60000] [epochs=3] [repeats=3] [every=100]
  */
object CheckpointBench {
  def main(args: Array[String]): Unit = {
    val rows = Bench.arg(args, 0, 60000)
    val epochs = Bench.arg(args, 1, 3)
    val repeats = Bench.arg(args, 2, 3)
    val every = Bench.arg(args, 3, 100)
    val spark = Bench.spark("spindle-checkpoint-bench")
    val mnist = TrainingBench.data(spark, rows, 784)

    def fit(checkpoints: Boolean): Double = {
      val estimator = new SpindleEstimator()
        .setModelPath("tests/fixtures/mnist_mlp")
        .setInputCols(Map("features" -> "features", "labels" -> "label"))
        .setEpochs(epochs)
        .setBatchSize(256)
        .setIntraOpThreads(1)
        .setInterOpThreads(1)
      // A fresh directory each time: a fit over an earlier fit's checkpoints would resume from them.
      if (checkpoints)
        estimator
          .setCheckpointDir(Files.createTempDirectory("spindle-bench-ckpt").toUri.toString)
          .setCheckpointEverySteps(every)
      val summary = estimator.fit(mnist).summary
      val ms = summary.steps.filter(_.step % every == 0).map(_.checkpointMs)
      println(
        f"  ${if (checkpoints) "checkpoint every " + every else "no checkpoints"}%-22s " +
          f"${summary.examplesPerSecond}%8.0f samples/s" +
          f" (input wait ${summary.steps.map(_.inputWaitMs).sum}%.0f ms, compute ${summary.steps.map(_.computeMs).sum}%.0f ms)" +
          (if (checkpoints) f"; ${ms.size}%d checkpoints, ${ms.sum / ms.size.max(1)}%.1f ms each" else "")
      )
      summary.examplesPerSecond
    }

    fit(false); fit(true) // warm-up
    val runs = (0 until repeats).map(_ => (fit(false), fit(true)))
    val (none, checkpointed) = (runs.map(_._1).max, runs.map(_._2).max)
    println(f"BENCH fit-no-checkpoints ${none}%12.0f samples/s (best of $repeats)")
    println(f"BENCH fit-checkpoint-every-$every ${checkpointed}%12.0f samples/s (best of $repeats)")
    println(f"BENCH ratio checkpointed/none ${checkpointed / none}%.3f (target >= 0.95)")
    // This machine's noise moves single fits by 10% and more: the medians' ratio is the steadier figure.
    def median(xs: Seq[Double]) = xs.sorted.apply(xs.size / 2)
    println(f"BENCH ratio of medians ${median(runs.map(_._2)) / median(runs.map(_._1))}%.3f")
    spark.stop()
  }
}
