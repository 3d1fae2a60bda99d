package io.spindle

import java.nio.file.{Files, Path, Paths}

import scala.jdk.CollectionConverters._
import scala.util.Random

import org.apache.commons.io.FileUtils

import org.apache.spark.scheduler.{
  SparkListener,
  SparkListenerExecutorMetricsUpdate,
  SparkListenerJobStart,
  SparkListenerStageCompleted,
  SparkListenerTaskEnd
}
import org.apache.spark.sql.DataFrame
import org.apache.spark.sql.functions.{col, lit, when}

import io.spindle.proto.CheckpointInfo

/** Training in `local[2]` (workers are threads of this JVM, still joined by a real TCP ring): params, schema checks,
  * learning, failure handling. The multi-JVM suite is tests/.../TrainingClusterSuite.
  */
class SpindleEstimatorSuite extends SpindleTestBase {

  // Progress travels with executor heartbeats: a short interval lets a test see it.
  override protected def sparkConf: Map[String, String] = Map(
    "spark.executor.heartbeatInterval" -> "500ms",
    "spark.hadoop.fs.fakeremote.impl" -> classOf[FakeRemoteFileSystem].getName
  )

  /** A learnable digits-shaped set: 64 features in [0, 1), raised by 0.5 in the label's group of six. */
  private def synthetic(rows: Int, partitions: Int, seed: Int = 1): DataFrame = {
    val s = spark
    import s.implicits._
    val random = new Random(seed)
    (0 until rows)
      .map { i =>
        val label = random.nextInt(10)
        val x = Array.tabulate(64)(j => random.nextFloat() + (if (j / 6 == label) 0.5f else 0f))
        (i, x, label.toLong)
      }
      .toDF("id", "pixels", "digit")
      .repartition(partitions)
  }

  private def estimator = new SpindleEstimator()
    .setModelPath(fixture("digits_mlp_init"))
    .setInputCols(Map("features" -> "pixels", "labels" -> "digit"))
    .setExportPath(tempDir("spindle-export").resolve("model").toString)

  test("one worker learns over replayed epochs, and the fitted model scores with the trained weights") {
    val data = synthetic(800, 1)
    val called = System.currentTimeMillis()
    val fitted = estimator.setBatchSize(50).setEpochs(4).fit(data)
    val returned = System.currentTimeMillis()
    val summary = fitted.summary
    assert(
      summary.firstStepDoneMillis >= called && summary.firstStepDoneMillis <= returned,
      summary.firstStepDoneMillis
    )
    assert(summary.steps.size == 4 * 16)
    assert(summary.rowsPerWorker == Seq(800L))
    // The same summary as a Java caller reads it (JavaApiUsage, compiled by javac).
    val lastEpochLoss = summary.epochs.last.loss
    assert(
      JavaApiUsage.describe(summary) ==
        s"64 steps, last loss ${summary.steps.last.loss}; epoch 1 ${summary.epochs.head.loss}; epoch 2 " +
        s"${summary.epochs(1).loss}; epoch 3 ${summary.epochs(2).loss}; epoch 4 $lastEpochLoss; rows 800 on 1 workers"
    )
    val byEpoch = summary.steps.groupBy(_.epoch).map { case (e, s) => e -> s.map(_.loss).sum / s.size }
    assert(byEpoch(4) < byEpoch(1) * 0.8, s"mean loss per epoch: $byEpoch")
    assert(fitted.getInputCols == Map("features" -> "pixels"), "the serving signature has no labels")
    val scored = fitted.transform(data).select("probabilities").collect()
    assert(scored.length == 800 && scored.forall(_.getSeq[Float](0).size == 10))
    val before = SpindleModel.fromSavedModel(fixture("digits_mlp_init")).setInputCols(Map("features" -> "pixels"))
    val first = before.transform(data.limit(1)).select("probabilities").head().getSeq[Float](0)
    assert(first != fitted.transform(data.limit(1)).select("probabilities").head().getSeq[Float](0))
  }

