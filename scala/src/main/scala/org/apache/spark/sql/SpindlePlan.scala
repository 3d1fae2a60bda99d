package org.apache.spark.sql

import org.apache.spark.rdd.RDD
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.catalyst.expressions.{Attribute, AttributeSet}
import org.apache.spark.sql.catalyst.plans.logical.{LogicalPlan, Project, UnaryNode}
import org.apache.spark.sql.catalyst.rules.Rule
import org.apache.spark.sql.execution.{SparkPlan, SparkStrategy, UnaryExecNode}
import org.apache.spark.sql.vectorized.ColumnarBatch

/** `SpindleModel.transform` as a node of the Dataset's own plan: the child's rows, in Spark's internal form, through a
  * function that appends the output columns `added`. Staying in the plan (instead of going through an RDD and back) is
  * what lets a streaming Dataset be scored: each micro-batch plans the node again over that batch's rows.
  *
  * @param passed
  *   the child's columns handed on, all of them at first; [[SpindlePrunePassed]] drops those no one above reads
  * @param reads
  *   the child's columns the model reads: as expressions of the node they are references the optimizer keeps, whether
  *   passed on or not
  * @param score
  *   one partition's rows to rows of the `passed` columns (their ordinals in the child's rows) and the outputs
  * @param scoreColumns
  *   the same over column batches, taken when the child produces them (the vectorized Parquet and ORC readers, a cached
  *   relation): batches of the passed vectors with the output vectors appended; None: always rows
  */
final case class SpindleScore(
    passed: Seq[Attribute],
    reads: Seq[Attribute],
    added: Seq[Attribute],
    score: (Seq[Int], Iterator[InternalRow]) => Iterator[InternalRow],
    scoreColumns: Option[(Seq[Int], Iterator[ColumnarBatch]) => Iterator[ColumnarBatch]],
    child: LogicalPlan
) extends UnaryNode {
  override def output: Seq[Attribute] = passed ++ added
  override def producedAttributes: AttributeSet = AttributeSet(added)
  override protected def withNewChildInternal(newChild: LogicalPlan): SpindleScore = copy(child = newChild)
}

/** Drops from a [[SpindleScore]] under a projection the passed columns the projection does not read: a query that keeps
  * only some of the input's columns (`transform(df).select("id", "probabilities")`) then never copies the others into
  * its rows. Registered once per session as an extra optimization.
  */
object SpindlePrunePassed extends Rule[LogicalPlan] {
  override def apply(plan: LogicalPlan): LogicalPlan = plan.transform {
    case p @ Project(_, s: SpindleScore) if !s.passed.forall(p.references.contains) =>
      p.copy(child = s.copy(passed = s.passed.filter(p.references.contains)))
  }
}

/** The physical node of [[SpindleScore]]. It is columnar (takes and gives column batches) when its child is and
  * `scoreColumns` is set: Spark then puts no row conversion below it, and one above it only where its parent needs
  * rows, whose generated code reads just the columns that parent uses.
  */
final case class SpindleScoreExec(
    passed: Seq[Attribute],
    reads: Seq[Attribute],
    added: Seq[Attribute],
    score: (Seq[Int], Iterator[InternalRow]) => Iterator[InternalRow],
    scoreColumns: Option[(Seq[Int], Iterator[ColumnarBatch]) => Iterator[ColumnarBatch]],
    child: SparkPlan
) extends UnaryExecNode {
  override def output: Seq[Attribute] = passed ++ added
  override def producedAttributes: AttributeSet = AttributeSet(added)
  override def supportsColumnar: Boolean = scoreColumns.isDefined && child.supportsColumnar
  // Where each passed column is in the child's rows.
  private def ordinals: Seq[Int] = passed.map(a => child.output.indexWhere(_.exprId == a.exprId))
  override protected def doExecute(): RDD[InternalRow] = {
    val (f, kept) = (score, ordinals)
    child.execute().mapPartitionsInternal(f(kept, _))
  }
  override protected def doExecuteColumnar(): RDD[ColumnarBatch] = {
    val (f, kept) = (scoreColumns.get, ordinals)
    child.executeColumnar().mapPartitionsInternal(f(kept, _))
  }
  override protected def withNewChildInternal(newChild: SparkPlan): SpindleScoreExec = copy(child = newChild)
}

/** Plans [[SpindleScore]]; registered once per session as an extra strategy. */
object SpindleScoreStrategy extends SparkStrategy {
  override def apply(plan: LogicalPlan): Seq[SparkPlan] = plan match {
    case SpindleScore(passed, reads, added, score, columns, child) =>
      SpindleScoreExec(passed, reads, added, score, columns, planLater(child)) :: Nil
    case _ => Nil
  }
}
