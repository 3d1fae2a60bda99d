package io.spindle

import scala.util.Random

import org.apache.spark.sql.DataFrame

/** Training from inputs whose rows vary in size, on two workers of `local[2]` joined by the TCP ring: token ids of any
  * length (padded per batch), and raw strings through a TextVectorization layer (tests/fixtures/tokens_init,
  * text_init). Both learn a synthetic sentiment task: a text is positive when it holds more of the first six words of
  * the fixtures' vocabulary than of the last six. Chance is 50%; each model must reach 90% on held-out rows.
  */
class VariableTrainingSuite extends SpindleTestBase {

  private val words =
    Seq("good", "great", "fine", "nice", "happy", "superb", "bad", "awful", "poor", "sad", "ugly", "dull")

  /** `rows` texts of 1 to 12 words with no tie, as word indices, and their labels. */
  private def texts(rows: Int, seed: Int): Seq[(Seq[Int], Long)] = {
    val random = new Random(seed)
    Iterator
      .continually(Seq.fill(1 + random.nextInt(12))(random.nextInt(words.size)))
      .map(t => t -> t.count(_ < 6).compareTo(t.count(_ >= 6)))
      .filter(_._2 != 0)
      .map { case (t, c) => t -> (if (c > 0) 1L else 0L) }
      .take(rows)
      .toSeq
  }

  private def frame(rows: Seq[(Seq[Int], Long)], asText: Boolean): DataFrame = {
    val s = spark
    import s.implicits._
    if (asText) rows.map { case (t, y) => (t.map(words).mkString(" "), y) }.toDF("text", "label")
    else rows.map { case (t, y) => (t.map(_ + 2L), y) }.toDF("ids", "label") // ids 0 and 1: padding and unknown
  }

  private def trainAndScore(fixtureName: String, column: String, asText: Boolean): Unit = {
    val (train, held) = (texts(2000, 1), texts(400, 2))
    val fitted = new SpindleEstimator()
      .setModelPath(fixture(fixtureName))
      .setInputCols(Map("features" -> column, "labels" -> "label"))
      .setExportPath(tempDir("spindle-export").resolve("model").toString)
      .setNumWorkers(2)
      .setBatchSize(32)
      .setEpochs(4)
      .setSeed(3)
      .fit(frame(train, asText).repartition(2))
    val losses = fitted.summary.lossHistory
    assert(
      losses.takeRight(20).sum < losses.take(20).sum / 2,
      s"loss falls: ${losses.take(5)} ... ${losses.takeRight(5)}"
    )
    val scored = fitted.setInputCols(Map("features" -> column)).transform(frame(held, asText)).collect()
    val correct = scored.count { r =>
      val p = r.getAs[collection.Seq[Float]]("probabilities")
      (if (p(1) > p(0)) 1L else 0L) == r.getAs[Long]("label")
    }
    assert(correct >= 0.9 * held.size, s"held-out accuracy $correct of ${held.size}")
  }

  test("two workers learn from token ids of any length per row, padded per batch: >= 90% held out") {
    trainAndScore("tokens_init", "ids", asText = false)
  }

  test("two workers learn from raw text through TextVectorization (strings spilled and replayed): >= 90% held out") {
    trainAndScore("text_init", "text", asText = true)
  }
}
