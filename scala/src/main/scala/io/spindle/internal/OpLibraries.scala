package io.spindle.internal

import java.io.File

import scala.collection.mutable

import org.apache.hadoop.fs.{Path => HPath}
import org.apache.spark.{SparkContext, SparkFiles}
import org.slf4j.LoggerFactory

import io.spindle.{NativeLoader, SpindleOpLibraryException}
import io.spindle.jni.NativeRuntime

/** Custom op libraries (`opLibraries`, `spindle.opLibraries`): shipped as Spark ships any file (`sc.addFile`, then
  * `SparkFiles.get` in each JVM), and loaded into TensorFlow before a model in every JVM that loads one.
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

  /** Ships `paths` and the conf's libraries from the driver, loading each here first; returns the names to pass to
    * [[loadShipped]] in the JVMs that load the model.
    */
  def ship(sc: SparkContext, paths: Seq[String]): Seq[String] = {
    val all = (sc.getConf.get(ConfKey, "").split(",").map(_.trim).filter(_.nonEmpty).toSeq ++ paths).distinct
    val names = all.map(ship(sc, _))
    names.groupBy(identity).collectFirst {
      case (name, same) if same.size > 1 =>
        throw new SpindleOpLibraryException(
          s"two op libraries named $name (${all.mkString(", ")}): Spark ships files by name, rename one"
        )
    }
    names
  }

  private def ship(sc: SparkContext, path: String): String = synchronized {
    val qualified = ModelCache.qualify(path, sc.hadoopConfiguration)
    shipped.getOrElseUpdate(
      (sc.applicationId, qualified), {
        val hpath = new HPath(qualified)
        val fs = hpath.getFileSystem(sc.hadoopConfiguration)
        if (!fs.exists(hpath) || !fs.getFileStatus(hpath).isFile)
          throw new SpindleOpLibraryException(s"op library $path does not exist or is no file")
        sc.addFile(qualified)
        val local =
          if (fs.getUri.getScheme == "file") new File(hpath.toUri).getPath else SparkFiles.get(hpath.getName)
        load(local)
        hpath.getName
      }
    )
  }

  /** Loads the shipped libraries `names` into this JVM's TensorFlow (a no-op for those loaded already). */
  def loadShipped(names: Seq[String]): Unit = names.foreach { name =>
    val local = SparkFiles.get(name)
    if (!new File(local).isFile)
      throw new SpindleOpLibraryException(s"op library $name was not shipped to this JVM (no file $local)")
    load(local)
  }

  private def load(local: String): Unit = {
    NativeLoader.ensureLoaded()
    log.info(NativeRuntime.loadOpLibrary(local))
  }
}
