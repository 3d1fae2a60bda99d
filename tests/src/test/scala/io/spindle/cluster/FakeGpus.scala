package io.spindle.cluster

import java.nio.file.Files
import java.nio.file.attribute.PosixFilePermissions

/** Two executor JVMs of 2 cores whose 2 "GPUs" each come from a discovery script reporting fake addresses 0 and 1
  * (Spark takes its word): enough for two tasks of one executor to hold different GPUs at once.
  */
trait FakeGpus extends ClusterSuite {

  override protected def master: String = "local-cluster[2,2,1536]"

  private lazy val discovery = {
    val script = Files.createTempFile("spindle-fake-gpus", ".sh")
    script.toFile.deleteOnExit()
    Files.write(script, "#!/usr/bin/env bash\necho '{\"name\": \"gpu\", \"addresses\": [\"0\", \"1\"]}'\n".getBytes)
    Files.setPosixFilePermissions(script, PosixFilePermissions.fromString("rwxr-xr-x"))
    script.toString
  }

  override protected def sparkConf: Map[String, String] = super.sparkConf ++ Map(
    "spark.worker.resource.gpu.amount" -> "2",
    "spark.worker.resource.gpu.discoveryScript" -> discovery,
    "spark.executor.resource.gpu.amount" -> "2",
    "spark.executor.resource.gpu.discoveryScript" -> discovery,
    "spark.stage.maxConsecutiveAttempts" -> "1"
  )
}