  test("two workers in one JVM average their gradients over the ring: 2 x batch B trains as 1 x batch 2B") {
    val s = spark
    import s.implicits._
    // mnist_mlp trains with plain SGD, whose step is linear in the gradient: a sum where a mean belongs, or a wrong
    // weight, changes the weights (Adam's normalised step would hide it). Partition p of the 2-worker data holds rows
    // [100p, 100p + 100); the 1-worker data interleaves their blocks of 25, so its batch k of 50 rows is the union of
    // the two workers' batches k.
    val random = new Random(5)
    val rows = (0 until 200).map(i => (i, Array.fill(784)(random.nextFloat()), random.nextInt(10).toLong))
    val interleaved =
      (0 until 4).flatMap(k => rows.slice(25 * k, 25 * k + 25) ++ rows.slice(100 + 25 * k, 125 + 25 * k))
    val two = spark.sparkContext.parallelize(rows, 2).toDF("id", "pixels", "digit")
    val one = spark.sparkContext.parallelize(interleaved, 1).toDF("id", "pixels", "digit")
    def mnist = estimator.setModelPath(fixture("mnist_mlp")).setShuffle(false)
    val pair = mnist.setNumWorkers(2).setBatchSize(25).fit(two).summary
    val single = mnist.setBatchSize(50).fit(one).summary
    assert(pair.numWorkers == 2 && pair.rowsPerWorker == Seq(100L, 100L))
    assert(pair.steps.map(_.examples) == Seq(50L, 50L, 50L, 50L))
    for ((a, b) <- pair.steps.zip(single.steps))
      assert(math.abs(a.loss - b.loss) <= 1e-5 * math.abs(b.loss), s"step ${a.step}: loss ${a.loss} vs ${b.loss}")
    assert(pair.steps.last.loss < pair.steps.head.loss, "the steps learn")
    assert(pair.variables.nonEmpty && pair.variables.keySet == single.variables.keySet)
    for ((name, x) <- pair.variables; y = single.variables(name); i <- x.indices)
      assert(math.abs(x(i) - y(i)) <= 1e-7 + 1e-5 * math.abs(y(i)), s"$name[$i]: ${x(i)} vs ${y(i)}")
  }

  test("the exported SavedModel loads in Python's TensorFlow and predicts what the fitted model predicts") {
    val data = synthetic(300, 1)
    val fitted = estimator.setBatchSize(30).setEpochs(2).fit(data)
    val rows = data.orderBy("id").limit(25).select("pixels").collect().map(_.getSeq[Float](0))
    val csv = tempDir("spindle-rows").resolve("rows.csv")
    Files.write(csv, rows.map(_.mkString(",")).mkString("\n").getBytes)
    val expected =
      python("predict_savedmodel.py", fitted.getModelPath, csv.toString).map(_.split(',').map(_.toFloat).toSeq)
    val spindle = fitted
      .transform(data.orderBy("id").limit(25))
      .select("probabilities")
      .collect()
      .map(_.getSeq[Float](0))
    assert(expected.size == 25 && spindle.length == 25)
    for ((p, s) <- expected.zip(spindle); (a, b) <- p.zip(s))
      assert(math.abs(a - b) <= 1e-6f, s"Python's TensorFlow $p vs Spindle $s")
  }

