package io.spindle.cluster

import scala.jdk.CollectionConverters._

import org.apache.spark.scheduler.{SparkListener, SparkListenerStageCompleted}
import org.apache.spark.sql.DataFrame

import io.spindle.{SpindleEstimator, SpindleInputException, SpindleModelException, TrainingSummary}
import io.spindle.examples.{Digits, DigitsTraining}

/** Validation after every epoch and early stopping, on two workers in two executor JVMs (see [[ClusterSuite]]). The
  * reference is Python: Keras's own metrics over all the held-out rows in one process
  * (tests/python/evaluate_digits.py).
  */
class ValidationSuite extends ClusterSuite {

  private lazy val digits: DataFrame = Digits.load(spark, digitsCsv.toString).cache()

  /** The MLP of digits_mlp_init, exported with metrics accuracy and top3. */
  private def estimator = new SpindleEstimator()
    .setModelPath(fixture("digits_mlp_metrics_init"))
    .setInputCols(Map("features" -> "features", "labels" -> "label"))
    .setExportPath(tempDir("spindle-export").resolve("model").toString)
    .setNumWorkers(2)
    .setBatchSize(DigitsTraining.BatchSize)
    .setSeed(1)

  /** Keras's figures for the exported model on the held-out rows. */
  private def python(summary: TrainingSummary): Map[String, Double] =
    python("evaluate_digits.py", summary.exportPath.stripPrefix("file:")).map { line =>
      val Array(name, value) = line.split(" ")
      s"val_$name" -> value.toDouble
    }.toMap

  private def agree(spindle: Map[String, Double], keras: Map[String, Double]): Unit = {
    assert(spindle.keySet == keras.keySet)
    for ((name, want) <- keras)
      assert(math.abs(spindle(name) - want) <= 1e-5 * math.max(1.0, math.abs(want)), s"$name: $spindle vs $keras")
  }

  test("validation after every epoch, summed over two workers, equals Keras's evaluation over all held-out rows") {
    val held = Digits.heldOut(digits).repartition(3) // not the workers' count: fit splits it between them
    val atEnd = new java.util.concurrent.ConcurrentHashMap[String, String]()
    val listener = new SparkListener {
      override def onStageCompleted(c: SparkListenerStageCompleted): Unit =
        // The figures of the last epoch; "spindle: epochs" holds whole epoch records for MLflow (MlflowSuite).
        for (
          i <- c.stageInfo.accumulables.values; name <- i.name
          if name.startsWith("spindle: epoch") && name != "spindle: epochs"
        )
          atEnd.put(name, i.value.get.toString)
    }
    spark.sparkContext.addSparkListener(listener)
    val summary =
      try estimator.setEpochs(3).setValidationData(held).fit(Digits.training(digits)).summary
      finally {
        val deadline = System.nanoTime() + 10e9.toLong // listener events arrive asynchronously
        while (atEnd.size < 5 && System.nanoTime() < deadline) Thread.sleep(50)
        spark.sparkContext.removeSparkListener(listener)
      }
    // The Spark UI's view: the stage's accumulators end with the last epoch's figures.
    val last = summary.epochs.last
    val figures = (last.validation + ("loss" -> last.loss)).map { case (k, v) => s"spindle: epoch $k" -> v.toString }
    assert(atEnd.asScala.toMap == figures + ("spindle: epochs done" -> "3"), atEnd)
    assert(summary.epochs.map(_.epoch) == Seq(1, 2, 3))
    assert(summary.epochs.forall(_.validation.keySet == Set("val_loss", "val_accuracy", "val_top3")))
    val losses = summary.validationHistory("val_loss")
    assert(losses(2) < losses(0) * 0.8, s"validation loss falls: ${losses.mkString(", ")}")
    assert(summary.validationHistory("val_accuracy").last > 0.85, summary.epochs)
    // The last epoch's figures are those of the exported weights.
    agree(summary.epochs.last.validation, python(summary))
    assert(summary.bestEpoch == 0 && !summary.stoppedEarly)
  }

  test("early stopping stops both workers after the same epoch and exports the best epoch's weights") {
    // A min delta no late epoch beats: the best is early, and later epochs still move the weights.
    val summary = estimator
      .setEpochs(40)
      .setValidationData(Digits.heldOut(digits))
      .setEarlyStopping("val_loss", 2, 0.02)
      .fit(Digits.training(digits))
      .summary
    val run = summary.epochs.size
    assert(summary.stoppedEarly && run < 40, s"stopped after $run epochs")
    assert(run == summary.bestEpoch + 3, s"patience 2: best epoch ${summary.bestEpoch}, then 3 without improvement")
    val best = summary.epochs(summary.bestEpoch - 1).validation
    assert(best("val_loss") != summary.epochs.last.validation("val_loss"))
    // Both workers ran the same steps: every step's examples sum both workers' rows, none is missing.
    assert(summary.steps.map(_.epoch).distinct == (1 to run))
    agree(best, python(summary))
  }

  test("validationFraction holds out a seeded share of the rows; early stopping on an accuracy maximizes it") {
    val train = Digits.training(digits)
    val summary = estimator
      .setEpochs(4)
      .setValidationFraction(0.25)
      .setEarlyStopping("val_accuracy", 10, 0.0)
      .fit(train)
      .summary
    val total = train.count()
    val fed = summary.rowsPerWorker.sum
    assert(fed > total * 0.65 && fed < total * 0.85, s"$fed of $total rows trained on")
    val accuracy = summary.validationHistory("val_accuracy")
    assert(summary.bestEpoch == accuracy.indexOf(accuracy.max) + 1, accuracy.mkString(", "))
  }

  test("bad validation settings fail before any job, naming what is wrong") {
    val train = Digits.training(digits)
    val unknown = intercept[SpindleInputException] {
      estimator.setValidationFraction(0.2).setEarlyStopping("val_auc", 1, 0.0).fit(train)
    }
    assert(unknown.getMessage.contains("'val_auc'") && unknown.getMessage.contains("val_accuracy"), unknown.getMessage)
    val noData = intercept[SpindleInputException](estimator.setEarlyStopping("val_loss", 1, 0.0).fit(train))
    assert(noData.getMessage.contains("no validation data"), noData.getMessage)
    val noSignature = intercept[SpindleModelException] {
      estimator.setModelPath(fixture("digits_mlp_init")).setValidationFraction(0.2).fit(train)
    }
    assert(noSignature.getMessage.contains("'evaluate'"), noSignature.getMessage)
  }
}
