package org.apache.spark.sql

import org.apache.spark.rdd.RDD
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan

/** A Dataset's session, plan and rows, for [[SpindleSqlShim]]: on Spark 3.5, on the Dataset itself. */
private[sql] object SpindleDatasets {
  type Session = SparkSession

  def session(df: DataFrame): Session = df.sparkSession

  def logicalPlan(df: DataFrame): LogicalPlan = df.logicalPlan

  def ofRows(session: Session, plan: LogicalPlan): DataFrame = Dataset.ofRows(session, plan)

  def toRdd(df: DataFrame): RDD[InternalRow] = df.queryExecution.toRdd
}