  test("progress reaches the driver while training runs, and the stage's accumulators hold the last step") {
    val live = new java.util.concurrent.ConcurrentLinkedQueue[Long]()
    val liveEpochs = new java.util.concurrent.ConcurrentLinkedQueue[Long]()
    val liveRates = new java.util.concurrent.ConcurrentLinkedQueue[Double]()
    val atEnd = new java.util.concurrent.ConcurrentLinkedQueue[(String, String)]()
    val listener = new SparkListener {
      override def onExecutorMetricsUpdate(u: SparkListenerExecutorMetricsUpdate): Unit =
        for ((_, _, _, infos) <- u.accumUpdates; i <- infos; v <- i.update) i.name match {
          case Some("spindle: training step")    => live.add(v.asInstanceOf[Long])
          case Some("spindle: training epoch")   => liveEpochs.add(v.asInstanceOf[Long])
          case Some("spindle: training steps/s") => liveRates.add(v.asInstanceOf[Double])
          case _                                 =>
        }
      override def onStageCompleted(c: SparkListenerStageCompleted): Unit =
        c.stageInfo.accumulables.values
          .filter(_.name.exists(_.startsWith("spindle: ")))
          .foreach(i => atEnd.add(i.name.get -> i.value.get.toString))
    }
    spark.sparkContext.addSparkListener(listener)
    val summary =
      try estimator.setBatchSize(10).setEpochs(400).fit(synthetic(400, 1)).summary
      finally {
        val deadline = System.nanoTime() + 10e9.toLong // listener events arrive asynchronously
        while (atEnd.size < 6 && System.nanoTime() < deadline) Thread.sleep(50)
        spark.sparkContext.removeSparkListener(listener)
      }
    val total = summary.steps.size.toLong
    assert(total == 16000)
    assert(live.asScala.exists(s => s > 0 && s < total), s"a step seen while training ran: ${live.asScala}")
    val last = atEnd.asScala.toMap
    assert(last.get("spindle: training step").contains(total.toString), s"stage accumulators: $last")
    assert(last.get("spindle: training loss").map(_.toDouble).contains(summary.steps.last.loss), s"$last")
    assert(last.get("spindle: training epoch").contains("400"), s"$last")
    assert(last.get("spindle: epochs done").contains("400"), s"$last")
    assert(last.get("spindle: epoch loss").map(_.toDouble).contains(summary.epochs.last.loss), s"$last")
    assert(
      liveEpochs.asScala.exists(e => e >= 1 && e < 400),
      s"an epoch seen while training ran: ${liveEpochs.asScala}"
    )
    // 16,000 steps take seconds: the rate of a second in between is thousands of steps, and never more than them all.
    assert(liveRates.asScala.exists(r => r > 10 && r <= total), s"step rates seen: ${liveRates.asScala}")
  }

  test("the chief's TensorBoard events read back with TensorBoard's own reader: every step's loss and timings") {
    val dir = tempDir("spindle-tensorboard")
    val summary =
      estimator
        .setNumWorkers(2)
        .setBatchSize(25)
        .setEpochs(2)
        .setTensorboardDir(dir.toString)
        .fit(synthetic(300, 2))
        .summary
    val events = python("read_events.py", dir.toString).map(_.split('\t')).groupBy(_(0))
    val tags = Set("loss", "examples_per_second", "epoch/loss") ++
      Seq("input_wait", "compute", "allreduce", "checkpoint").map("step_time_ms/" + _)
    assert(events.keySet == tags)
    val loss = events("loss").map(e => e(1).toLong -> e(2).toFloat)
    assert(loss == summary.steps.map(s => s.step -> s.loss.toFloat), "one loss per step, as float32")
    // Each epoch's mean loss, at the global step it ended on.
    val lastSteps = summary.steps.groupBy(_.epoch).toSeq.sortBy(_._1).map(_._2.map(_.step).max)
    val epochLoss = events("epoch/loss").map(e => e(1).toLong -> e(2).toFloat)
    assert(epochLoss == lastSteps.zip(summary.epochs.map(_.loss.toFloat)), "one mean loss per epoch")
    assert(events("step_time_ms/allreduce").map(_(2).toDouble).exists(_ > 0), "two workers all-reduce")
  }

  test("a coalesced or unioned DataFrame trains: a barrier stage cannot run over their lineage, so it is shuffled") {
    for (data <- Seq(synthetic(400, 4).coalesce(2), synthetic(200, 1).union(synthetic(200, 1, seed = 2)))) {
      val summary = estimator.setNumWorkers(2).setBatchSize(50).fit(data).summary
      assert(summary.rowsPerWorker.sum == 400, summary.rowsPerWorker)
    }
  }

