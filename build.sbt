// Spindle: the JVM library (scala/), its native runtime (native/, built with Cargo), integration suites
// (tests/), the main example (examples/) and benchmarks (benches/).
import scala.sys.process._

ThisBuild / organization := "io.spindle"
ThisBuild / version := "0.1.0"
// POM metadata of every published artifact. The project has no public home yet: the url and scm below name the one it
// is meant to have, here and nowhere else.
ThisBuild / description := "TensorFlow training and inference on Apache Spark, over a Rust runtime loaded through JNI"
ThisBuild / homepage := Some(url("https://github.com/spindle-spark/spindle"))
ThisBuild / licenses := Seq("Apache-2.0" -> url("https://www.apache.org/licenses/LICENSE-2.0.txt"))
ThisBuild / scmInfo := Some(
  ScmInfo(url("https://github.com/spindle-spark/spindle"), "scm:git:https://github.com/spindle-spark/spindle.git")
)
ThisBuild / developers := List(
  Developer("spindle", "The Spindle developers", "dev@spindle.invalid", url("https://github.com/spindle-spark"))
)
ThisBuild / scalacOptions ++= Seq("-deprecation", "-feature", "-release", "17")
ThisBuild / javacOptions ++= Seq("--release", "17")

// The Spark lines Spindle builds for, each at the newest release whose spark-mllib Maven Central serves here
// (maven-partial.tsv, 2026-12-02). SPINDLE_SPARK picks the line (default 4); within a line, `++<scala>` picks one of its
// Scala versions, each the scala-library that Spark release itself depends on. ci/setup-spark.sh reads spark4 and
// spark35 (their pyspark distributions). For Scala 2.13 the registry serves Spark 3.5 only up to 3.5.6; an artifact
// built on 3.5.6 runs on every 3.5.x, whose APIs do not change within the line.
val spark4 = "4.2.0"
val spark35 = "3.5.9"
val spark35Scala213 = "3.5.6"
// The Hadoop each line's Spark is built with (its hadoop-client-api jar): YarnSuite's MiniDFSCluster and
// MiniYARNCluster come from hadoop-client-minicluster of that same version.
val hadoop4 = "3.5.0"
val hadoop35 = "3.3.4"
val sparkLine = sys.env.getOrElse("SPINDLE_SPARK", "4")
val scalaVersions = sparkLine match {
  case "4"   => Seq("2.13.18")
  case "3.5" => Seq("2.12.18", "2.13.8")
  case other => sys.error(s"SPINDLE_SPARK=$other: the Spark lines built are 4 and 3.5")
}
ThisBuild / scalaVersion := scalaVersions.head
ThisBuild / crossScalaVersions := scalaVersions
// protoc 36.2 is what protoc-bin-vendored ships to the Rust build: one protoc version for both sides.
val protobufVersion = "4.36.2"
val tensorflowJavaVersion = "1.2.0" // TensorFlow Java 1.2.0 pairs with TF 2.21

val sparkVersion = settingKey[String]("The Spark release this line and Scala version build against")
val spark = Def.setting(
  Seq("org.apache.spark" %% "spark-sql" % sparkVersion.value, "org.apache.spark" %% "spark-mllib" % sparkVersion.value)
)

val cargoProfile = settingKey[String]("Cargo profile of the native library packaged in the jar")
// org.tensorflow:tensorflow-core-native names a parent POM (tensorflow-core) that Maven Central lacks, so
// Coursier refuses it as a dependency; Maven fetches the jar alone (ci/setup-tensorflow.sh) and it joins
// the class paths as an unmanaged jar.
val tensorflowJar = taskKey[File]("Fetches tensorflow-core-native and extracts libtensorflow for the Rust build")
val tensorflowGpuJar = taskKey[File]("Fetches tensorflow-core-native's GPU build (classifier linux-x86_64-gpu)")
val nativeBuild = taskKey[Seq[File]]("Builds the Rust cdylib and stages it as a jar resource")
val sparkHome = taskKey[File]("A SPARK_HOME whose jars/ are this build's Spark jars, for local-cluster")
val generateParams = taskKey[Unit]("Writes python/spindle/_params.py and docs/params.md from the Scala Params")
val pythonJars = taskKey[Seq[File]]("Copies the jars a PySpark session needs into python/spindle/jars, for the wheel")

// Spark forks executors that must find the same JDK modules opened as in Spark's own launcher.
val jvmOpens = Seq(
  "java.base/java.lang", "java.base/java.lang.invoke", "java.base/java.lang.reflect", "java.base/java.io",
  "java.base/java.net", "java.base/java.nio", "java.base/java.util", "java.base/java.util.concurrent",
  "java.base/java.util.concurrent.atomic", "java.base/sun.nio.ch", "java.base/sun.nio.cs",
  "java.base/sun.security.action", "java.base/sun.util.calendar"
).map(p => s"--add-opens=$p=ALL-UNNAMED")

