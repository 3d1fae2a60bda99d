package io.spindle.benches

import java.nio.file.{Files, Paths}

import scala.jdk.CollectionConverters._

import org.apache.spark.sql.SpindleSqlShim

import io.spindle.SpindleModel

/** Rows/s of `SpindleModel.transform` over short texts through a string-input model (TextVectorization + Embedding +
  * Dense: tests/fixtures/corpus/text_classifier). benches/strings.sh runs it beside Python TensorFlow's own signature
  * call on the same batches (benches/python/strings_bench.py) and prints the ratio.
  *
  * Text i is 2 + i % 6 words of the model's vocabulary, word k being entry (7 i + 13 k) mod its size: the Python side
  * builds the same texts. Best of `repeats` timed runs after `repeats` untimed ones.
  *
  * Usage: StringBench [rows=200000] [batchSize=256] [repeats=10]
  */
object StringBench {
  val Model = "tests/fixtures/corpus/text_classifier"

  def text(vocabulary: IndexedSeq[String], i: Int): String =
    (0 until 2 + i % 6).map(k => vocabulary((7 * i + 13 * k) % vocabulary.size)).mkString(" ")

  def main(args: Array[String]): Unit = {
    val rows = Bench.arg(args, 0, 200000)
    val batch = Bench.arg(args, 1, 256)
    val repeats = Bench.arg(args, 2, 10)
    val vocabulary = Files.readAllLines(Paths.get(Model, "assets", "vocab.txt")).asScala.toIndexedSeq
    val spark = Bench.spark("spindle-bench-strings")
    import spark.implicits._
    val df =
      spark.sparkContext.parallelize(0 until rows, 2).map(i => (i, text(vocabulary, i))).toDF("id", "text").cache()
    df.count()
    val model = SpindleModel.fromSavedModel(Model).setBatchSize(batch)
    Bench.best("transform", rows, repeats) {
      SpindleSqlShim.internalRows(model.transform(df)).map(_.getArray(2).getFloat(0).toDouble).sum()
    }
    spark.stop()
  }
}