  test("a missing label column is named before any task starts") {
    val e = failureOf[SpindleInputException](estimator.fit(synthetic(10, 1).drop("digit")))
    assert(e.getMessage.contains("column 'digit'") && e.getMessage.contains("labels"), e.getMessage)
  }

  test("a bad row on one worker fails the job with a typed exception, and its peer does not hang") {
    val data = synthetic(400, 2).withColumn("pixels", when(col("id") === 300, lit(null)).otherwise(col("pixels")))
    val started = System.nanoTime()
    val e = failureOf[SpindleInputException](estimator.setNumWorkers(2).setBatchSize(20).setEpochs(2).fit(data))
    assert(e.getMessage.contains("column 'pixels'") && e.getMessage.contains("null"), e.getMessage)
    assert((System.nanoTime() - started) / 1e9 < 60)
  }

  test("more workers than task slots fails at once") {
    val e = failureOf[SpindleClusterException](estimator.setNumWorkers(3).fit(synthetic(10, 1)))
    assert(e.getMessage.contains("needs 3 task slots") && e.getMessage.contains("has 2"), e.getMessage)
  }

  test("the estimator's params persist") {
    val path = tempDir("spindle-estimator").resolve("stage").toString
    estimator
      .setNumWorkers(2)
      .setEpochs(3)
      .setSeed(9)
      .setOverwriteExport(true)
      .setTerminateOnNaN(false)
      .setHeartbeatTimeout(12)
      .write
      .save(path)
    val loaded = SpindleEstimator.load(path)
    assert(loaded.getNumWorkers == 2 && loaded.getEpochs == 3 && loaded.getSeed == 9)
    assert(loaded.getOverwriteExport && !loaded.getTerminateOnNaN && loaded.getHeartbeatTimeout == 12)
    assert(loaded.getInputCols == Map("features" -> "pixels", "labels" -> "digit"))
  }

  /** Checkpoint directories of `dir`, by name. */
  private def checkpointsIn(dir: Path): Seq[String] =
    Option(dir.toFile.list()).toSeq.flatten.filter(_.startsWith("ckpt-")).sortBy(_.drop(5).toInt)

  private def copyTree(from: Path, to: Path): Unit =
    FileUtils.copyDirectory(from.toFile, to.toFile)

  private def assertSameWeights(a: TrainingSummary, b: TrainingSummary): Unit = {
    assert(a.variables.nonEmpty && a.variables.keySet == b.variables.keySet)
    for ((name, x) <- a.variables; y = b.variables(name); i <- x.indices)
      assert(math.abs(x(i) - y(i)) <= 1e-6 * math.max(math.abs(y(i)), 1e-3), s"$name[$i]: ${x(i)} vs ${y(i)}")
  }

  test("checkpoints every N steps keep the newest K; a fit over a checkpointDir resumes to the same weights") {
    val data = synthetic(400, 2).cache()
    data.count()
    val first = tempDir("spindle-ckpt")
    def fit(dir: Path) = estimator
      .setNumWorkers(2)
      .setBatchSize(25)
      .setEpochs(3)
      .setCheckpointDir(dir.toUri.toString)
      .setCheckpointEverySteps(4)
      .setKeepCheckpoints(3)
      .fit(data)
      .summary
    val full = fit(first)
    assert(full.steps.size == 24, "200 rows a worker in batches of 25: 8 steps an epoch")
    assert(checkpointsIn(first) == Seq("ckpt-16", "ckpt-20", "ckpt-24"))
    val info = CheckpointInfo.parseFrom(Files.readAllBytes(first.resolve("ckpt-20/checkpoint.pb")))
    assert((info.getStep, info.getEpoch, info.getEpochStep) == (20L, 3, 4L))

    // A directory holding step 16 and a half-written step 20: the resumed fit takes 16 and ignores the other.
    val second = tempDir("spindle-ckpt")
    copyTree(first.resolve("ckpt-16"), second.resolve("ckpt-16"))
    Files.createDirectories(second.resolve(".ckpt-20.incomplete"))
    val resumed = fit(second)
    // The history saved with the checkpoint, then the steps run after it: the whole training, as the full run's.
    assert(info.getStepsList.asScala.map(_.getLoss) == full.steps.take(20).map(_.loss))
    assert(resumed.steps.map(_.step) == (1L to 24L))
    assert(resumed.steps.take(16).map(_.loss) == full.steps.take(16).map(_.loss))
    assert(resumed.steps.map(_.examples) == full.steps.map(_.examples))
    assert(resumed.epochs.map(_.epoch) == Seq(1, 2, 3))
    val Seq(attempt) = resumed.attempts
    assert(attempt.resumedFrom.endsWith("/ckpt-16") && attempt.stepsDone == 8 && attempt.ended == "completed")
    assertSameWeights(resumed, full)
  }

