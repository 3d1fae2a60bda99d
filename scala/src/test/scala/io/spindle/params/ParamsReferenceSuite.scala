package io.spindle.params

import java.nio.charset.StandardCharsets
import java.nio.file.Files

import org.scalatest.funsuite.AnyFunSuite

import io.spindle.{SpindleEstimator, SpindleModel}

/** The generated files are what the Scala Params render to now: a Param added, renamed or re-documented in Scala
  * without `./sbt generateParams` fails here.
  */
class ParamsReferenceSuite extends AnyFunSuite {

  for (
    (file, rendered) <- Seq(
      ParamsReference.PythonFile -> (() => ParamsReference.python),
      ParamsReference.MarkdownFile -> (() => ParamsReference.markdown)
    )
  )
    test(s"$file is up to date with the Scala Params") {
      val path = ParamsReference.root.resolve(file)
      assert(Files.exists(path), s"$file is missing: run ./sbt generateParams")
      val onDisk = new String(Files.readAllBytes(path), StandardCharsets.UTF_8)
      assert(onDisk == rendered(), s"$file is stale: run ./sbt generateParams and commit the result")
    }

  test("the reference names every Param of both stages, with its stage's default") {
    val md = ParamsReference.markdown
    for (p <- new SpindleEstimator().params ++ new SpindleModel().params)
      assert(md.contains(s"| `${p.name}` |"), p.name)
    // A default the estimator changes is shown for both stages.
    assert(md.contains("| `numSlots` | `Int` | `int` | `2` (SpindleEstimator: `8`) |"))
  }
}
