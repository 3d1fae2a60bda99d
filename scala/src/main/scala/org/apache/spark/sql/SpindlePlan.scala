package org.apache.spark.sql

import org.apache.spark.rdd.RDD
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.catalyst.expressions.{Attribute, AttributeSet}
import org.apache.spark.sql.catalyst.plans.logical.{LogicalPlan, UnaryNode}
import org.apache.spark.sql.execution.{SparkPlan, SparkStrategy, UnaryExecNode}
import org.apache.spark.sql.vectorized.ColumnarBatch

/** `SpindleModel.transform` as a node of the Dataset's own plan: the child's rows, in Spark's internal form, through a
  * function that appends the output columns `added`. Staying in the plan (instead of going through an RDD and back) is
  * what lets a streaming Dataset be scored: each micro-batch plans the node again over that batch's rows.
  *
  * @param input
  *   the child's columns, read by ordinal and passed through: as expressions of the node, they are references the
  *   optimizer keeps (a node that referenced none would have its child's columns pruned under it)
  * @param score
  *   one partition's rows to the rows with the outputs appended (`input ++ added`)
  * @param scoreColumns
  *   the same over column batches, taken when the child produces them (the vectorized Parquet and ORC readers, a cached
  *   relation): batches of the child's vectors with the output vectors appended; None: always rows
  */
final case class SpindleScore(
    input: Seq[Attribute],
    added: Seq[Attribute],
    score: Iterator[InternalRow] => Iterator[InternalRow],
    scoreColumns: Option[Iterator[ColumnarBatch] => Iterator[ColumnarBatch]],
    child: LogicalPlan
) extends UnaryNode {
  override def output: Seq[Attribute] = input ++ added
  override def producedAttributes: AttributeSet = AttributeSet(added)
  override protected def withNewChildInternal(newChild: LogicalPlan): SpindleScore = copy(child = newChild)
}

/** The physical node of [[SpindleScore]]. It is columnar (takes and gives column batches) when its child is and
  * `scoreColumns` is set: Spark then puts no row conversion below it, and one above it only where its parent needs
  * rows, whose generated code reads just the columns that parent uses.
  */
final case class SpindleScoreExec(
    input: Seq[Attribute],
    added: Seq[Attribute],
    score: Iterator[InternalRow] => Iterator[InternalRow],
    scoreColumns: Option[Iterator[ColumnarBatch] => Iterator[ColumnarBatch]],
    child: SparkPlan
) extends UnaryExecNode {
  override def output: Seq[Attribute] = input ++ added
  override def producedAttributes: AttributeSet = AttributeSet(added)
  override def supportsColumnar: Boolean = scoreColumns.isDefined && child.supportsColumnar
  override protected def doExecute(): RDD[InternalRow] = {
    val f = score
    child.execute().mapPartitionsInternal(f)
  }
  override protected def doExecuteColumnar(): RDD[ColumnarBatch] = {
    val f = scoreColumns.get
    child.executeColumnar().mapPartitionsInternal(f)
  }
  override protected def withNewChildInternal(newChild: SparkPlan): SpindleScoreExec = copy(child = newChild)
}

/** Plans [[SpindleScore]]; registered once per session as an extra strategy. */
object SpindleScoreStrategy extends SparkStrategy {
  override def apply(plan: LogicalPlan): Seq[SparkPlan] = plan match {
    case SpindleScore(input, added, score, columns, child) =>
      SpindleScoreExec(input, added, score, columns, planLater(child)) :: Nil
    case _ => Nil
  }
}
