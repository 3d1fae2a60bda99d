package org.apache.spark.ml

import org.apache.spark.ml.param.Params
import org.apache.spark.ml.util.{DefaultParamsReader, DefaultParamsWriter}
import org.apache.spark.sql.SparkSession

/** Spark ML's standard params metadata (package-private in Spark), so Spindle's stages persist in the same format as
  * Spark's own and load in any Spark ML pipeline.
  */
object SpindleMLShim {
  def saveMetadata(instance: Params, path: String, spark: SparkSession): Unit =
    DefaultParamsWriter.saveMetadata(instance, path, spark.sparkContext)

  /** Reads the metadata at `path`, checks its class, makes the stage with its uid and sets its params. */
  def load[T <: Params](path: String, spark: SparkSession, expectedClass: String)(make: String => T): T = {
    val metadata = DefaultParamsReader.loadMetadata(path, spark.sparkContext, expectedClass)
    val instance = make(metadata.uid)
    metadata.getAndSetParams(instance)
    instance
  }
}
