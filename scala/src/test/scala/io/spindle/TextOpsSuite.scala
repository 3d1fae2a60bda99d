package io.spindle

import java.nio.file.{Files, Path}

import scala.jdk.CollectionConverters._

import com.fasterxml.jackson.databind.{JsonNode, ObjectMapper}

/** tensorflow-text SavedModels (tests/fixtures/text_ops, make_text_ops.py) scored with the wheel's op libraries
  * (`.venv`, ci/setup-python.sh): every output equals what Python TensorFlow gave (expected.json). The whitespace and
  * wordpiece libraries come through `opLibraries`, the SentencePiece one through the `spindle.opLibraries` conf. A
  * library, once loaded, stays for the JVM: the test of the missing op runs first.
  */
class TextOpsSuite extends SpindleTestBase {

  private val ops: Path = {
    val lib = repoRoot.resolve(".venv/lib")
    val python =
      Files.list(lib).iterator().asScala.find(p => Files.isDirectory(p.resolve("site-packages/tensorflow_text")))
    python
      .getOrElse(fail("tensorflow-text is not in .venv: run ci/setup-python.sh"))
      .resolve("site-packages/tensorflow_text/python/ops")
  }

  private def library(name: String): String = ops.resolve(name).toString

  override protected def sparkConf: Map[String, String] =
    Map("spindle.opLibraries" -> library("_sentencepiece_tokenizer.so"))

  private val expected = new ObjectMapper().readTree(fixture("text_ops/expected.json").pipe(new java.io.File(_)))

  private implicit class Pipe[A](a: A) { def pipe[B](f: A => B): B = f(a) }

  private def model(name: String, libraries: String*): SpindleModel =
    new SpindleModel().setModelPath(fixture(s"text_ops/$name")).setOpLibraries(libraries.toArray)

  private def texts(name: String): Seq[String] = expected.get(name).get("text").elements().asScala.map(_.asText).toSeq

  private def json(v: Any): String = v match {
    case s: scala.collection.Seq[_] => s.map(json).mkString("[", ",", "]")
    case s: String                  => new ObjectMapper().writeValueAsString(s)
    case other                      => other.toString
  }

  private def trim(row: JsonNode, count: Int): Seq[JsonNode] = row.elements().asScala.take(count).toSeq

  /** Scores the fixture's sentences and compares each output column with Python's rows. A padded output is compared up
    * to the row's `count`: `to_tensor` pads to the longest row of its batch, and Spindle's batches are not Python's.
    */
  private def checkAgainstPython(name: String, stage: SpindleModel): Unit = {
    val s = spark
    import s.implicits._
    val rows = texts(name).toDF("text").repartition(2).pipe(stage.transform).collect()
    val byText = rows.map(r => r.getAs[String]("text") -> r).toMap
    val outputs = expected.get(name).fieldNames().asScala.filter(_ != "text").toSeq
    texts(name).zipWithIndex.foreach { case (text, i) =>
      outputs.foreach { out =>
        val count = expected.get(name).get("count").get(i).asInt
        val (want, got) = (expected.get(name).get(out).get(i), byText(text).getAs[Any](out)) match {
          case (w, g: scala.collection.Seq[_]) => (trim(w, count), trim(new ObjectMapper().readTree(json(g)), count))
          case (w, g)                          => (w, new ObjectMapper().readTree(json(g)))
        }
        assert(got == want, s"$name/$out row $i ($text): Spindle $got, Python $want")
      }
    }
  }

  test("a model whose op no library registers fails as today, with a hint naming opLibraries") {
    val e = intercept[SpindleModelException](model("whitespace").describeSignature())
    assert(e.getMessage.contains("Op type not registered 'TFText>WhitespaceTokenizeWithOffsetsV2'"), e.getMessage)
    assert(e.getMessage.contains("opLibraries"), e.getMessage)
  }

