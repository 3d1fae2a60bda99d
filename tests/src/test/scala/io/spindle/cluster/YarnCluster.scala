package io.spindle.cluster

import java.io.{BufferedReader, File, InputStreamReader, PrintWriter}
import java.net.URI
import java.nio.file.{Files, Path, Paths}
import java.util.concurrent.{LinkedBlockingQueue, TimeUnit}
import java.util.jar.{JarEntry, JarOutputStream}

import scala.collection.mutable
import scala.jdk.CollectionConverters._
import scala.sys.process._
import scala.util.Try

import org.apache.hadoop.conf.Configuration
import org.apache.hadoop.fs.{FileSystem, Path => HPath}
import org.apache.hadoop.yarn.api.records.YarnApplicationState
import org.apache.hadoop.yarn.client.api.YarnClient
import org.apache.hadoop.yarn.conf.YarnConfiguration
import org.scalatest.Assertions

/** The test side of [[MiniHadoop]]: starts it in a JVM of its own on this JVM's class path, sends it commands, reads
  * HDFS, and submits [[YarnDriver]] to its YARN with the distribution's own `spark-submit`, Spindle from `--packages`.
  * Nodes have `nodeMb` MB: with the sizes [[submit]] asks for, a node holds at most one executor, plus an application
  * master. One owner (the suite); idempotent close.
  */
final class YarnCluster(work: Path, sparkHome: Path, nodes: Int, nodeMb: Int) extends AutoCloseable {
  import YarnCluster._

  private val replies = new LinkedBlockingQueue[String]()
  private val log = new PrintWriter(Files.newBufferedWriter(work.resolve("mini-hadoop.log")), true)
  private val process = new java.lang.ProcessBuilder(
    Paths.get(sys.props("java.home"), "bin", "java").toString,
    "-Xmx2g",
    // The servers' web UIs unpack into the temporary directory: the suite's, removed with it.
    s"-Djava.io.tmpdir=${Files.createDirectories(work.resolve("cluster-tmp"))}",
    "-cp",
    sys.props("java.class.path"),
    MiniHadoop.getClass.getName.stripSuffix("$"),
    work.resolve("cluster").toString,
    nodes.toString,
    nodeMb.toString
  ).redirectErrorStream(true).start()
  private val commands = new PrintWriter(process.getOutputStream, true)
  private val reader = new Thread(
    () => {
      val in = new BufferedReader(new InputStreamReader(process.getInputStream))
      Iterator.continually(in.readLine()).takeWhile(_ != null).foreach { line =>
        log.println(line)
        if (line.startsWith("MINI ")) replies.put(line.stripPrefix("MINI "))
      }
    },
    "mini-hadoop output"
  )
  reader.setDaemon(true)
  reader.start()
  Assertions.assert(
    Option(replies.poll(180, TimeUnit.SECONDS)).contains("READY"),
    s"MiniHadoop did not start: see ${work.resolve("mini-hadoop.log")}"
  )

  /** `HADOOP_CONF_DIR` of the clients. */
  val confDir: Path = work.resolve("cluster/conf")

  val fs: FileSystem = {
    val conf = new Configuration()
    conf.addResource(new org.apache.hadoop.fs.Path(confDir.resolve("core-site.xml").toUri))
    FileSystem.get(URI.create(conf.get("fs.defaultFS")), conf)
  }

  /** `hdfs://host:port/<path>`. */
  def hdfs(path: String): String = fs.makeQualified(new HPath(path)).toString

  /** Copies a local file or directory to HDFS `path`; returns its URI. */
  def put(local: String, path: String): String = {
    fs.copyFromLocalFile(false, true, new HPath(new File(local).toURI), new HPath(path))
    hdfs(path)
  }

  private def ask(command: String): Seq[String] = synchronized {
    commands.println(command)
    val lines = mutable.Buffer[String]()
    var line = replies.poll(60, TimeUnit.SECONDS)
    while (line != null && line.startsWith("NODE ")) { lines += line; line = replies.poll(60, TimeUnit.SECONDS) }
    Assertions.assert(line == "OK" || line == "END", s"MiniHadoop answered '$line' to '$command'")
    lines.toSeq
  }

