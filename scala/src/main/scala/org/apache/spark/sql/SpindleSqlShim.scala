package org.apache.spark.sql

import org.apache.spark.ShuffleDependency
import org.apache.spark.rdd.RDD
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.catalyst.types.DataTypeUtils
import org.apache.spark.sql.execution.{ColumnarToRowExec, SparkPlan, WholeStageCodegenExec}
import org.apache.spark.sql.types.StructType
import org.apache.spark.sql.vectorized.ColumnarBatch

/** The package-private Spark SQL calls Spindle needs to stream rows without converting them to `Row` objects: scoring
  * inside a Dataset's plan, and reading a DataFrame as `InternalRow`s (training, benchmarks).
  */
object SpindleSqlShim {

  /** `df` with the columns of `added` appended by `score`, one partition's internal rows at a time, or by
    * `scoreColumns`, a column batch at a time, as a node of its plan ([[SpindleScore]]): batch and streaming Datasets
    * alike. `reads` are the ordinals of the columns the model reads; each function gets those of the columns to hand
    * on.
    */
  def scoreInPlan(
      df: DataFrame,
      reads: Seq[Int],
      added: StructType,
      score: (Seq[Int], Iterator[InternalRow]) => Iterator[InternalRow],
      scoreColumns: Option[(Seq[Int], Iterator[ColumnarBatch]) => Iterator[ColumnarBatch]]
  ): DataFrame = {
    val session = SpindleDatasets.session(df)
    val experimental = session.experimental
    if (!experimental.extraStrategies.contains(SpindleScoreStrategy))
      experimental.extraStrategies = experimental.extraStrategies :+ SpindleScoreStrategy
    if (!experimental.extraOptimizations.contains(SpindlePrunePassed))
      experimental.extraOptimizations = experimental.extraOptimizations :+ SpindlePrunePassed
    val plan = SpindleDatasets.logicalPlan(df)
    val node =
      SpindleScore(plan.output, reads.map(plan.output), DataTypeUtils.toAttributes(added), score, scoreColumns, plan)
    SpindleDatasets.ofRows(session, node)
  }

  /** The DataFrame's rows in Spark's internal (mostly UnsafeRow) form. */
  def internalRows(df: DataFrame): RDD[InternalRow] = SpindleDatasets.toRdd(df)

  /** [[internalRows]] in exactly `partitions` partitions, for a barrier stage: as they come when they already are, else
    * repartitioned. Spark refuses a barrier stage over an RDD whose ancestors in the same stage have another number of
    * partitions (a `coalesce`, a `union`), so those are repartitioned too.
    */
  def internalRows(df: DataFrame, partitions: Int): RDD[InternalRow] = {
    def stageOf(rdd: RDD[_]): Boolean = rdd.getNumPartitions == partitions && rdd.dependencies.forall {
      case _: ShuffleDependency[_, _, _] => true
      case narrow                        => stageOf(narrow.rdd)
    }
    val rows = internalRows(df)
    if (stageOf(rows)) rows else internalRows(df.repartition(partitions))
  }

  /** The DataFrame's column batches, when its plan ends in them (the vectorized Parquet or ORC reader, a cached
    * relation, under Spark's conversion to rows) in exactly `partitions` partitions, as a barrier stage needs them.
    */
  def columnarBatches(df: DataFrame, partitions: Int): Option[RDD[ColumnarBatch]] = {
    def underRows(plan: SparkPlan): Option[SparkPlan] = plan match {
      case w: WholeStageCodegenExec => underRows(w.child)
      case c: ColumnarToRowExec     => Some(c.child)
      case _                        => None
    }
    underRows(df.queryExecution.executedPlan)
      .map(_.executeColumnar())
      .filter(_.getNumPartitions == partitions)
  }
}