  test("on a non-local Hadoop FileSystem, checkpoints and TensorBoard events are copied there, and resumed from") {
    val data = synthetic(200, 1).cache()
    val (checkpoints, events) = (tempDir("spindle-ckpt"), tempDir("spindle-tensorboard"))
    def fit(epochs: Int) = estimator
      .setBatchSize(25)
      .setEpochs(epochs)
      .setCheckpointDir(s"fakeremote://$checkpoints")
      .setCheckpointEverySteps(4)
      .setTensorboardDir(s"fakeremote://$events")
      .fit(data)
      .summary
    assert(fit(1).steps.size == 8)
    assert(checkpointsIn(checkpoints) == Seq("ckpt-4", "ckpt-8"))
    assert(Files.isRegularFile(checkpoints.resolve("ckpt-8/checkpoint.pb")))
    assert(python("read_events.py", events.toString).count(_.startsWith("loss\t")) == 8, "the events were copied")
    // Two epochs over the directory: epoch 1 is done (step 8 is its last), so only epoch 2 runs; the summary still
    // reports both, epoch 1's from the checkpoint.
    val resumed = fit(2)
    assert(resumed.steps.map(_.step) == (1L to 16L) && resumed.attempts.map(_.stepsDone) == Seq(8L))
    assert(checkpointsIn(checkpoints) == Seq("ckpt-8", "ckpt-12", "ckpt-16"))
  }

