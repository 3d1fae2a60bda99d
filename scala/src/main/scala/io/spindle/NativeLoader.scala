package io.spindle

import java.io.{File, IOException, InputStream}
import java.nio.file.{Files, Path, Paths, StandardCopyOption}

import scala.util.control.NonFatal

import org.slf4j.LoggerFactory

import io.spindle.internal.NativeLogs
import io.spindle.jni.NativeRuntime

/** Loads libtensorflow and Spindle's native runtime into this JVM, once.
  *
  * Order matters: the cdylib's DT_NEEDED entries (libtensorflow_cc.so.2, libtensorflow_framework.so.2) resolve by
  * soname only against libraries already loaded, so TensorFlow is loaded first, by absolute path, and no
  * LD_LIBRARY_PATH is needed on executors.
  *
  * Where TensorFlow comes from, first match wins:
  *   1. the directory in system property `spindle.tensorflow.dir` or environment variable `SPINDLE_TENSORFLOW_DIR`
  *      (holding both .so.2 files); 2. the `org.tensorflow:tensorflow-core-native` jar on the class path: the CPU build
  *      (classifier linux-x86_64, or its republication `io.spindle:spindle-libtensorflow`) or the GPU build (classifier
  *      linux-x86_64-gpu), the CPU one first when both are there, unless property `spindle.tensorflow.variant` or
  *      environment variable `SPINDLE_TENSORFLOW_VARIANT` says `cpu` or `gpu`. Its libraries (750 MB; 1.26 GB for the
  *      GPU build) are extracted once per machine into a cache directory (property `spindle.cache.dir`, default
  *      `~/.cache/spindle`), keyed by jar name and size, with an atomic rename so that concurrent JVMs never see half a
  *      file.
  *
  * The runtime itself: `System.loadLibrary("spindle_jni")` (java.library.path) first, else the copy bundled in the jar
  * under `native/linux-x86_64/`, extracted to a temporary file deleted when the JVM exits. If both fail, the first
  * error is kept as the cause and the message says what is missing.
  *
  * This class must live on the application class path: a native library cannot be loaded by two isolated class loaders
  * of one JVM.
  */
object NativeLoader {
  // Where each build of tensorflow-core-native keeps its libraries.
  private val TfResourceDirs =
    Seq(
      "cpu" -> "org/tensorflow/internal/c_api/linux-x86_64/",
      "gpu" -> "org/tensorflow/internal/c_api/linux-x86_64-gpu/"
    )
  private val TfLibs = Seq("libtensorflow_framework.so.2", "libtensorflow_cc.so.2")
  private val RuntimeResource = "/native/linux-x86_64/libspindle_jni.so"

  @volatile private var loaded: Option[Either[Throwable, String]] = None
  // The build loaded, for the log line: `cpu` or `gpu` (from a jar), `dir` (from spindle.tensorflow.dir).
  @volatile private var variantLoaded = "dir"

  /** Loads everything once; later calls return at once, or rethrow the first failure. */
  def ensureLoaded(): String = {
    if (loaded.isEmpty) synchronized {
      if (loaded.isEmpty)
        loaded = Some(
          try Right(load())
          catch { case NonFatal(e) => Left(e) }
        )
    }
    loaded.get match {
      case Right(version)            => version
      case Left(e: SpindleException) => throw e
      case Left(e) => throw new SpindleNativeException(s"Spindle's native runtime failed to load: $e", e)
    }
  }

  private def load(): String = {
    val os = System.getProperty("os.name").toLowerCase
    val arch = System.getProperty("os.arch")
    if (!os.contains("linux") || !(arch == "amd64" || arch == "x86_64"))
      throw new SpindleNativeException(s"Spindle ships native code for linux-x86_64 only; this JVM is $os-$arch")
    val tfDir = tensorflowDir()
    TfLibs.foreach(lib => System.load(tfDir.resolve(lib).toString))
    loadRuntime()
    val version = NativeRuntime.init(NativeLogs.level)
    NativeLogs.start()
    val what = if (variantLoaded == "dir") "from spindle.tensorflow.dir" else s"$variantLoaded build"
    LoggerFactory.getLogger(getClass).info(s"loaded libtensorflow ($what) from $tfDir")
    version
  }

