package io.spindle.cluster

import scala.concurrent.duration._

import io.spindle.SpindleTestBase

/** Elastic training on four emulated hosts ([[EmulatedHosts]]), one worker each, `minWorkers` 3 ([[HostsDriver]]). Once
  * training has written a checkpoint, host 4's link is cut. The three survivors must go on from the newest checkpoint
  * within 120 s of the cut, finish every epoch, and learn.
  */
class ElasticSuite extends SpindleTestBase {
  override protected def startsSpark: Boolean = false

  test("a host cut mid-fit with minWorkers 3 of 4: the survivors resume from the checkpoint within 120 s and finish") {
    val ckpt = tempDir("spindle-ckpt")
    val exportDir = tempDir("spindle-export").resolve("model").toString
    val args =
      Seq(digitsCsv.toString, fixture("digits_mlp_init"), exportDir, ckpt.toUri.toString, "4", "3", "300", "false")
    val hosts = new EmulatedHosts(repoRoot, tempDir("spindle-hosts"), 4, HostsDriver.getClass, args, 600)
    try {
      hosts.awaitTraining(ckpt, 400.seconds).foreach(cancel(_))

      val cutAt = hosts.cut(4)
      hosts.exitCode(420.seconds).getOrElse(fail(s"fit had not ended 420 s after the cut:\n${hosts.tail}"))
      val result = hosts.line("FIT ").getOrElse(fail(s"the driver printed no result:\n${hosts.tail}"))
      info(result)
      assert(result.startsWith("FIT DONE workers 3 changes 4->3@"), s"$result\n${hosts.tail}")
      val words = result.split(' ')
      def after(word: String) = words(words.indexOf(word) + 1)
      val changedAt = after("changes").split('@')(1).toLong
      val seconds = (changedAt - cutAt) / 1000.0
      info(f"the survivors went on $seconds%.1f s after the cut, from ${after("resumed")}")
      assert(seconds < 120, s"the survivors went on $seconds s after the cut")
      assert(after("resumed").contains("ckpt-"), result)
      assert(after("lastLoss").toDouble < after("firstLoss").toDouble / 2, s"the model learned: $result")
    } finally hosts.close()
  }
}
