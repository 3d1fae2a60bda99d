package io.spindle.cluster

import java.nio.file.Path

import scala.concurrent.duration._

import io.spindle.SpindleTestBase

/** Training on eight emulated hosts ([[EmulatedHosts]]), one worker each ([[HostsDriver]]): exact against one worker
  * with 8x the batch, then one fault per run while training, each after the first checkpoint:
  *   - kill -9 of one executor: the standalone worker starts another, Spark retries the stage, and training resumes
  *     from the newest checkpoint (a newer checkpoint follows within 120 s of the kill);
  *   - SIGSTOP of one executor: its slot stays held, so `fit` fails within 120 s naming the rank and host lost;
  *   - one host's link cut, with `minWorkers` 7: the seven survivors go on from the checkpoint within 120 s.
  *
  * Eight hosts mean 18 JVMs on the machine: the suite runs from `benches/faults.sh` (`SPINDLE_EIGHT_HOSTS=1`), not in
  * CI, which runs the four-host [[ElasticSuite]] and the two-host [[LostHostSuite]].
  */
class EightHostsSuite extends SpindleTestBase {
  override protected def startsSpark: Boolean = false

  private val enabled = sys.env.get("SPINDLE_EIGHT_HOSTS").contains("1")

  /** Starts 8 hosts training for `epochs` with `minWorkers`, waits for the first checkpoint, then runs `fault`. */
  private def onEightHosts(minWorkers: Int, epochs: Int, exact: Boolean)(fault: (EmulatedHosts, Path) => Unit): Unit = {
    if (!enabled) cancel("eight emulated hosts run from benches/faults.sh (SPINDLE_EIGHT_HOSTS=1)")
    val ckpt = tempDir("spindle-ckpt")
    val exportDir = tempDir("spindle-export").resolve("model").toString
    val args = Seq(digitsCsv.toString, fixture("digits_mlp_init"), exportDir, ckpt.toUri.toString) ++
      Seq("8", minWorkers.toString, epochs.toString, exact.toString)
    val hosts = new EmulatedHosts(repoRoot, tempDir("spindle-hosts"), 8, HostsDriver.getClass, args, 900)
    try {
      hosts.awaitTraining(ckpt, 600.seconds).foreach(cancel(_))
      fault(hosts, ckpt)
    } finally hosts.close()
  }

  private def newest(ckpt: Path): Int = EmulatedHosts.checkpoints(ckpt).map(_.stripPrefix("ckpt-").toInt).max

  test("8 workers equal 1 worker with 8x the batch to 1e-5; kill -9 of one executor: training resumes within 120 s") {
    onEightHosts(minWorkers = 0, epochs = 60, exact = true) { (hosts, ckpt) =>
      val exact = hosts.line("EXACT").getOrElse(fail(s"no exactness line:\n${hosts.tail}"))
      info(exact)
      val words = exact.split(' ')
      assert(words(2) == "8" && words(3) == "8", exact)
      assert(words(5).toDouble <= 1e-5 && words(7).toDouble <= 1e-5, exact)
      val before = newest(ckpt)
      val killedAt = hosts.signalExecutor(8, "KILL")
      while (newest(ckpt) <= before && !hosts.ended && System.currentTimeMillis() - killedAt < 240000) Thread.sleep(200)
      val seconds = (System.currentTimeMillis() - killedAt) / 1000.0
      info(f"a checkpoint newer than ckpt-$before came $seconds%.1f s after the kill")
      assert(newest(ckpt) > before && seconds < 120, s"training resumed within 120 s:\n${hosts.tail}")
      hosts.exitCode(600.seconds).getOrElse(fail(s"fit had not ended:\n${hosts.tail}"))
      val result = hosts.line("FIT ").getOrElse(fail(s"the driver printed no result:\n${hosts.tail}"))
      info(result)
      assert(result.startsWith("FIT DONE workers 8 changes  "), result)
    }
  }

  test("SIGSTOP of one executor: fit fails within 120 s naming the rank and host lost") {
    onEightHosts(minWorkers = 0, epochs = 5000, exact = false) { (hosts, _) =>
      val stoppedAt = hosts.signalExecutor(8, "STOP")
      hosts.exitCode(240.seconds).getOrElse(fail(s"fit had not ended 240 s after the SIGSTOP:\n${hosts.tail}"))
      val seconds = (System.currentTimeMillis() - stoppedAt) / 1000.0
      val result = hosts.line("FIT ").getOrElse(fail(s"the driver printed no result:\n${hosts.tail}"))
      info(f"fit ended $seconds%.1f s after the SIGSTOP: $result")
      assert(result.startsWith("FIT FAILED SpindleClusterException:"), result)
      assert(result.contains("rank ") && result.contains(s"host ${hosts.address(8)}"), result)
      assert(seconds < 120, result)
    }
  }

  test("a host's link cut with minWorkers 7: the seven survivors go on within 120 s and finish") {
    onEightHosts(minWorkers = 7, epochs = 200, exact = false) { (hosts, _) =>
      val cutAt = hosts.cut(8)
      hosts.exitCode(600.seconds).getOrElse(fail(s"fit had not ended 600 s after the cut:\n${hosts.tail}"))
      val result = hosts.line("FIT ").getOrElse(fail(s"the driver printed no result:\n${hosts.tail}"))
      info(result)
      assert(result.startsWith("FIT DONE workers 7 changes 8->7@"), result)
      val changedAt = result.split(' ')(5).split('@')(1).toLong
      info(f"the survivors went on ${(changedAt - cutAt) / 1000.0}%.1f s after the cut")
      assert(changedAt - cutAt < 120000, result)
    }
  }
}
