package io.spindle.internal

import java.io.File
import java.nio.file.{Files, Path, StandardCopyOption}
import java.security.MessageDigest
import java.util.zip.ZipFile

import scala.collection.mutable
import scala.jdk.CollectionConverters._

import io.spindle.SpindleOpLibraryException

/** A wheel (`.whl`, a zip) named in `opLibraries`: its op libraries (the `.so` files under an `ops/` folder, such as
  * tensorflow-text's `tensorflow_text/python/ops/`) and its `*.dist-info` are extracted into a folder laid out as the
  * wheel installs, so that the native side finds the dist-info beside each library and checks the TensorFlow release it
  * was built for, on every JVM. Other `.so` files of a wheel (Python extension modules) are left out: they need
  * Python's symbols and are no op libraries.
  */
private[internal] object OpLibraryWheel {

  // Wheels this JVM has extracted, by local path and content digest, with the libraries found.
  private val extracted = mutable.Map.empty[String, Seq[String]]

  def isWheel(local: String): Boolean = local.endsWith(".whl")

  /** The op libraries of the wheel at `local`, extracted once per JVM and content. */
  def libraries(local: String): Seq[String] = synchronized {
    val digest = MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(new File(local).toPath))
    val id = digest.take(8).map("%02x".format(_)).mkString
    extracted.getOrElseUpdate(local + "#" + id, extract(local, Files.createTempDirectory(s"spindle-wheel-$id")))
  }

  private def extract(local: String, site: Path): Seq[String] = {
    // deleteOnExit removes empty folders only; the libraries stay mapped until the JVM ends, so the tree goes then.
    sys.addShutdownHook(deleteTree(site))
    val zip =
      try new ZipFile(local)
      catch { case e: java.io.IOException => throw new SpindleOpLibraryException(s"wheel $local is no zip", e) }
    try {
      val wanted = zip
        .entries()
        .asScala
        .filter { e =>
          val name = e.getName
          !e.isDirectory && !name.contains("..") &&
          ((name.endsWith(".so") && name
            .contains("/ops/")) || name.split('/').headOption.exists(_.endsWith(".dist-info")))
        }
        .toSeq
      val libraries = wanted.flatMap { e =>
        val target = site.resolve(e.getName)
        Files.createDirectories(target.getParent)
        val in = zip.getInputStream(e)
        try Files.copy(in, target, StandardCopyOption.REPLACE_EXISTING)
        finally in.close()
        Some(target.toString).filter(_.endsWith(".so"))
      }
      if (libraries.isEmpty)
        throw new SpindleOpLibraryException(s"wheel $local holds no op library (no .so under ops/)")
      libraries.sorted
    } finally zip.close()
  }

  private def deleteTree(root: Path): Unit =
    if (Files.exists(root)) {
      val walk = Files.walk(root)
      try walk.iterator().asScala.toSeq.reverse.foreach(p => Files.deleteIfExists(p))
      finally walk.close()
    }
}
