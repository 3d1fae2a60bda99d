package io.spindle.params

import java.nio.charset.StandardCharsets
import java.nio.file.{Files, Path, Paths}

import org.apache.spark.ml.param._

import io.spindle.{SpindleEstimator, SpindleModel, StringMapParam, StringSeqMapParam}

/** The files generated from the Scala Params, their one source: Python's Params with typed getters and setters
  * (`python/spindle/_params.py`, which `spindle.ml` uses) and the reference page (`docs/params.md`).
  *
  * `./sbt generateParams` writes them; [[ParamsReferenceSuite]] fails when the checked-in files differ from what this
  * renders.
  */
object ParamsReference {

  val PythonFile = "python/spindle/_params.py"
  val MarkdownFile = "docs/params.md"

  /** How one kind of Scala Param reads in Python and in the reference. */
  private final case class Kind(scala: String, python: String, converter: String)

  private def kindOf(p: Param[_]): Kind = p match {
    case _: IntParam         => Kind("Int", "int", "TypeConverters.toInt")
    case _: LongParam        => Kind("Long", "int", "TypeConverters.toInt")
    case _: DoubleParam      => Kind("Double", "float", "TypeConverters.toFloat")
    case _: BooleanParam     => Kind("Boolean", "bool", "TypeConverters.toBoolean")
    case _: StringArrayParam => Kind("Array[String]", "list[str]", "TypeConverters.toListString")
    case _: StringMapParam   => Kind("Map[String, String]", "dict[str, str]", "to_string_map")
    case _: StringSeqMapParam =>
      Kind("Map[String, Seq[String]]", "dict[str, list[str]]", "to_string_list_map")
    // Every other Param of Spindle's is a Param[String]; erasure hides the type argument, so a new kind of Param must
    // be added above rather than fall through to the wrong one.
    case _ if p.getClass == classOf[Param[_]] => Kind("String", "str", "TypeConverters.toString")
    case _ => throw new IllegalStateException(s"param ${p.name}: no Python mapping for ${p.getClass.getName}")
  }

  /** One param trait: its Scala name, the Python class generated for it, the stages that have it and their Params. */
  private final case class Group(trait_ : String, python: String, base: String, stages: String, params: Seq[Param[_]])

  private lazy val model = new SpindleModel()
  private lazy val estimator = new SpindleEstimator()

  private lazy val groups: Seq[Group] = {
    val shared = model.params.toSeq
    val training = estimator.params.toSeq.filterNot(p => model.hasParam(p.name))
    for (p <- shared ++ training; stage <- Seq[Params](model, estimator) if stage.hasParam(p.name)) {
      for (
        accessor <- Seq(s"get${cap(p.name)}", s"set${cap(p.name)}")
        if !stage.getClass.getMethods.exists(_.getName == accessor)
      )
        throw new IllegalStateException(s"${stage.getClass.getSimpleName} has no $accessor for its param ${p.name}")
    }
    Seq(
      Group("SpindleParams", "_SpindleParams", "Params", "SpindleModel and SpindleEstimator", shared),
      Group("SpindleTrainingParams", "_SpindleTrainingParams", "_SpindleParams", "SpindleEstimator", training)
    )
  }

  private def cap(name: String): String = name.head.toUpper +: name.tail

  /** The doc as Python string literals of at most `width` characters each, joined by implicit concatenation; one
    * literal when it fits a 120-column line with its indent and comma (as `ruff format` would join them).
    */
  private def pyStrings(doc: String, indent: String, width: Int = 100): String = {
    val escaped = doc.replace("\\", "\\\\").replace("\"", "\\\"")
    val q = "\""
    if (indent.length + escaped.length + 3 <= 120) s"$indent$q$escaped$q"
    else
      escaped
        .split(" ")
        .foldLeft(Vector("")) { (acc, word) =>
          if (acc.last.isEmpty) acc.init :+ word
          else if (acc.last.length + 1 + word.length > width) acc.init :+ (acc.last + " ") :+ word
          else acc.init :+ (acc.last + " " + word)
        }
        .map(l => s"$indent$q$l$q")
        .mkString("\n")
  }

