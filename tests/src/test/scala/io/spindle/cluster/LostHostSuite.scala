package io.spindle.cluster

import scala.concurrent.duration._

import io.spindle.SpindleTestBase

/** A host lost mid-training, on a standalone cluster of two emulated hosts ([[EmulatedHosts]]). Host 1 runs the master,
  * the driver ([[HostsDriver]], through the distribution's `spark-submit`) and a worker; host 2 runs the other worker.
  * Once training has written a checkpoint, host 2's link is cut: no FIN, no reset, the peer just goes silent. `fit`
  * must end within 120 s of the cut with a `SpindleClusterException` that names the lost rank, its host and the missing
  * task slots, rather than leave the retried stage waiting for slots that no longer exist.
  *
  * Where the machine does not let a test make network namespaces (not root), the suite says why and is canceled, which
  * the CI summary counts as skipped.
  */
class LostHostSuite extends SpindleTestBase {
  override protected def startsSpark: Boolean = false

  test("a host cut off mid-fit: fit fails within 120 s naming the lost rank, its host and the missing slots") {
    val ckpt = tempDir("spindle-ckpt")
    val exportDir = tempDir("spindle-export").resolve("model").toString
    val args =
      Seq(digitsCsv.toString, fixture("digits_mlp_init"), exportDir, ckpt.toUri.toString, "2", "0", "5000", "false")
    val hosts = new EmulatedHosts(repoRoot, tempDir("spindle-hosts"), 2, HostsDriver.getClass, args, 420)
    try {
      // Training on both hosts: wait for its first checkpoint, or for the harness to say it cannot run here.
      hosts.awaitTraining(ckpt, 300.seconds).foreach(cancel(_))

      val cutAt = hosts.cut(2)
      // Twice the bound, to tell a slow end from a hang in the report.
      val rc = hosts.exitCode(240.seconds).getOrElse(fail(s"fit had not ended 240 s after the cut:\n${hosts.tail}"))
      val seconds = (System.currentTimeMillis() - cutAt) / 1000.0
      info(f"fit ended $seconds%.1f s after the cut")
      val result = hosts.line("FIT ").getOrElse(fail(s"the driver printed no result ($rc):\n${hosts.tail}"))
      info(result)
      assert(result.startsWith("FIT FAILED SpindleClusterException:"), result)
      assert(result.contains("rank ") && result.contains(s"on host ${hosts.address(2)}"), result)
      assert(result.contains("missing"), result)
      // The driver halts as soon as fit has thrown: the harness ends when fit does.
      assert(seconds < 120, s"fit failed $seconds s after the cut:\n${hosts.lines.mkString("\n")}")
    } finally hosts.close()
  }
}
