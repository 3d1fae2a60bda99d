package io.spindle.cluster

import java.io.File
import java.net.{InetSocketAddress, ServerSocket, Socket}
import java.nio.file.{Files, Path, Paths}

import scala.sys.process._
import scala.util.Try

import io.spindle.SpindleTestBase

/** Spindle on a real Spark distribution, the one the pyspark package of the build's Spark version carries
  * (ci/setup-spark.sh installs it): scripted `bin/spark-shell` sessions that score and train, with Spindle from
  * `--jars` and from its one `--packages` coordinate (the local Maven repository `publish` writes), and
  * `bin/spark-submit` of the main example to a standalone master and worker (executors in their own JVMs), all on
  * loopback. pyspark 4.2.0 ships `sbin/spark-daemon.sh` but not `start-master.sh` or `start-worker.sh`: the master and
  * worker are started with `spark-daemon.sh`, the way those two scripts start them.
  */
class DistributionSuite extends SpindleTestBase {
  override protected def startsSpark: Boolean = false

  private def prop(name: String) = sys.props.getOrElse(name, fail(s"system property $name is set by build.sbt"))

  private lazy val home: Path = {
    val version = org.apache.spark.SPARK_VERSION
    val file = repoRoot.resolve(s"target/spark-dist/$version/home")
    assert(Files.isRegularFile(file), s"no Spark $version distribution: run ci/setup-spark.sh")
    Paths.get(Files.readString(file).trim)
  }

  private def jars = Seq(prop("spindle.assembly"), prop("spindle.tensorflowJar"))

  /** The environment every distribution script runs with: this JVM's Java, loopback, logs and pids in `work`. */
  private def env(work: Path): Seq[(String, String)] = Seq(
    "SPARK_HOME" -> home.toString,
    "JAVA_HOME" -> sys.props("java.home"),
    "SPARK_LOCAL_IP" -> "127.0.0.1",
    "SPARK_LOCAL_HOSTNAME" -> "127.0.0.1",
    "SPARK_MASTER_HOST" -> "127.0.0.1",
    "SPARK_LOG_DIR" -> work.resolve("logs").toString,
    "SPARK_PID_DIR" -> work.resolve("pids").toString,
    "SPARK_WORKER_DIR" -> work.resolve("worker").toString,
    "SPARK_CONF_DIR" -> work.resolve("conf").toString,
    "TF_CPP_MIN_LOG_LEVEL" -> "2"
  )

  /** Runs `command` in `env`, with `stdin` as its input; returns its exit status and output (stdout then stderr). */
  private def run(command: Seq[String], env: Seq[(String, String)], stdin: String = ""): (Int, String, String) = {
    val (out, err) = (new StringBuilder, new StringBuilder)
    val input = new java.io.ByteArrayInputStream(stdin.getBytes("UTF-8"))
    val rc = (Process(command, None, env: _*) #< input).!(
      ProcessLogger(l => out.append(l).append('\n'), l => err.append(l).append('\n'))
    )
    (rc, out.toString, err.toString)
  }

  private def freePort(): Int = {
    val s = new ServerSocket(0);
    try s.getLocalPort
    finally s.close()
  }

  private def listening(port: Int): Boolean =
    Try {
      val s = new Socket();
      try s.connect(new InetSocketAddress("127.0.0.1", port), 200)
      finally s.close()
    }.isSuccess

