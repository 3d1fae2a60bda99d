package io.spindle.internal

import java.io.File
import java.nio.file.Files

import scala.collection.mutable

import org.apache.hadoop.conf.Configuration
import org.apache.hadoop.fs.{Path => HPath}
import org.apache.spark.{SparkContext, SparkFiles}
import org.slf4j.LoggerFactory

import io.spindle.{NativeLoader, SpindleOpLibraryException}
import io.spindle.jni.NativeRuntime

/** Custom op libraries (`opLibraries`, `spindle.opLibraries`; a `.whl` stands for the op libraries it holds): shipped
  * as Spark ships any file (`sc.addFile`, then `SparkFiles.get` in each JVM), and loaded into TensorFlow before a model
  * in every JVM that loads one.
  *
  * The driver loads each library from the path the user gave when it is local, so that the native side finds the wheel
  * the library belongs to (its `*.dist-info`) and checks the TensorFlow version it was built for; shipped copies lie
  * alone in Spark's files directory, where only TensorFlow's own loader checks them. The native side loads each content
  * once per process, so the driver's copy and an executor thread's (local mode) load once.
  */
object OpLibraries {

  /** The Spark conf whose comma-separated paths every stage adds to its `opLibraries`. */
  val ConfKey = "spindle.opLibraries"

  private val log = LoggerFactory.getLogger(getClass)
  // Paths this driver has shipped, by application (a JVM may run several SparkContexts one after another, and each
  // ships its files anew) and qualified path, with the name SparkFiles knows them by.
  private val shipped = mutable.Map.empty[(String, String), String]
  // Remote libraries copied to local disk by this JVM, by qualified path.
  private val localized = mutable.Map.empty[String, String]

  /** Ships `paths` and the conf's libraries from the driver, loading each here first; returns their qualified paths,
    * which [[loadShipped]] takes in the JVMs that load the model.
    */
  def ship(sc: SparkContext, paths: Seq[String]): Seq[String] = {
    val all = (sc.getConf.get(ConfKey, "").split(",").map(_.trim).filter(_.nonEmpty).toSeq ++ paths)
      .map(ModelCache.qualify(_, sc.hadoopConfiguration))
      .distinct
    all.groupBy(new HPath(_).getName).collectFirst {
      case (name, same) if same.size > 1 =>
        throw new SpindleOpLibraryException(
          s"two op libraries named $name (${same.mkString(", ")}): Spark ships files by name, rename one"
        )
    }
    all.foreach(ship(sc, _))
    all
  }

  private def ship(sc: SparkContext, qualified: String): Unit = synchronized {
    if (!shipped.contains((sc.applicationId, qualified))) {
      val hpath = new HPath(qualified)
      val fs = hpath.getFileSystem(sc.hadoopConfiguration)
      if (!fs.exists(hpath) || !fs.getFileStatus(hpath).isFile)
        throw new SpindleOpLibraryException(s"op library $qualified does not exist or is no file")
      sc.addFile(qualified)
      val local =
        if (fs.getUri.getScheme == "file") new File(hpath.toUri).getPath else SparkFiles.get(hpath.getName)
      load(local)
      shipped((sc.applicationId, qualified)) = hpath.getName
    }
  }

  /** Loads the libraries [[ship]] returned into this JVM's TensorFlow (a no-op for those loaded already): the copy
    * Spark fetched (`SparkFiles.get`), or else the library at its path, copied to local disk once per JVM when remote.
    * Spark 4 runs a Dataset's jobs under its session's artifact state, whose tasks fetch only that session's files, so
    * a file added with `sc.addFile` outside it may not be there; the path is read as the SavedModel's is.
    */
  def loadShipped(qualified: Seq[String]): Unit = qualified.foreach { path =>
    val fetched = new File(SparkFiles.get(new HPath(path).getName))
    load(if (fetched.isFile) fetched.getPath else localize(path))
  }

  private def localize(path: String): String = synchronized {
    localized.getOrElseUpdate(
      path, {
        val hpath = new HPath(path)
        val fs = hpath.getFileSystem(new Configuration())
        if (!fs.exists(hpath))
          throw new SpindleOpLibraryException(s"op library $path is neither shipped to this JVM nor readable here")
        if (fs.getUri.getScheme == "file") new File(hpath.toUri).getPath
        else {
          val dir = Files.createTempDirectory("spindle-op-library")
          dir.toFile.deleteOnExit()
          val local = dir.resolve(hpath.getName)
          fs.copyToLocalFile(hpath, new HPath(local.toUri))
          local.toFile.deleteOnExit()
          local.toString
        }
      }
    )
  }

  // A wheel stands for the op libraries it holds (see OpLibraryWheel).
  private def load(local: String): Unit = {
    NativeLoader.ensureLoaded()
    val libraries = if (OpLibraryWheel.isWheel(local)) OpLibraryWheel.libraries(local) else Seq(local)
    libraries.foreach(l => log.info(NativeRuntime.loadOpLibrary(l)))
  }
}