// Every suite, example and bench talks over loopback alone: Spark would otherwise bind and advertise the host's first
// non-loopback address.
val loopback = Map("SPARK_LOCAL_IP" -> "127.0.0.1", "SPARK_LOCAL_HOSTNAME" -> "127.0.0.1")

// Each line and Scala version builds in a target folder of its own, so switching never mixes their classes or test
// reports; the default line keeps target/.
lazy val lineSettings = Seq(
  sparkVersion := (if (sparkLine == "4") spark4 else if (scalaBinaryVersion.value == "2.12") spark35 else spark35Scala213),
  target := {
    val base = baseDirectory.value / "target"
    if (sparkLine == "4") base else base / s"spark-${sparkLine}_${scalaBinaryVersion.value}"
  },
  // The 3.5 / 2.13 artifact compiles with Spark's own Scala, 2.13.8; only the test classpaths, where scalatest brings
  // scala-library 2.13.10, run on a newer library than the compiler.
  allowUnsafeScalaLibUpgrade := true,
  // scala.jdk.CollectionConverters on 2.12; Spark 3.5's distribution ships this very jar.
  libraryDependencies ++= (if (scalaBinaryVersion.value == "2.12")
                             Seq("org.scala-lang.modules" %% "scala-collection-compat" % "2.7.0" % Provided)
                           else Nil)
)

lazy val testSettings = Seq(
  Test / fork := true,
  Test / parallelExecution := false,
  // -Xcheck:jni makes the JVM verify every JNI call our natives make.
  Test / javaOptions ++= jvmOpens ++ Seq("-Xmx4g", "-Xcheck:jni", "-Dspark.ui.enabled=false", "-Dio.netty.tryReflectionSetAccessible=true"),
  Test / envVars ++= loopback + ("TF_CPP_MIN_LOG_LEVEL" -> "2"),
  Test / testOptions += Tests.Argument(TestFrameworks.ScalaTest, "-oD")
)

// The local Maven repository `publish` writes: what `spark-shell --packages ... --repositories` reads.
val mavenRepo = settingKey[File]("The local Maven repository the build publishes to")
ThisBuild / mavenRepo := (ThisBuild / baseDirectory).value / "target" / "maven-repo"
ThisBuild / versionScheme := Some("early-semver")
// Each build republishes its own release there (overwriting it: the repository is the build's, not a public one). The
// sources and javadoc jars go beside the main jar, as Maven Central would require.
lazy val publishSettings = Seq(
  publishTo := Some(MavenCache("spindle-local", mavenRepo.value)),
  publishConfiguration := publishConfiguration.value.withOverwrite(true)
)
// Publishes `projects` there; returns the repository.
def publishedRepo(projects: ProjectReference*): Def.Initialize[Task[File]] = Def.task {
  projects.map(p => p / publish).join.value
  mavenRepo.value
}

