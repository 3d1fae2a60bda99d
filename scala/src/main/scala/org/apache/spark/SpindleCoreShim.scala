package org.apache.spark

import org.apache.spark.util.Utils

/** The package-private Spark core calls training needs: the executor's host and local dir, and the cluster's task
  * slots.
  */
object SpindleCoreShim {

  /** The host this executor's block manager advertises: the address peers on other hosts can reach. */
  def executorHost: String = SparkEnv.get.blockManager.blockManagerId.host

  /** One of this executor's local dirs (`spark.local.dir`), where spill files belong. */
  def localDir: String = Utils.getLocalDir(SparkEnv.get.conf)

  /** How many tasks of the default resource profile the registered executors can run at once. */
  def maxConcurrentTasks(sc: SparkContext): Int =
    sc.maxNumConcurrentTasks(sc.resourceProfileManager.defaultResourceProfile)
}