  test("an unwritable, corrupt or foreign checkpoint is a SpindleCheckpointException naming it; nothing is lost") {
    val data = synthetic(200, 1).cache()
    def fit(dir: String) = estimator.setBatchSize(25).setCheckpointDir(dir).setCheckpointEverySteps(4).fit(data)
    val notADir = tempDir("spindle-ckpt").resolve("file")
    Files.write(notADir, Array[Byte](1))
    val unwritable = failureOf[SpindleCheckpointException](fit(notADir.resolve("checkpoints").toString))
    assert(unwritable.getMessage.contains(notADir.resolve("checkpoints").toString), unwritable.getMessage)

    val good = tempDir("spindle-ckpt")
    fit(good.toString)
    assert(checkpointsIn(good) == Seq("ckpt-4", "ckpt-8"))

    val corrupt = tempDir("spindle-ckpt")
    copyTree(good, corrupt)
    val dataFile = corrupt.resolve("ckpt-8/variables.data-00000-of-00001")
    Files.write(dataFile, Files.readAllBytes(dataFile).take(100))
    Files.deleteIfExists(corrupt.resolve("ckpt-8/.variables.data-00000-of-00001.crc"))
    val e = failureOf[SpindleCheckpointException](fit(corrupt.toString))
    assert(e.getMessage.contains("ckpt-8") && e.getMessage.contains(corrupt.toString), e.getMessage)
    assert(checkpointsIn(corrupt) == Seq("ckpt-4", "ckpt-8") && Files.size(dataFile) == 100, "nothing deleted")

    val foreign = tempDir("spindle-ckpt")
    copyTree(good.resolve("ckpt-8"), foreign.resolve("ckpt-8"))
    val infoFile = foreign.resolve("ckpt-8/checkpoint.pb")
    val other = CheckpointInfo.parseFrom(Files.readAllBytes(infoFile)).toBuilder.setModelFingerprint("another model")
    Files.write(infoFile, other.build().toByteArray)
    Files.deleteIfExists(foreign.resolve("ckpt-8/.checkpoint.pb.crc"))
    val f = failureOf[SpindleCheckpointException](fit(foreign.toString))
    assert(f.getMessage.contains("different model") && f.getMessage.contains(foreign.toString), f.getMessage)
  }
  test("an existing non-empty exportPath fails before any job; overwriteExport replaces it only once complete") {
    val target = tempDir("spindle-export").resolve("production")
    Files.createDirectories(target)
    Files.write(target.resolve("last-week.txt"), "the model in production".getBytes)
    val data = synthetic(100, 1)
    org.apache.spark.SpindleTestShim.waitForListeners(spark.sparkContext) // earlier tests' events are delivered
    val jobs = new java.util.concurrent.atomic.AtomicInteger()
    val listener = new SparkListener {
      override def onJobStart(start: SparkListenerJobStart): Unit = jobs.incrementAndGet()
    }
    spark.sparkContext.addSparkListener(listener)
    val refused =
      try failureOf[SpindleInputException](estimator.setExportPath(target.toString).setBatchSize(25).fit(data))
      finally {
        org.apache.spark.SpindleTestShim.waitForListeners(spark.sparkContext)
        spark.sparkContext.removeSparkListener(listener)
      }
    assert(refused.getMessage.contains(target.toString) && refused.getMessage.contains("setOverwriteExport"))
    assert(jobs.get == 0, "no job ran")
    assert(Files.readAllLines(target.resolve("last-week.txt")).get(0) == "the model in production")

    // A fit that fails (a null row) with overwriteExport leaves the previous model as it was.
    val bad = data.withColumn("pixels", when(col("id") === 60, lit(null)).otherwise(col("pixels")))
    failureOf[SpindleInputException](
      estimator.setExportPath(target.toString).setOverwriteExport(true).setBatchSize(25).fit(bad)
    )
    assert(target.toFile.list().toSeq == Seq("last-week.txt"))
    assert(!target.getParent.toFile.list().exists(_ != "production"), "no staging left beside it")

    val fitted = estimator.setExportPath(target.toString).setOverwriteExport(true).setBatchSize(25).fit(data)
    assert(Files.isRegularFile(target.resolve("saved_model.pb")) && !Files.exists(target.resolve("last-week.txt")))
    assert(target.getParent.toFile.list().toSeq == Seq("production"), "the old content went once the new was in place")
    assert(fitted.transform(data).count() == 100)
  }

  test("an exportPath equal to or inside modelPath or checkpointDir is refused") {
    val model = tempDir("spindle-model").resolve("init")
    copyTree(Paths.get(fixture("digits_mlp_init")), model)
    val inside = failureOf[SpindleInputException](
      estimator.setModelPath(model.toString).setExportPath(model.resolve("trained").toString).fit(synthetic(10, 1))
    )
    assert(inside.getMessage.contains("modelPath") && inside.getMessage.contains(model.toString), inside.getMessage)
    val checkpoints = tempDir("spindle-ckpt")
    val same = failureOf[SpindleInputException](
      estimator.setCheckpointDir(checkpoints.toString).setExportPath(checkpoints.toString).fit(synthetic(10, 1))
    )
    assert(same.getMessage.contains("checkpointDir"), same.getMessage)
    assert(Files.isRegularFile(model.resolve("saved_model.pb")), "the model trained from is untouched")
  }

  test("a DataFrame with no rows fails fit, saying no worker received a row") {
    val empty = synthetic(100, 2).filter(col("id") < 0)
    for (workers <- Seq(1, 2)) {
      val e = failureOf[SpindleTrainingException](estimator.setNumWorkers(workers).fit(empty))
      assert(e.getMessage.contains("no worker received a row"), e.getMessage)
    }
  }

