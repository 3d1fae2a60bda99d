package io.spindle

import java.nio.file.{Files, Path, Paths}

import scala.reflect.ClassTag

import org.apache.hadoop.fs.FileUtil
import org.apache.spark.sql.SparkSession
import org.scalatest.BeforeAndAfterAll
import org.scalatest.funsuite.AnyFunSuite

/** Base of every Spark suite: one local SparkSession per suite, the checked-in fixtures, temp dirs, and a helper that
  * digs a typed Spindle exception out of Spark's task-failure wrapping.
  */
trait SpindleTestBase extends AnyFunSuite with BeforeAndAfterAll {

  /** The master this suite runs on; `local[2]` unless a suite needs separate executor JVMs. */
  protected def master: String = "local[2]"

  /** Extra Spark settings for this suite. */
  protected def sparkConf: Map[String, String] = Map.empty

  @transient protected var spark: SparkSession = _

  /** Whether this suite needs a SparkSession of its own. */
  protected def startsSpark: Boolean = true

  override protected def beforeAll(): Unit = {
    super.beforeAll()
    if (startsSpark) {
      val builder = SparkSession
        .builder()
        .master(master)
        .appName(getClass.getSimpleName)
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "4")
      sparkConf.foreach { case (k, v) => builder.config(k, v) }
      spark = builder.getOrCreate()
    }
  }

  override protected def afterAll(): Unit = {
    try if (spark != null) spark.stop()
    finally {
      madeDirs.forEach(d => FileUtil.fullyDelete(d.toFile))
      super.afterAll()
    }
  }

  /** The repository's root, found from the working directory sbt forks tests in. */
  protected lazy val repoRoot: Path = {
    var dir = Paths.get("").toAbsolutePath
    while (!Files.isDirectory(dir.resolve("tests/fixtures"))) dir = dir.getParent
    dir
  }

  /** A checked-in fixture SavedModel (tests/fixtures; make_fixtures.py builds them). */
  protected def fixture(name: String): String = repoRoot.resolve("tests/fixtures").resolve(name).toString

  /** scikit-learn's `digits.csv.gz`, from the project's virtualenv (ci/setup-python.sh). */
  protected def digitsCsv: Path = {
    val venvLib = repoRoot.resolve(".venv/lib")
    val found = Option(venvLib.toFile.listFiles()).toSeq.flatten
      .map(_.toPath.resolve("site-packages/sklearn/datasets/data/digits.csv.gz"))
      .find(Files.isRegularFile(_))
    found.getOrElse(fail(s"scikit-learn's digits.csv.gz not found under $venvLib: run ci/setup-python.sh"))
  }

  /** Runs a script of tests/python with the project's virtualenv (ci/setup-python.sh); its output lines. */
  protected def python(script: String, args: String*): Vector[String] = {
    val command = Seq(repoRoot.resolve(".venv/bin/python").toString, repoRoot.resolve(s"tests/python/$script").toString)
    val process = new ProcessBuilder((command ++ args): _*).redirectError(ProcessBuilder.Redirect.INHERIT).start()
    val printed = scala.io.Source.fromInputStream(process.getInputStream).getLines().toVector
    assert(process.waitFor() == 0, s"tests/python/$script failed (its error is above)")
    printed
  }

  // Every temporary directory the suite made, removed with everything in it once the suite ends (deleteOnExit removes
  // only empty ones, and the runs of CI share /tmp).
  private val madeDirs = new java.util.concurrent.ConcurrentLinkedQueue[Path]()

  protected def tempDir(prefix: String): Path = {
    val dir = Files.createTempDirectory(prefix)
    madeDirs.add(dir)
    dir
  }

  /** Runs `body`, expects it to fail, and returns the first `E` in the cause chain (Spark wraps task errors). */
  protected def failureOf[E <: Throwable: ClassTag](body: => Any): E = {
    val thrown = intercept[Throwable](body)
    Iterator
      .iterate[Throwable](thrown)(_.getCause)
      .takeWhile(_ != null)
      .collectFirst { case e: E => e }
      .getOrElse(
        fail(s"expected ${implicitly[ClassTag[E]].runtimeClass.getSimpleName} in the cause chain of $thrown", thrown)
      )
  }
}