  /** Runs a scripted `bin/spark-shell` on local[2] with Spindle brought in by `spindle` (its arguments), scoring the
    * held-out digits and training on the rest; checks both.
    */
  private def shellScoresAndTrains(work: Path, spindle: Seq[String]): Unit = {
    Files.createDirectories(work.resolve("conf"))
    // One statement per line: the REPL runs each line that parses on its own.
    val script =
      s"""import io.spindle._
         |import io.spindle.examples.Digits
         |val digits = Digits.load(spark, "$digitsCsv")
         |val scored = SpindleModel.load("${fixture("digits_mlp_trained")}").transform(Digits.heldOut(digits))
         |val (correct, total) = Digits.accuracy(Digits.withPrediction(scored))
         |println(s"SHELL scored $$correct of $$total")
         |val estimator = new SpindleEstimator().setModelPath("${fixture("digits_mlp_init")}")
         |estimator.setInputCols(Map("features" -> "features", "labels" -> "label")).setEpochs(5).setBatchSize(32)
         |val fitted = estimator.setExportPath("${work.resolve("model")}").fit(Digits.training(digits))
         |val losses = fitted.summary.lossHistory
         |println(s"SHELL trained from $${losses.take(10).sum / 10} to $${losses.takeRight(10).sum / 10}")
         |:quit
         |""".stripMargin
    val shell =
      Seq(home.resolve("bin/spark-shell").toString, "--master", "local[2]", "--conf", "spark.ui.enabled=false")
    val (rc, out, err) = run(shell ++ spindle, env(work), script)
    assert(rc == 0, s"spark-shell failed ($rc):\n${err.takeRight(4000)}")
    val scored =
      "SHELL scored (\\d+) of (\\d+)".r.findFirstMatchIn(out).map(m => m.group(1).toDouble / m.group(2).toInt)
    assert(scored.exists(_ >= 0.95), s"spark-shell output:\n${out.takeRight(4000)}\n${err.takeRight(4000)}")
    val trained = "SHELL trained from ([0-9.]+) to ([0-9.]+)".r
      .findFirstMatchIn(out)
      .map(m => (m.group(1).toDouble, m.group(2).toDouble))
    assert(trained.exists { case (first, last) => last < first / 2 }, s"spark-shell output:\n${out.takeRight(4000)}")
  }

  test("bin/spark-shell --jars scores and trains from a script") {
    shellScoresAndTrains(tempDir("spindle-shell"), Seq("--jars", (jars :+ prop("spindle.examplesJar")).mkString(",")))
  }

  test("bin/spark-shell --packages of Spindle's one coordinate brings libtensorflow, scores and trains") {
    val work = tempDir("spindle-packages")
    val ivy = work.resolve("ivy") // a fresh Ivy home: nothing resolved by an earlier run
    shellScoresAndTrains(
      work,
      Seq(
        "--packages",
        prop("spindle.coordinate"),
        "--repositories",
        Paths.get(prop("spindle.mavenRepo")).toUri.toString,
        "--conf",
        s"spark.jars.ivy=$ivy",
        // The example's own helpers (Digits), not Spindle: Spindle and libtensorflow come from --packages alone.
        "--jars",
        prop("spindle.examplesJar")
      )
    )
    val resolved = Option(ivy.resolve("jars").toFile.list()).toSeq.flatten
    assert(resolved.exists(_.startsWith("io.spindle_spindle-libtensorflow-")), s"Ivy resolved: $resolved")
    assert(resolved.exists(_.startsWith("io.spindle_spindle-spark")), s"Ivy resolved: $resolved")
    assert(!resolved.exists(_.contains("protobuf")), s"protobuf is shaded, not a dependency: $resolved")
  }

