package org.apache.spark.ml

import org.apache.spark.ml.param.Params
import org.apache.spark.ml.util.{DefaultParamsReader, DefaultParamsWriter}
import org.apache.spark.sql.SparkSession

/** Spark ML's standard params metadata (package-private in Spark), so Spindle's stages persist in the same
  * format as Spark's own and load in any Spark ML pipeline.
  */
object SpindleMLShim {
  def saveMetadata(instance: Params, path: String, spark: SparkSession): Unit =
    DefaultParamsWriter.saveMetadata(instance, path, spark)

  /** Reads the metadata at `path`, checks its class, and sets its params on `instance`. */
  def loadParams(instance: Params, path: String, spark: SparkSession, expectedClass: String): Unit =
    DefaultParamsReader.loadMetadata(path, spark, expectedClass).getAndSetParams(instance)
}