  test("a diverging loss stops training at its first NaN or infinite step, naming it and the last finite loss") {
    val checkpoints = tempDir("spindle-ckpt")
    val data = synthetic(400, 1).withColumn("target", col("digit").cast("float"))
    def diverging = new SpindleEstimator()
      .setModelPath(fixture("diverging_regression"))
      .setInputCols(Map("features" -> "pixels", "labels" -> "target"))
      .setExportPath(tempDir("spindle-export").resolve("model").toString)
      .setBatchSize(20)
    val e = failureOf[SpindleTrainingException](
      diverging.setCheckpointDir(checkpoints.toString).setCheckpointEverySteps(1).fit(data)
    )
    val step = """step (\d+)""".r.findFirstMatchIn(e.getMessage).map(_.group(1).toInt)
    assert(step.exists(s => s >= 2 && s <= 6), e.getMessage)
    assert(e.getMessage.contains("last finite loss"), e.getMessage)
    val kept = checkpointsIn(checkpoints)
    assert(kept.nonEmpty && kept.forall(_.drop(5).toInt < step.get), s"checkpoints before the NaN stay: $kept")
    // Two workers see the same all-reduced loss and stop at the same step.
    val two = failureOf[SpindleTrainingException](diverging.setNumWorkers(2).fit(data.repartition(2)))
    assert(two.getMessage.contains("last finite loss"), two.getMessage)
    // Switched off, training runs to the end with a non-finite loss.
    val summary = diverging.setTerminateOnNaN(false).fit(data).summary
    assert(summary.steps.size == 20 && summary.lossHistory.exists(l => l.isNaN || l.isInfinite))
  }

  test("a batch too large for the task's memory is a typed error naming batchSize, numSlots and the budget") {
    val e = failureOf[SpindleInputException](estimator.setBatchSize(400000000).fit(synthetic(10, 1)))
    for (part <- Seq("batchSize=400000000", "numSlots=8", "bytes per row", "budget"))
      assert(e.getMessage.contains(part), e.getMessage)
    // The SparkContext lives on.
    assert(estimator.setBatchSize(5).fit(synthetic(10, 1)).summary.steps.size == 2)
  }

  test("a job cancelled from the driver (sc.cancelJobGroup) ends its training tasks within 5 s") {
    val sc = spark.sparkContext
    val ends = new java.util.concurrent.ConcurrentLinkedQueue[Long]()
    val firstStep = new java.util.concurrent.CountDownLatch(1)
    val listener = new SparkListener {
      override def onTaskEnd(end: SparkListenerTaskEnd): Unit = ends.add(System.nanoTime())
      override def onExecutorMetricsUpdate(u: SparkListenerExecutorMetricsUpdate): Unit =
        if (u.accumUpdates.flatMap(_._4).exists(_.name.contains("spindle: training step"))) firstStep.countDown()
    }
    sc.addSparkListener(listener)
    val fitting = new Thread(() => {
      sc.setJobGroup("cancel-me", "a training to cancel")
      try estimator.setNumWorkers(2).setBatchSize(5).setEpochs(100000).fit(synthetic(200, 2))
      catch { case _: Throwable => }
    })
    try {
      fitting.start()
      assert(firstStep.await(60, java.util.concurrent.TimeUnit.SECONDS), "training started")
      Thread.sleep(500)
      ends.clear()
      val cancelled = System.nanoTime()
      sc.cancelJobGroup("cancel-me")
      fitting.join(30000)
      assert(!fitting.isAlive, "fit returned")
      val deadline = System.nanoTime() + 10000000000L
      while (ends.size < 2 && System.nanoTime() < deadline) Thread.sleep(100)
      assert(ends.size >= 2, "both training tasks ended")
      val lastEnd = ends.asScala.max
      assert((lastEnd - cancelled) / 1e9 < 5, s"the tasks took ${(lastEnd - cancelled) / 1e9} s to end")
    } finally sc.removeSparkListener(listener)
  }
}