  def python: String = {
    val classes = groups.map { g =>
      val typeVar = if (g.python == "_SpindleParams") "_S" else "_T"
      val decls = g.params.map { p =>
        s"""    ${p.name} = Param(
           |        Params._dummy(),
           |        "${p.name}",
           |${pyStrings(p.doc, "        ")},
           |        ${kindOf(p).converter},
           |    )
           |""".stripMargin
      }
      val accessors = g.params.map { p =>
        val k = kindOf(p)
        s"""    def get${cap(p.name)}(self) -> ${k.python}:
           |        return self.getOrDefault(self.${p.name})
           |
           |    def set${cap(p.name)}(self: $typeVar, value: ${k.python}) -> $typeVar:
           |        return self._set(${p.name}=value)
           |""".stripMargin
      }
      s"""class ${g.python}(${g.base}):
         |    \"\"\"Scala's ``io.spindle.${g.trait_}``: the Params of ${g.stages}.\"\"\"
         |
         |${decls.mkString("\n")}
         |${accessors.mkString("\n")}""".stripMargin
    }
    s"""# Generated by `./sbt generateParams` from Scala's param traits (io.spindle.SpindleParams,
       |# io.spindle.SpindleTrainingParams): do not edit. ParamsReferenceSuite fails when this file is stale.
       |\"\"\"The Params of Spindle's stages with typed getters and setters, one to one with the Scala param traits.
       |
       |Their defaults are not here: each stage reads them from its JVM stage, their one source.
       |\"\"\"
       |
       |from collections.abc import Mapping, Sequence
       |from typing import Any, TypeVar
       |
       |from pyspark.ml.param import Param, Params, TypeConverters
       |
       |
       |def to_string_map(value: Any) -> dict[str, str]:
       |    \"\"\"Type converter of the map Params (Scala's ``StringMapParam``): a mapping of str to str, as a dict.\"\"\"
       |    if isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
       |        return dict(value)
       |    raise TypeError(f"expected a dict of str -> str, got {value!r}")
       |
       |
       |def to_string_list_map(value: Any) -> dict[str, list[str]]:
       |    \"\"\"Type converter of ``StringSeqMapParam``: str -> a sequence of str, as a dict of lists.\"\"\"
       |
       |    def strings(v: Any) -> bool:
       |        return isinstance(v, Sequence) and not isinstance(v, str) and all(isinstance(s, str) for s in v)
       |
       |    if isinstance(value, Mapping) and all(isinstance(k, str) and strings(v) for k, v in value.items()):
       |        return {k: list(v) for k, v in value.items()}
       |    raise TypeError(f"expected a dict of str -> list of str, got {value!r}")
       |
       |
       |_S = TypeVar("_S", bound="_SpindleParams")
       |_T = TypeVar("_T", bound="_SpindleTrainingParams")
       |
       |
       |${classes.mkString("\n\n")}""".stripMargin
  }

  /** A default as it reads in the reference: the Param's own JSON encoding, or unset. */
  private def default(stage: Params, p: Param[_]): String =
    stage.getDefault(stage.getParam(p.name)) match {
      case Some(v) => s"`${p.asInstanceOf[Param[Any]].jsonEncode(v)}`"
      case None    => "unset"
    }

  def markdown: String = {
    val sections = groups.map { g =>
      val rows = g.params.map { p =>
        val k = kindOf(p)
        val (m, e) = (if (model.hasParam(p.name)) default(model, p) else "", default(estimator, p))
        val shown = if (m.isEmpty || m == e) e else s"$m (SpindleEstimator: $e)"
        s"| `${p.name}` | `${k.scala}` | `${k.python}` | $shown | ${p.doc.replace("|", "\\|")} |"
      }
      (Seq(
        s"## ${g.stages} (`${g.trait_}`)",
        "",
        "| Param | Scala | Python | Default | What it does |",
        "|---|---|---|---|---|"
      ) ++
        rows).mkString("", "\n", "\n")
    }
    val intro = """# Params
      |
      |<!-- Generated by `./sbt generateParams` from Scala's param traits: do not edit. -->
      |
      |Every Param of Spindle's stages, generated from their Scala source (`scala/src/main/scala/io/spindle/SpindleParams.scala`
      |and `SpindleTrainingParams.scala`). Each `name` has a getter `getName` and a setter `setName` in Scala, Java and
      |Python, on every stage that has it; Python also takes them as keywords (`SpindleEstimator(numWorkers=2)`). Java
      |callers pass map Params as `java.util.Map`. Defaults are shown as JSON.
      |""".stripMargin
    (intro +: sections).mkString("\n")
  }

  /** The repository root: the nearest folder above the working directory that holds build.sbt. */
  def root: Path =
    Iterator
      .iterate(Paths.get("").toAbsolutePath)(_.getParent)
      .takeWhile(_ != null)
      .find(d => Files.exists(d.resolve("build.sbt")) && Files.isDirectory(d.resolve("python")))
      .getOrElse(throw new IllegalStateException(s"no repository root above ${Paths.get("").toAbsolutePath}"))

  def main(args: Array[String]): Unit =
    for ((file, text) <- Seq(PythonFile -> python, MarkdownFile -> markdown)) {
      Files.write(root.resolve(file), text.getBytes(StandardCharsets.UTF_8))
      println(s"wrote $file")
    }
}
