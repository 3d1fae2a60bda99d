package org.apache.spark.sql

import org.apache.spark.rdd.RDD
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan

/** A Dataset's session, plan and rows, for [[SpindleSqlShim]]: on Spark 4 they live on the `classic` classes. */
private[sql] object SpindleDatasets {
  type Session = classic.SparkSession

  def session(df: DataFrame): Session = df.sparkSession.asInstanceOf[classic.SparkSession]

  def logicalPlan(df: DataFrame): LogicalPlan = df.asInstanceOf[classic.DataFrame].logicalPlan

  def ofRows(session: Session, plan: LogicalPlan): DataFrame = classic.Dataset.ofRows(session, plan)

  def toRdd(df: DataFrame): RDD[InternalRow] = df.asInstanceOf[classic.DataFrame].queryExecution.toRdd
}