  private def tensorflowDir(): Path = {
    val configured = sys.props.get("spindle.tensorflow.dir").orElse(sys.env.get("SPINDLE_TENSORFLOW_DIR"))
    configured match {
      case Some(dir) =>
        val path = Paths.get(dir)
        TfLibs.find(lib => !Files.isRegularFile(path.resolve(lib))).foreach { missing =>
          throw new SpindleNativeException(
            s"TensorFlow library $missing not found in $path (from spindle.tensorflow.dir / SPINDLE_TENSORFLOW_DIR)"
          )
        }
        path
      case None => extractTensorflow()
    }
  }

  private def extractTensorflow(): Path = {
    val loader = Option(getClass.getClassLoader).getOrElse(ClassLoader.getSystemClassLoader)
    val variant = sys.props.get("spindle.tensorflow.variant").orElse(sys.env.get("SPINDLE_TENSORFLOW_VARIANT"))
    val wanted = variant match {
      case None                                        => TfResourceDirs
      case Some(v) if TfResourceDirs.exists(_._1 == v) => TfResourceDirs.filter(_._1 == v)
      case Some(v) =>
        throw new SpindleNativeException(s"spindle.tensorflow.variant / SPINDLE_TENSORFLOW_VARIANT is '$v': cpu or gpu")
    }
    val found = wanted.iterator.flatMap { case (v, dir) =>
      Option(loader.getResource(dir + TfLibs.last)).map((v, dir, _))
    }
    if (!found.hasNext)
      throw new SpindleNativeException(
        s"TensorFlow 2.21 native libraries${variant.fold("")(v => s" ($v build)")} not found: put " +
          "io.spindle:spindle-libtensorflow:1.2.0 (which --packages of Spindle brings) or " +
          "org.tensorflow:tensorflow-core-native:1.2.0 (classifier linux-x86_64, or linux-x86_64-gpu for the GPU " +
          "build, with --jars) on the class path, or set SPINDLE_TENSORFLOW_DIR " +
          "to a directory holding libtensorflow_cc.so.2 and libtensorflow_framework.so.2"
      )
    val (which, resourceDir, url) = found.next()
    variantLoaded = which
    // Key the cache by the resource's jar and size so a different TensorFlow never reuses a stale copy.
    val conn = url.openConnection()
    val key = s"${new File(url.getPath.takeWhile(_ != '!')).getName.stripSuffix(".jar")}-${conn.getContentLengthLong}"
    val cacheRoot = Paths.get(sys.props.getOrElse("spindle.cache.dir", sys.props("user.home") + "/.cache/spindle"))
    val target = cacheRoot.resolve(key)
    if (!TfLibs.forall(lib => Files.isRegularFile(target.resolve(lib)))) {
      Files.createDirectories(cacheRoot)
      val staging = Files.createTempDirectory(cacheRoot, ".extract-")
      try {
        TfLibs.foreach(lib => copy(loader.getResourceAsStream(resourceDir + lib), staging.resolve(lib)))
        try Files.move(staging, target, StandardCopyOption.ATOMIC_MOVE)
        catch { case _: IOException if Files.isDirectory(target) => () } // another JVM won the race
      } finally deleteTree(staging)
    }
    target
  }

  private def loadRuntime(): Unit = {
    try System.loadLibrary("spindle_jni")
    catch {
      case first: UnsatisfiedLinkError =>
        val in = getClass.getResourceAsStream(RuntimeResource)
        if (in == null)
          throw new SpindleNativeException(
            s"libspindle_jni.so is neither on java.library.path nor bundled in the Spindle jar ($RuntimeResource)",
            first
          )
        val tmp = Files.createTempFile("libspindle_jni-", ".so")
        tmp.toFile.deleteOnExit()
        try {
          copy(in, tmp)
          System.load(tmp.toString)
        } catch {
          case NonFatal(e) =>
            val error = new SpindleNativeException(s"loading the bundled libspindle_jni.so failed: $e", first)
            error.addSuppressed(e)
            throw error
          case e: UnsatisfiedLinkError =>
            val error =
              new SpindleNativeException(s"loading the bundled libspindle_jni.so failed: ${e.getMessage}", first)
            error.addSuppressed(e)
            throw error
        }
    }
  }

  private def copy(in: InputStream, to: Path): Unit =
    try Files.copy(in, to, StandardCopyOption.REPLACE_EXISTING)
    finally in.close()

  private def deleteTree(path: Path): Unit =
    if (Files.exists(path)) {
      val stream = Files.walk(path)
      try stream.sorted(java.util.Comparator.reverseOrder[Path]()).forEach(p => Files.deleteIfExists(p))
      finally stream.close()
    }
}