  /** The containers each node runs, by node. */
  def containers(): Map[Int, Seq[String]] =
    ask("nodes")
      .map(_.split(" ", -1))
      .map(f => f(1).toInt -> f.drop(3).mkString.split(",").filter(_.nonEmpty).toSeq)
      .toMap

  /** Gives node `i` `mb` MB, as the ResourceManager's admin would. */
  def resize(i: Int, mb: Int): Unit = ask(s"resize $i $mb")

  /** Stops node `i`'s NodeManager, which kills its containers. */
  def stopNode(i: Int): Unit = ask(s"stop $i")

  /** Submits [[YarnDriver]] with `args` in `deployMode`, Spindle from `--packages`; returns the running submit and the
    * lines it prints, as they come.
    */
  def submit(deployMode: String, args: Seq[String], log: Path): Submitted = {
    val home = sparkHome
    val ivy = work.resolve("ivy")
    // Spindle from the build's repository alone: Spark's default Ivy chain looks in ~/.m2 first, where a Maven build
    // (ci/external.sh's) may have left an older 0.1.0.
    val ivySettings = work.resolve("ivysettings.xml")
    Files.writeString(
      ivySettings,
      s"""<ivysettings><settings defaultResolver="spindle"/><resolvers>
         |<ibiblio name="spindle" m2compatible="true" root="${Paths.get(prop("spindle.mavenRepo")).toUri}"/>
         |</resolvers></ivysettings>""".stripMargin
    )
    val conf = Seq(
      "spark.executor.instances" -> "2",
      "spark.executor.cores" -> "1",
      "spark.executor.memory" -> "1g",
      "spark.driver.memory" -> "512m",
      "spark.yarn.am.memory" -> "512m",
      "spark.yarn.maxAppAttempts" -> "1",
      // Spark's own jars are on this machine: the containers read them in place instead of an upload per submit.
      "spark.yarn.jars" -> s"local:$home/jars/*",
      "spark.jars.ivy" -> ivy.toString,
      "spark.jars.ivySettings" -> ivySettings.toString,
      "spark.driver.host" -> "127.0.0.1",
      "spark.ui.enabled" -> "false",
      "spark.executorEnv.SPARK_LOCAL_IP" -> "127.0.0.1",
      "spark.executorEnv.TF_CPP_MIN_LOG_LEVEL" -> "2",
      "spark.yarn.appMasterEnv.SPARK_LOCAL_IP" -> "127.0.0.1",
      "spark.yarn.appMasterEnv.TF_CPP_MIN_LOG_LEVEL" -> "2"
    ).flatMap { case (k, v) => Seq("--conf", s"$k=$v") }
    val command = Seq(s"$home/bin/spark-submit", "--master", "yarn", "--deploy-mode", deployMode) ++ conf ++ Seq(
      "--packages",
      prop("spindle.coordinate"),
      "--jars",
      prop("spindle.examplesJar"),
      "--class",
      YarnDriver.getClass.getName.stripSuffix("$"),
      driverJar.toString
    ) ++ args
    val env = Seq(
      "SPARK_HOME" -> home.toString,
      "HADOOP_CONF_DIR" -> confDir.toString,
      "YARN_CONF_DIR" -> confDir.toString,
      "SPARK_CONF_DIR" -> work.resolve("spark-conf").toString,
      "JAVA_HOME" -> sys.props("java.home"),
      "SPARK_LOCAL_IP" -> "127.0.0.1",
      "SPARK_LOCAL_HOSTNAME" -> "127.0.0.1",
      "TF_CPP_MIN_LOG_LEVEL" -> "2"
    )
    Files.createDirectories(work.resolve("spark-conf"))
    new Submitted(command, env, log)
  }