lazy val core = (project in file("scala"))
  .dependsOn(libtensorflow)
  .settings(
    // One artifact per Spark line (spindle-spark4_2.13, spindle-spark35_2.12, spindle-spark35_2.13).
    name := s"spindle-spark${sparkLine.replace(".", "")}",
    lineSettings,
    // The setters live in the param traits and return the stage (`SpindleParams[Stage]`). A mixin forwarder in the
    // stage class would carry no generic signature, so javac would see the trait as their return type and a Java call
    // chain would end there; without forwarders javac reads the trait's generic method, `Stage setBatchSize(int)`.
    Compile / scalacOptions += "-Xmixin-force-forwarders:false",
    // The calls that differ between lines: src/main/spark-<line>/{scala,resources}.
    Compile / unmanagedSourceDirectories += (Compile / sourceDirectory).value / s"spark-$sparkLine" / "scala",
    Compile / unmanagedResourceDirectories += (Compile / sourceDirectory).value / s"spark-$sparkLine" / "resources",
    libraryDependencies ++= spark.value.map(_ % Provided) ++ Seq(
      "com.google.protobuf" % "protobuf-java" % protobufVersion,
      "org.scalatest" %% "scalatest" % "3.2.19" % Test
    ),
    Compile / PB.protoSources := Seq((ThisBuild / baseDirectory).value / "proto" / "spindle"),
    PB.protocVersion := protobufVersion,
    Compile / PB.targets := Seq(PB.gens.java(protobufVersion) -> (Compile / sourceManaged).value / "java"),
    cargoProfile := sys.env.getOrElse("SPINDLE_CARGO_PROFILE", "release"),
    Test / unmanagedJars += (libtensorflow / tensorflowJar).value,
    nativeBuild := {
      val root = (ThisBuild / baseDirectory).value
      (libtensorflow / tensorflowJar).value
      val profile = cargoProfile.value
      val log = streams.value.log
      val cmd = Seq("cargo", "build", "--profile", profile, "-p", "spindle-jni")
      log.info(cmd.mkString(" "))
      if (Process(cmd, root).! != 0) sys.error("cargo build failed")
      val dir = if (profile == "dev") "debug" else profile
      val lib = root / "target" / dir / "libspindle_jni.so"
      val staged = (Compile / resourceManaged).value / "native" / "linux-x86_64" / "libspindle_jni.so"
      IO.copyFile(lib, staged)
      Seq(staged)
    },
    Compile / resourceGenerators += nativeBuild.taskValue,
    testSettings,
    // The assembly carries the library, protobuf (shaded) and the native cdylib; Spark is provided and
    // libtensorflow (750 MB) travels as its own jar (tensorflow-core-native with --jars, spindle-libtensorflow with
    // --packages).
    assembly / assemblyJarName := s"spindle-assembly-${version.value}.jar",
    assembly / assemblyOption ~= (_.withIncludeScala(false)),
    assembly / assemblyShadeRules := Seq(ShadeRule.rename("com.google.protobuf.**" -> "io.spindle.shaded.protobuf.@1").inAll),
    assembly / assemblyMergeStrategy := {
      case PathList("META-INF", "versions", _ @_*) => MergeStrategy.discard
      case PathList("META-INF", xs @ _*) if xs.lastOption.exists(_.endsWith(".MF")) => MergeStrategy.discard
      case x => (assembly / assemblyMergeStrategy).value(x)
    },
    assembly / test := {},
    // The files generated from the Scala Params; ParamsReferenceSuite fails when they are stale.
    generateParams := (Test / runMain).toTask(" io.spindle.params.ParamsReference").value,
    // `pip install ./python` packs what is in python/spindle/jars (ignored by git) into the wheel: spindle.jars().
    pythonJars := {
      val dir = (ThisBuild / baseDirectory).value / "python" / "spindle" / "jars"
      IO.delete(dir)
      val jars = Seq(
        assembly.value -> s"${name.value}_${scalaBinaryVersion.value}-${version.value}.jar",
        (libtensorflow / tensorflowJar).value -> s"spindle-libtensorflow-$tensorflowJavaVersion.jar"
      )
      jars.map { case (from, to) => IO.copyFile(from, dir / to); dir / to }
    },
    // Published: the assembly as the artifact's one jar, under a POM naming only spindle-libtensorflow (compile), Spark
    // and Scala (provided): protobuf is shaded inside, not a dependency.
    autoScalaLibrary := false,
    libraryDependencies += "org.scala-lang" % "scala-library" % scalaVersion.value % Provided,
    Compile / packageBin / publishArtifact := false,
    addArtifact(Compile / packageBin / artifact, assembly),
    publishSettings,
    pomPostProcess := { pom =>
      import scala.xml.{Elem, Node}
      import scala.xml.transform.{RewriteRule, RuleTransformer}
      val dropped = new RewriteRule {
        override def transform(n: Node): Seq[Node] = n match {
          case d: Elem if d.label == "dependency" && ((d \ "artifactId").text == "protobuf-java" || (d \ "scope").text == "test") =>
            Nil
          case _ => n
        }
      }
      new RuleTransformer(dropped).transform(pom).head
    }
  )

// io.spindle:spindle-libtensorflow: TensorFlow Java's native jar (libtensorflow 2.21 for linux-x86_64), republished
// unchanged under a POM of our own with no parent and no dependencies. The registry's POM names a parent
// (tensorflow-core) that Maven Central does not serve, so neither Coursier nor Spark's --packages (Ivy) resolves it.
lazy val libtensorflow = (project in file("scala/libtensorflow"))
  .settings(
    name := "spindle-libtensorflow",
    version := tensorflowJavaVersion,
    crossPaths := false,
    autoScalaLibrary := false,
    tensorflowJar := {
      val root = (ThisBuild / baseDirectory).value
      if (Process(Seq("bash", (root / "ci" / "setup-tensorflow.sh").getPath), root).! != 0)
        sys.error("ci/setup-tensorflow.sh failed")
      file(sys.props("user.home")) / ".m2" / "repository" / "org" / "tensorflow" / "tensorflow-core-native" /
        tensorflowJavaVersion / s"tensorflow-core-native-$tensorflowJavaVersion-linux-x86_64.jar"
    },
    tensorflowGpuJar := {
      val root = (ThisBuild / baseDirectory).value
      val path = Process(Seq("bash", (root / "ci" / "setup-tensorflow.sh").getPath, "gpu"), root).!!.trim
      file(path)
    },
    Compile / packageBin := tensorflowJar.value,
    publishSettings,
    Compile / packageSrc / publishArtifact := false
  )

