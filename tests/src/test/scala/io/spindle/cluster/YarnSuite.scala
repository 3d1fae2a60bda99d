package io.spindle.cluster

import java.nio.file.{Files, Path, Paths}

import scala.sys.process._

import org.apache.hadoop.fs.{Path => HPath}

import io.spindle.SpindleTestBase

/** Spindle on YARN and HDFS for real: a MiniDFSCluster and a MiniYARNCluster of four NodeManagers in a JVM of their own
  * ([[MiniHadoop]], one start shared by every case), and [[YarnDriver]] submitted by the pyspark distribution's own
  * `spark-submit --master yarn`, in client and cluster mode, with Spindle from its `--packages` coordinate. The model,
  * checkpoints, export and TensorBoard logs are all on `hdfs://`. Cases: a container granted late (fit waits for it), a
  * container killed with SIGKILL mid-fit (YARN starts another, training resumes from the HDFS checkpoint), and the
  * NodeManager of a worker lost mid-fit.
  */
class YarnSuite extends SpindleTestBase {
  override protected def startsSpark: Boolean = false

  /** A node holds one executor (1 GB + 384 MB overhead) and an application master (512 MB + 384 MB), not two executors.
    */
  private val NodeMb = 2400
  private val Nodes = 4

  /** Less than an executor needs: a node this size takes an application master only. */
  private val SmallMb = 1000

  private lazy val home: Path = {
    val file = repoRoot.resolve(s"target/spark-dist/${org.apache.spark.SPARK_VERSION}/home")
    assert(Files.isRegularFile(file), s"no Spark ${org.apache.spark.SPARK_VERSION} distribution: run ci/setup-spark.sh")
    Paths.get(Files.readString(file).trim)
  }
  private lazy val work = tempDir("spindle-yarn")
  private lazy val cluster = new YarnCluster(work, home, Nodes, NodeMb)
  private lazy val model = cluster.put(fixture("digits_mlp_init"), "/models/digits_mlp_init")

  override protected def afterAll(): Unit =
    try if (work.toFile.exists()) cluster.close()
    finally super.afterAll()

  /** Submits the driver for `epochs` epochs under HDFS directory `dir`; the line it wrote, once it ended. */
  private def run(deployMode: String, dir: String, epochs: Int)(during: YarnCluster.Submitted => Unit): String = {
    val result = work.resolve(s"result-${dir.replace('/', '-')}.txt")
    val args = Seq(digitsCsv.toString, model, cluster.hdfs(dir), epochs.toString, result.toString)
    // The submit's output stays in target/ for a failure's post-mortem; the cluster's directory goes with the suite.
    val logs = Files.createDirectories(repoRoot.resolve("tests/target/yarn-suite"))
    val app = cluster.submit(deployMode, args, logs.resolve(s"$deployMode${dir.replace('/', '-')}.log"))
    val exit =
      try {
        during(app)
        app.exit(600)
      } finally {
        cluster.killApplications()
        app.exit(30)
      }
    assert(exit.contains(0), s"spark-submit ended with $exit:\n${app.tail}")
    assert(Files.isRegularFile(result), s"the driver wrote no result:\n${app.tail}")
    Files.readString(result).trim
  }

  private def checkpoints(dir: String): Seq[String] =
    if (!cluster.fs.exists(new HPath(s"$dir/checkpoints"))) Nil
    else
      cluster.fs.listStatus(new HPath(s"$dir/checkpoints")).map(_.getPath.getName).filter(_.matches("ckpt-\\d+")).toSeq

  /** Waits until the fit under `dir` has written its first checkpoint (so that a loss now resumes from it). */
  private def awaitCheckpoint(dir: String, app: YarnCluster.Submitted): Unit = {
    val deadline = System.currentTimeMillis() + 300000
    while (checkpoints(dir).isEmpty && System.currentTimeMillis() < deadline && app.alive) Thread.sleep(200)
    assert(checkpoints(dir).nonEmpty, s"no checkpoint in $dir/checkpoints:\n${app.tail}")
  }

  private val Done =
    "FIT DONE attempts (\\d+) resumed (\\S*) ends (\\S+) steps (\\d+)-(\\d+) firstLoss (\\S+) lastLoss (\\S+) accuracy (\\S+)".r

  /** Asserts `line` is a fit that learned and scored well; returns (attempts, resumed-from checkpoints, first step). */
  private def learned(line: String): (Int, Seq[String], Long) = line match {
    case Done(attempts, resumed, _, first, _, firstLoss, lastLoss, accuracy) =>
      assert(lastLoss.toDouble < firstLoss.toDouble / 2, line)
      assert(accuracy.toDouble >= 0.9, line)
      (attempts.toInt, resumed.split(",").filter(_.nonEmpty).toSeq, first.toLong)
    case _ => fail(s"the driver wrote: $line")
  }

  test("client mode waits for a container granted late, then trains and scores with every path on HDFS") {
    // One node can take an executor; the others only an application master, until the second grant below.
    (1 until Nodes).foreach(cluster.resize(_, SmallMb))
    val line = run("client", "/spindle/client", epochs = 5) { app =>
      val waiting = app.await(".*waiting for 1 more executors \\(have 1 of 2 slots\\).*", 240)
      assert(waiting.isDefined, s"no wait logged:\n${app.tail}")
      // Past Spark's 30 s barrier slot check and the slot check's former 60 s, with no container yet.
      Thread.sleep(40000)
      assert(app.alive, s"the submit ended while a container was pending:\n${app.tail}")
      (1 until Nodes).foreach(cluster.resize(_, NodeMb))
    }
    val (attempts, _, _) = learned(line)
    assert(attempts == 1, line)
    for (path <- Seq("export/saved_model.pb", "tensorboard"))
      assert(cluster.fs.exists(new HPath(s"/spindle/client/$path")), s"hdfs:///spindle/client/$path")
    assert(checkpoints("/spindle/client").nonEmpty)
  }

  test("cluster mode: a container killed mid-fit is replaced and training resumes from the HDFS checkpoint") {
    val dir = "/spindle/killed"
    val line = run("cluster", dir, epochs = 12) { app =>
      awaitCheckpoint(dir, app)
      val pids = cluster.executorPids()
      assert(pids.size == 2, s"executor JVMs: $pids")
      assert(Seq("kill", "-9", pids.head).! == 0)
    }
    val (attempts, resumed, first) = learned(line)
    assert(attempts == 2, line)
    assert(resumed.exists(_.contains(s"$dir/checkpoints/ckpt-")), line)
    assert(first == 1, s"the step history covers the whole training: $line")
  }

  test("a worker's NodeManager lost mid-fit: a container on another node resumes from the checkpoint") {
    val dir = "/spindle/node-lost"
    val line = run("client", dir, epochs = 12) { app =>
      awaitCheckpoint(dir, app)
      // A node with an executor and without the application master (its application's first container).
      val (node, _) = cluster
        .containers()
        .find { case (_, cs) => cs.nonEmpty && !cs.exists(_.endsWith("_000001")) }
        .getOrElse(fail(s"no node with an executor alone: ${cluster.containers()}"))
      cluster.stopNode(node)
    }
    val (attempts, resumed, _) = learned(line)
    assert(attempts >= 2, line)
    assert(resumed.exists(_.contains(s"$dir/checkpoints/ckpt-")), line)
  }
}