  test("bin/spark-submit runs the main example on a standalone master and worker of the distribution") {
    val work = tempDir("spindle-standalone")
    Files.createDirectories(work.resolve("conf"))
    val (port, ui, workerUi) = (freePort(), freePort(), freePort())
    val e = env(work)
    val master = s"spark://127.0.0.1:$port"
    val (masterClass, workerClass) = ("org.apache.spark.deploy.master.Master", "org.apache.spark.deploy.worker.Worker")
    def daemon(args: String*) = run(home.resolve("sbin/spark-daemon.sh").toString +: args, e)
    try {
      val started = daemon("start", masterClass, "1", "--host", "127.0.0.1", "--port", s"$port", "--webui-port", s"$ui")
      assert(started._1 == 0, s"spark-daemon.sh start Master: ${started._3}")
      val deadline = System.currentTimeMillis() + 60000
      while (!listening(port) && System.currentTimeMillis() < deadline) Thread.sleep(200)
      assert(listening(port), s"no master on $master:\n${logs(work)}")
      val worker = daemon(
        "start",
        workerClass,
        "1",
        "--host",
        "127.0.0.1",
        "--webui-port",
        s"$workerUi",
        "--cores",
        "2",
        "--memory",
        "3g",
        master
      )
      assert(worker._1 == 0, s"spark-daemon.sh start Worker: ${worker._3}")
      val (rc, out, err) = run(
        Seq(
          home.resolve("bin/spark-submit").toString,
          "--master",
          master,
          "--conf",
          "spark.ui.enabled=false",
          "--executor-memory",
          "1536m",
          "--jars",
          jars.mkString(","),
          "--class",
          "io.spindle.examples.DigitsInference",
          prop("spindle.examplesJar"),
          digitsCsv.toString,
          fixture("digits_mlp_trained")
        ),
        e
      )
      assert(rc == 0, s"spark-submit failed ($rc):\n${err.takeRight(4000)}\n${logs(work)}")
      val accuracy = "held-out accuracy: ([0-9.]+)".r.findFirstMatchIn(out).map(_.group(1).toDouble)
      assert(accuracy.exists(_ >= 0.95), s"example output:\n$out")
      // The executors ran in the worker's JVMs: their logs are in the worker's directory.
      assert(Files.walk(work.resolve("worker")).anyMatch(_.getFileName.toString == "stderr"), "no executor ran")
    } finally {
      daemon("stop", workerClass, "1")
      daemon("stop", masterClass, "1")
    }
  }

  test("a Spark Connect client (Python) scores and trains through the distribution's Connect server") {
    assume(org.apache.spark.SPARK_VERSION.startsWith("4."), "ML on Spark Connect is a Spark 4 feature")
    val work = tempDir("spindle-connect")
    Files.createDirectories(work.resolve("conf"))
    val port = freePort()
    val e = env(work)
    val server = "org.apache.spark.sql.connect.service.SparkConnectServer"
    def daemon(args: String*) = run(home.resolve("sbin/spark-daemon.sh").toString +: args, e)
    try {
      // How sbin/start-connect-server.sh starts it (that script is not in the pyspark package).
      val started = daemon(
        Seq("submit", server, "1", "--master", "local[2]", "--jars", jars.mkString(",")) ++
          Seq(
            "spark.ui.enabled=false",
            "spark.connect.grpc.binding.address=127.0.0.1",
            s"spark.connect.grpc.binding.port=$port"
          )
            .flatMap(c => Seq("--conf", c)): _*
      )
      assert(started._1 == 0, s"spark-daemon.sh submit $server: ${started._3}")
      val deadline = System.currentTimeMillis() + 120000
      while (!listening(port) && System.currentTimeMillis() < deadline) Thread.sleep(250)
      assert(listening(port), s"no Connect server on port $port:\n${logs(work)}")
      val python = home.getParent.getParent.getParent.getParent.resolve("bin/python").toString // the venv's
      val (rc, out, err) = run(
        Seq(
          python,
          repoRoot.resolve("tests/python/connect_client.py").toString,
          s"sc://127.0.0.1:$port",
          digitsCsv.toString,
          fixture("digits_mlp_trained").toString,
          fixture("digits_mlp_init").toString
        ),
        e
      )
      assert(rc == 0, s"Connect client failed ($rc):\n${err.takeRight(4000)}\n${logs(work)}")
      def fraction(what: String) = s"CONNECT $what (\\d+) of (\\d+)".r
        .findFirstMatchIn(out)
        .map(m => m.group(1).toDouble / m.group(2).toInt)
      assert(fraction("scored").exists(_ >= 0.95), s"client output:\n$out")
      assert(fraction("fitted scored").exists(_ >= 0.9), s"client output:\n$out")
    } finally daemon("stop", server, "1")
  }

  private def logs(work: Path): String = {
    val dir = new File(work.resolve("logs").toString)
    Option(dir.listFiles()).toSeq.flatten
      .map(f => s"${f.getName}:\n${Files.readString(f.toPath).takeRight(2000)}")
      .mkString("\n")
  }
}