  /** The executor JVMs YARN runs for this cluster's applications (their command lines name its directories; the shell
    * that launched each one names them too, and is not a JVM).
    */
  def executorPids(): Seq[String] =
    Option(new File("/proc").list()).toSeq.flatten.filter(_.forall(_.isDigit)).filter { pid =>
      Try(Files.readString(Paths.get(s"/proc/$pid/cmdline"))).toOption.exists { cmd =>
        cmd.split('\u0000').head.endsWith("/java") && cmd.contains("YarnCoarseGrainedExecutorBackend") &&
        cmd.contains(work.toString)
      }
    }

  /** Kills every application still accepted or running, as `yarn application -kill` would: a case that failed leaves
    * none behind for the next (a cluster-mode application outlives its spark-submit).
    */
  def killApplications(): Unit = {
    val client = YarnClient.createYarnClient()
    val conf = new YarnConfiguration()
    conf.addResource(new HPath(confDir.resolve("yarn-site.xml").toUri))
    client.init(conf)
    client.start()
    try
      client
        .getApplications(java.util.EnumSet.of(YarnApplicationState.ACCEPTED, YarnApplicationState.RUNNING))
        .asScala
        .foreach(app => client.killApplication(app.getApplicationId))
    finally client.stop()
  }

  /** A jar of [[YarnDriver]] alone: the application jar, so that its classes load beside Spindle's from --packages. */
  private lazy val driverJar: Path = {
    val jar = work.resolve("yarn-driver.jar")
    val classes = Paths.get(prop("spindle.testClasses"))
    val out = new JarOutputStream(Files.newOutputStream(jar))
    try
      Files
        .list(classes.resolve("io/spindle/cluster"))
        .iterator()
        .asScala
        .filter { f =>
          f.getFileName.toString.startsWith("YarnDriver")
        }
        .foreach { f =>
          out.putNextEntry(new JarEntry(classes.relativize(f).toString))
          out.write(Files.readAllBytes(f))
          out.closeEntry()
        }
    finally out.close()
    jar
  }

  private var closed = false

  override def close(): Unit = if (!closed) {
    closed = true
    Try(fs.close())
    commands.close() // MiniHadoop stops its clusters when its input ends
    if (!process.waitFor(60, TimeUnit.SECONDS)) process.destroyForcibly()
    executorPids().foreach(pid => Try(Seq("kill", "-9", pid).!))
    log.close()
  }
}

object YarnCluster {
  private def prop(name: String) =
    sys.props.getOrElse(name, Assertions.fail(s"system property $name is set by build.sbt"))

  /** A running `spark-submit`: its output lines as they come (also written to `log`), and its exit code. */
  final class Submitted(command: Seq[String], env: Seq[(String, String)], log: Path) {
    private val output = new java.util.concurrent.ConcurrentLinkedQueue[String]()
    private val file = new PrintWriter(Files.newBufferedWriter(log), true)
    private def add(line: String): Unit = { output.add(line); file.println(line) }
    private val process = Process(command, None, env: _*).run(ProcessLogger(add, add))

    def lines: Seq[String] = output.asScala.toSeq

    /** Waits up to `seconds` for a line matching `pattern`; returns it. */
    def await(pattern: String, seconds: Int): Option[String] = {
      val deadline = System.currentTimeMillis() + seconds * 1000L
      def found = lines.find(_.matches(pattern))
      while (found.isEmpty && process.isAlive() && System.currentTimeMillis() < deadline) Thread.sleep(200)
      found
    }

    def alive: Boolean = process.isAlive()

    /** Waits up to `seconds` for the submit to end; its exit code, or None (and it is stopped) if it had not ended. */
    def exit(seconds: Int): Option[Int] = {
      val deadline = System.currentTimeMillis() + seconds * 1000L
      while (process.isAlive() && System.currentTimeMillis() < deadline) Thread.sleep(200)
      if (process.isAlive()) { process.destroy(); None }
      else Some(process.exitValue())
    }

    def tail: String = lines.takeRight(60).mkString("\n") + s"\n(all of it: $log)"
  }
}
