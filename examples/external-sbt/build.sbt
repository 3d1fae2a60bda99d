// A user's project outside Spindle's build: it knows Spindle only by its published coordinate. ci/external.sh runs it
// against the repository `./sbt core/publish libtensorflow/publish` writes (target/maven-repo), with sbt started as
//   java -Dsbt.repository.config=project/repositories -Dsbt.override.build.repos=true \
//     -Dspindle.repo=file:///<checkout>/target/maven-repo/ -jar sbt-launch-<version>.jar run
// so that project/repositories (Maven Central and that repository) names the only repositories consulted, as the
// repo's own ./sbt does for the main build. An sbt started without the override adds -Dspindle.repo as a resolver.
name := "spindle-external-sbt"
scalaVersion := "2.13.18"

val sparkVersion = "4.2.0"
libraryDependencies ++= Seq(
  "io.spindle" %% "spindle-spark4" % "0.1.0",
  "org.apache.spark" %% "spark-sql" % sparkVersion % Provided,
  "org.apache.spark" %% "spark-mllib" % sparkVersion % Provided
)
// For an sbt started without the repository override: the same local repository as an ordinary resolver.
resolvers ++= sys.props.get("spindle.repo").map("spindle-local" at _).toSeq
// Resolve on every run: sbt's cached resolution would not notice that -Dspindle.repo names another repository.
forceUpdatePeriod := Some(scala.concurrent.duration.Duration.Zero)

// Spark is provided (spark-submit brings it) but `run` needs it on the class path too.
Compile / run := Defaults.runTask(Compile / fullClasspath, Compile / run / mainClass, Compile / run / runner).evaluated
// Forked, with the JDK modules Spark needs opened on Java 17, and loopback only.
run / fork := true
run / connectInput := false
// The program's own stdout and stderr, not relabelled [info]/[error] by sbt.
run / outputStrategy := Some(StdoutOutput)
run / javaOptions ++= Seq(
  "java.base/java.lang", "java.base/java.lang.invoke", "java.base/java.lang.reflect", "java.base/java.io",
  "java.base/java.net", "java.base/java.nio", "java.base/java.util", "java.base/java.util.concurrent",
  "java.base/java.util.concurrent.atomic", "java.base/sun.nio.ch", "java.base/sun.nio.cs",
  "java.base/sun.security.action", "java.base/sun.util.calendar"
).map(p => s"--add-opens=$p=ALL-UNNAMED") ++ Seq("-Xmx2g", "-Dio.netty.tryReflectionSetAccessible=true")
run / envVars ++= Map(
  "SPARK_LOCAL_IP" -> "127.0.0.1",
  "SPARK_LOCAL_HOSTNAME" -> "127.0.0.1",
  "TF_CPP_MIN_LOG_LEVEL" -> "2"
)