// Jars only YarnSuite's cluster JVM (MiniHadoop) uses: kept out of the executors' SPARK_HOME.
val miniHadoopOnly = Seq("hadoop-client-minicluster", "junit-", "bcprov-", "bcpkix-", "bcutil-")

// Suites that need a Spark with separate executor JVMs and the assembly jar, plus the Python suite's home.
lazy val tests = (project in file("tests"))
  .dependsOn(core % "compile->compile;test->test", examples)
  .settings(
    name := "spindle-tests",
    lineSettings,
    publish / skip := true,
    libraryDependencies ++= spark.value ++ Seq(
      "org.scalatest" %% "scalatest" % "3.2.19" % Test,
      "org.apache.hadoop" % "hadoop-client-minicluster" % (if (sparkLine == "4") hadoop4 else hadoop35) % Test,
      // What the minicluster jar leaves out and its ResourceManager needs: JUnit 5 (Hadoop's test utilities find
      // the work directory with it) and Bouncy Castle, at Hadoop 3.5.0's versions.
      "org.junit.jupiter" % "junit-jupiter-api" % "5.13.3" % Test,
      "org.bouncycastle" % "bcprov-jdk18on" % "1.82" % Test,
      "org.bouncycastle" % "bcpkix-jdk18on" % "1.82" % Test
    ),
    testSettings,
    sparkHome := {
      val home = target.value / "spark-home"
      val jars = home / "jars"
      IO.delete(home)
      IO.createDirectory(jars)
      (Test / dependencyClasspath).value.map(_.data).filter(f => f.isFile && f.getName.endsWith(".jar"))
        .filterNot(_.getName.startsWith("tensorflow-core-native"))
        .filterNot(f => miniHadoopOnly.exists(f.getName.startsWith))
        .foreach(f => java.nio.file.Files.createSymbolicLink((jars / f.getName).toPath, f.toPath))
      home
    },
    Test / envVars ++= Map("SPARK_HOME" -> sparkHome.value.getPath, "SPARK_SCALA_VERSION" -> scalaBinaryVersion.value),
    Test / javaOptions ++= Seq(
      s"-Dspindle.assembly=${(core / assembly).value.getPath}",
      s"-Dspindle.tensorflowJar=${(libtensorflow / tensorflowJar).value.getPath}",
      s"-Dspindle.tensorflowGpuJar=${(libtensorflow / tensorflowGpuJar).value.getPath}",
      s"-Dspindle.testClasses=${(Test / classDirectory).value.getPath}",
      s"-Dspindle.examplesJar=${(examples / Compile / packageBin).value.getPath}",
      // DistributionSuite's --packages session reads Spindle's artifacts from the local repository publish writes.
      s"-Dspindle.mavenRepo=${publishedRepo(libtensorflow, core).value}",
      s"-Dspindle.coordinate=${organization.value}:${(core / name).value}_${scalaBinaryVersion.value}:${version.value}"
    )
  )

lazy val examples = (project in file("examples"))
  .dependsOn(core)
  .settings(
    name := "spindle-examples",
    lineSettings,
    publish / skip := true,
    libraryDependencies ++= spark.value,
    Compile / unmanagedJars += (libtensorflow / tensorflowJar).value,
    run / fork := true,
    run / javaOptions ++= jvmOpens ++ Seq("-Xmx4g"),
    run / envVars ++= loopback + ("TF_CPP_MIN_LOG_LEVEL" -> "2"),
    run / baseDirectory := (ThisBuild / baseDirectory).value
  )

lazy val benches = (project in file("benches"))
  .dependsOn(core)
  .settings(
    name := "spindle-benches",
    lineSettings,
    publish / skip := true,
    libraryDependencies ++= spark.value,
    Compile / unmanagedJars += (libtensorflow / tensorflowJar).value,
    run / fork := true,
    run / javaOptions ++= jvmOpens ++ Seq("-Xmx8g"),
    run / envVars ++= loopback + ("TF_CPP_MIN_LOG_LEVEL" -> "2"),
    run / baseDirectory := (ThisBuild / baseDirectory).value
  )

addCommandAlias("generateParams", "core/generateParams")

lazy val root = (project in file("."))
  .aggregate(libtensorflow, core, tests, examples, benches)
  .settings(name := "spindle-root", publish / skip := true)
