package io.spindle.run

import org.scalatest.funsuite.AnyFunSuite

/** The `KERAS_DISTRIBUTION_*` variables each task of a `spindle.run` gives its process (docs/keras3.md): the processes
  * that train in sync, in rank order, the first one's address as JAX's coordinator. Pure: no Spark, no socket.
  */
class KerasDistributionSuite extends AnyFunSuite {

  private def spec(extra: String) = RunSpec.parse(s"""{"command": ["python"], "payload": "", $extra}""")
  private def addresses(n: Int) = (0 until n).map(r => s"127.0.0.1:${7000 + r}")

  test("every worker of an MWMS-shaped run is a JAX process, in rank order, worker 0's address first") {
    val two = spec(""""workers": 2""")
    val env = (0 until 2).map(r => RunTask.kerasDistribution(two, addresses(2), r))
    assert(env.map(_("KERAS_DISTRIBUTION_JOB_ADDRESSES")).distinct == Seq("127.0.0.1:7000,127.0.0.1:7001"))
    assert(env.map(_("KERAS_DISTRIBUTION_NUM_PROCESSES")) == Seq("2", "2"))
    assert(env.map(_("KERAS_DISTRIBUTION_PROCESS_ID")) == Seq("0", "1"))
  }

  test("a chief is process 0 and the workers follow; the evaluator is none of them") {
    val withChief = spec(""""workers": 2, "chief": true, "evaluator": true""")
    assert(withChief.roles == Seq("chief" -> 0, "worker" -> 0, "worker" -> 1, "evaluator" -> 0))
    val env = (0 until 4).map(r => RunTask.kerasDistribution(withChief, addresses(4), r))
    assert(env.take(3).map(_("KERAS_DISTRIBUTION_PROCESS_ID")) == Seq("0", "1", "2"))
    assert(env(0)("KERAS_DISTRIBUTION_JOB_ADDRESSES") == "127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002")
    assert(env(3).isEmpty)
  }

  test("a parameter-server run sets none: Keras 3 has no parameter-server training") {
    val ps = spec(""""workers": 2, "ps": 1, "chief": true""")
    assert(ps.roles.indices.forall(r => RunTask.kerasDistribution(ps, addresses(ps.roles.size), r).isEmpty))
  }
}
