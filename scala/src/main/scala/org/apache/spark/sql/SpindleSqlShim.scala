package org.apache.spark.sql

import org.apache.spark.rdd.RDD
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.types.StructType

/** The two package-private Spark SQL calls Spindle needs to stream rows without converting them to `Row` objects:
  * reading a DataFrame as `InternalRow`s and wrapping `InternalRow`s back into a DataFrame.
  */
object SpindleSqlShim {

  /** The DataFrame's rows in Spark's internal (mostly UnsafeRow) form. */
  def internalRows(df: DataFrame): RDD[InternalRow] = df.asInstanceOf[classic.DataFrame].queryExecution.toRdd

  /** A DataFrame over `rows`, which must match `schema`. */
  def createDataFrame(spark: SparkSession, rows: RDD[InternalRow], schema: StructType): DataFrame =
    spark.asInstanceOf[classic.SparkSession].internalCreateDataFrame(rows, schema, isStreaming = false)
}
