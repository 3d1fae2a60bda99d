package io.spindle

import scala.jdk.CollectionConverters._

import com.fasterxml.jackson.databind.{JsonNode, ObjectMapper}
import org.apache.spark.sql.{DataFrame, Row}
import org.apache.spark.sql.types._

/** The exporters users have (tests/fixtures/corpus, made by tests/fixtures/make_corpus.py): for each fixture,
  * `SpindleModel.transform` of the manifest's rows equals Python TensorFlow's own run of the same signature
  * (tests/python/run_corpus.py): exact for integers, strings and booleans, floats to a relative 1e-6.
  */
class CorpusSuite extends SpindleTestBase {

  private val corpus = fixture("corpus")
  private val manifest = new ObjectMapper().readTree(new java.io.File(s"$corpus/manifest.json"))
  private val fixtures = manifest.get("fixtures").elements().asScala.toSeq

  private lazy val expected: JsonNode =
    new ObjectMapper().readTree(python("run_corpus.py", corpus).last)

  private def fields(node: JsonNode): Seq[(String, JsonNode)] =
    node.properties().asScala.map(e => e.getKey -> e.getValue).toSeq

  /** The Spark type of a column of `dtype` values `rank` arrays deep. */
  private def sparkType(dtype: String, rank: Int): DataType = {
    val element = dtype match {
      case "float32" => FloatType
      case "float64" => DoubleType
      case "int32"   => IntegerType
      case "int64"   => LongType
      case "uint8"   => IntegerType
      case "string"  => StringType
      case "bool"    => BooleanType
      case other     => fail(s"no column type for $other")
    }
    (0 until rank).foldLeft[DataType](element)((t, _) => ArrayType(t, containsNull = false))
  }

  private def value(node: JsonNode, t: DataType): Any = t match {
    case ArrayType(e, _) => node.elements().asScala.map(value(_, e)).toSeq
    case FloatType       => node.floatValue
    case DoubleType      => node.doubleValue
    case IntegerType     => node.intValue
    case LongType        => node.longValue
    case BooleanType     => node.booleanValue
    case _               => node.asText
  }

  /** The manifest's rows as a DataFrame, a column per input (or tf.Example feature), and the row index as `id`. */
  private def rowsOf(f: JsonNode): DataFrame = {
    val rows = f.get("rows")
    val columns: Seq[(String, DataType)] = Option(f.get("example_features")) match {
      case Some(features) =>
        fields(features).map { case (name, dtype) =>
          val list = rows.get(name).get(0).isArray
          name -> sparkType(dtype.asText, if (list) 1 else 0)
        }
      case None =>
        fields(f.get("inputs")).map { case (name, spec) =>
          name -> sparkType(spec.get("dtype").asText, spec.get("shape").size - 1)
        }
    }
    val n = rows.get(columns.head._1).size
    val data = (0 until n).map(i => Row.fromSeq(i +: columns.map { case (c, t) => value(rows.get(c).get(i), t) }))
    val schema = StructType(StructField("id", IntegerType) +: columns.map { case (c, t) => StructField(c, t) })
    spark.createDataFrame(data.asJava, schema).repartition(2)
  }

  /** Whether Spindle's `actual` equals Python's `want`: arrays element by element, floats to a relative 1e-6. */
  private def same(actual: Any, want: JsonNode): Boolean = actual match {
    case s: collection.Seq[_] => want.isArray && want.size == s.size && s.indices.forall(i => same(s(i), want.get(i)))
    case f: Float             => close(f.toDouble, want.doubleValue)
    case d: Double            => close(d, want.doubleValue)
    case b: Boolean           => want.isBoolean && b == want.booleanValue
    case s: String            => want.isTextual && s == want.asText
    case n: Number            => want.isIntegralNumber && n.longValue == want.longValue
    case other                => fail(s"unexpected output value $other")
  }

  private def close(a: Double, b: Double) = a == b || math.abs(a - b) <= 1e-6 * math.max(math.abs(a), math.abs(b))

  for (f <- fixtures) {
    val name = f.get("name").asText
    test(s"$name (${f.get("exporter").asText}) equals Python TensorFlow") {
      val model = SpindleModel
        .fromSavedModel(s"$corpus/${f.get("dir").asText}")
        .setSignature(f.get("signature").asText)
        .setNestedOutputs(true)
        .setBatchSize(4)
      Option(f.get("example_features")).foreach { features =>
        model.setExampleFeatures(fields(features).map { case (feature, _) => feature -> feature }.toMap)
      }
      val out = model.transform(rowsOf(f)).collect().sortBy(_.getAs[Int]("id"))
      val want = expected.get(name)
      val outputs = fields(f.get("outputs")).map(_._1)
      assert(outputs.nonEmpty && outputs.forall(o => want.has(o)), s"Python ran ${fields(want).map(_._1)}")
      assert(out.length == want.get(outputs.head).size)
      for (r <- out; o <- outputs) {
        val i = r.getAs[Int]("id")
        assert(
          same(r.getAs[Any](o), want.get(o).get(i)),
          s"output '$o', row $i: ${r.getAs[Any](o)} vs ${want.get(o).get(i)}"
        )
      }
    }
  }

  test("the corpus holds a fixture of every exporter") {
    assert(
      fixtures.map(_.get("name").asText).toSet == Set(
        "keras3_export",
        "tf_module",
        "tf_keras2_savedmodel",
        "text_classifier",
        "uint8_cnn",
        "example_parser",
        "string_output",
        "multi_output_rank3",
        "tf1_duplicate_asset"
      )
    )
  }
}