  /** A wheel zipped from the installed tensorflow-text's whitespace library and dist-info, laid out as `pip download`
    * gives it (one library only: all 22 weigh 167 MB). Spark ships files by name, so each wheel has a name of its own.
    */
  private def wheel(name: String, metadata: Option[String]): String = {
    val dir = tempDir("spindle-whl")
    val site = ops.getParent.getParent.getParent
    val distInfo = Files.list(site).iterator().asScala.find(_.getFileName.toString.startsWith("tensorflow_text-")).get
    val whl = dir.resolve(s"tensorflow_text-$name-py3-none-any.whl")
    val zip = new java.util.zip.ZipOutputStream(Files.newOutputStream(whl))
    def add(name: String, bytes: Array[Byte]): Unit = {
      zip.putNextEntry(new java.util.zip.ZipEntry(name))
      zip.write(bytes)
      zip.closeEntry()
    }
    zip.setLevel(java.util.zip.Deflater.NO_COMPRESSION)
    val so = "_whitespace_tokenizer_v2.so"
    add(s"tensorflow_text/python/ops/$so", Files.readAllBytes(ops.resolve(so)))
    val info = distInfo.getFileName.toString
    add(s"$info/RECORD", Files.readAllBytes(distInfo.resolve("RECORD")))
    add(
      s"$info/METADATA",
      metadata.map(_.getBytes("UTF-8")).getOrElse(Files.readAllBytes(distInfo.resolve("METADATA")))
    )
    zip.close()
    whl.toString
  }

  test("a wheel built for another TensorFlow (.whl in opLibraries) is a typed error naming both versions") {
    val old = "Name: tensorflow-text\nVersion: 2.20.1\nRequires-Dist: tensorflow<2.21,>=2.20.0\n"
    val whl = wheel("2.20.1", Some(old))
    val e = intercept[SpindleOpLibraryException](model("whitespace", whl).describeSignature())
    assert(e.getMessage.contains("tensorflow-text 2.20.1"), e.getMessage)
    assert(e.getMessage.contains("TensorFlow 2.21.0"), e.getMessage)
  }

  test("a tensorflow-text wheel (.whl in opLibraries) loads its op libraries: the whitespace tokenizer equals Python") {
    checkAgainstPython("whitespace", model("whitespace", wheel("2.21.1", None)))
  }

  test("whitespace tokenizer (opLibraries) equals Python's tokens") {
    checkAgainstPython("whitespace", model("whitespace", library("_whitespace_tokenizer_v2.so")))
  }

  test("fast wordpiece tokenizer (opLibraries) equals Python's pieces") {
    checkAgainstPython("fast_wordpiece", model("fast_wordpiece", library("_fast_wordpiece_tokenizer.so")))
  }

  test("SentencePiece tokenizer (spindle.opLibraries conf) equals Python's ids") {
    checkAgainstPython("sentencepiece", model("sentencepiece"))
  }

  test("a library from a wheel built for another TensorFlow is a typed error naming both versions") {
    val site = tempDir("spindle-old-wheel")
    val dist = Files.createDirectories(site.resolve("tensorflow_text-2.20.1.dist-info"))
    val so = Files.createDirectories(site.resolve("tensorflow_text/python/ops")).resolve("_old.so")
    Files.write(so, "built for TensorFlow 2.20".getBytes("UTF-8"))
    Files.write(
      dist.resolve("METADATA"),
      "Name: tensorflow-text\nVersion: 2.20.1\nRequires-Dist: tensorflow<2.21,>=2.20.0\n".getBytes("UTF-8")
    )
    Files.write(dist.resolve("RECORD"), "tensorflow_text/python/ops/_old.so,,\n".getBytes("UTF-8"))
    val e = intercept[SpindleOpLibraryException](model("whitespace", so.toString).describeSignature())
    assert(e.getMessage.contains("tensorflow-text 2.20.1"), e.getMessage)
    assert(e.getMessage.contains("<2.21,>=2.20.0"), e.getMessage)
    assert(e.getMessage.contains("TensorFlow 2.21.0"), e.getMessage)
  }
}
