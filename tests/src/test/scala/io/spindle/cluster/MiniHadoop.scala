package io.spindle.cluster

import java.io.{BufferedReader, FileOutputStream, InputStreamReader}
import java.nio.file.{Files, Path, Paths}

import scala.jdk.CollectionConverters._

import org.apache.hadoop.conf.Configuration
import org.apache.hadoop.hdfs.MiniDFSCluster
import org.apache.hadoop.yarn.api.records.{Resource, ResourceOption}
import org.apache.hadoop.yarn.conf.YarnConfiguration
import org.apache.hadoop.yarn.server.MiniYARNCluster
import org.apache.hadoop.yarn.server.api.protocolrecords.UpdateNodeResourceRequest

/** HDFS and YARN for [[YarnSuite]], in a JVM of their own (as Spark's `BaseYarnClusterSuite` and Livy's integration
  * tests run them apart from the code under test): a MiniDFSCluster of one DataNode and a MiniYARNCluster of `NODES`
  * NodeManagers of `NODE_MB` MB each, under Spark's capacity-scheduler settings, on loopback. It writes the client
  * configuration (`core-site.xml`, `hdfs-site.xml`, `yarn-site.xml`) into `WORK/conf` for `HADOOP_CONF_DIR`, prints
  * `MINI READY`, then answers one command per line of its input:
  *   - `nodes`: `MINI NODE <i> <nodeId> <container>,...` per NodeManager (the containers it runs), then `MINI END`;
  *   - `resize <i> <mb>`: gives NodeManager i `mb` MB as the ResourceManager's admin would (`updateNodeResource`), so
  *     that a queue can grant a container late; `MINI OK`;
  *   - `stop <i>`: stops NodeManager i, which kills its containers, as a lost node; `MINI OK`.
  *
  * It stops both clusters and exits when its input ends, so it never outlives the suite's JVM.
  *
  * {{{MiniHadoop WORK NODES NODE_MB}}}
  */
object MiniHadoop {
  def main(args: Array[String]): Unit = {
    val Array(workArg, nodesArg, nodeMbArg) = args
    val work = Paths.get(workArg)
    val (nodes, nodeMb) = (nodesArg.toInt, nodeMbArg.toInt)
    // MiniYARNCluster's directories go under Hadoop's test data directory.
    System.setProperty("test.build.data", work.resolve("yarn").toString)
    val conf = new YarnConfiguration()
    conf.set("hadoop.tmp.dir", work.resolve("tmp").toString)
    conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, work.resolve("dfs").toString)
    conf.set("dfs.namenode.rpc-address", "127.0.0.1:0")
    val dfs = new MiniDFSCluster.Builder(conf).numDataNodes(1).format(true).build()
    dfs.waitActive()
    conf.set("fs.defaultFS", s"hdfs://127.0.0.1:${dfs.getNameNodePort}")

    // Spark's BaseYarnClusterSuite: one queue with all the capacity, no locality delay, any disk fill.
    conf.set("yarn.scheduler.capacity.root.queues", "default")
    conf.setInt("yarn.scheduler.capacity.root.default.capacity", 100)
    conf.setFloat("yarn.scheduler.capacity.root.default.user-limit-factor", 1)
    conf.setInt("yarn.scheduler.capacity.root.default.maximum-capacity", 100)
    conf.set("yarn.scheduler.capacity.root.default.state", "RUNNING")
    conf.set("yarn.scheduler.capacity.root.default.acl_submit_applications", "*")
    conf.set("yarn.scheduler.capacity.root.default.acl_administer_queue", "*")
    conf.setInt("yarn.scheduler.capacity.node-locality-delay", -1)
    conf.set("yarn.resourcemanager.hostname", "127.0.0.1")
    conf.set("yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage", "100.0")
    // Sizes: NODE_MB per node, allocated in steps of 128 MB; TensorFlow's native memory is not the JVM's, so the
    // containers' memory is not policed here (the suite sets generous overheads instead).
    conf.setInt("yarn.minicluster.yarn.nodemanager.resource.memory-mb", nodeMb)
    conf.setInt("yarn.nodemanager.resource.cpu-vcores", 4)
    conf.setInt("yarn.scheduler.minimum-allocation-mb", 128)
    conf.setInt("yarn.scheduler.maximum-allocation-mb", nodeMb)
    conf.setBoolean("yarn.nodemanager.pmem-check-enabled", false)
    conf.setBoolean("yarn.nodemanager.vmem-check-enabled", false)
    // A stopped NodeManager counts as lost after 10 s, not 10 minutes.
    conf.setInt("yarn.nm.liveness-monitor.expiry-interval-ms", 10000)
    conf.setInt("yarn.resourcemanager.nm.liveness-monitor.interval-ms", 1000)
    val yarn = new MiniYARNCluster("spindle-yarn", nodes, 1, 1)
    yarn.init(conf)
    yarn.start()
    // start() may return before the ResourceManager has put its bound port into the configuration.
    val deadline = System.currentTimeMillis() + 60000
    while (yarn.getConfig.get(YarnConfiguration.RM_ADDRESS).endsWith(":0") && System.currentTimeMillis() < deadline)
      Thread.sleep(100)
    yarn.waitForNodeManagersToConnect(60000)

    val confDir = Files.createDirectories(work.resolve("conf"))
    def write(name: String, c: Configuration): Unit = {
      val out = new FileOutputStream(confDir.resolve(name).toFile)
      try c.writeXml(out)
      finally out.close()
    }
    val client = new Configuration(false)
    client.set("fs.defaultFS", conf.get("fs.defaultFS"))
    write("core-site.xml", client)
    write("hdfs-site.xml", new Configuration(false))
    // The ResourceManager's bound addresses and the scheduler's limits; not the rest of the servers' configuration,
    // which names classes of Hadoop's test jars that clients do not have (StaticMapping).
    val yarnClient = new Configuration(false)
    for (
      e <- yarn.getConfig.asScala
      if e.getKey.startsWith("yarn.resourcemanager.") || e.getKey.startsWith("yarn.scheduler.")
    )
      yarnClient.set(e.getKey, e.getValue)
    write("yarn-site.xml", yarnClient)
    println("MINI READY")
    System.out.flush()

    val in = new BufferedReader(new InputStreamReader(System.in))
    var line = in.readLine()
    while (line != null) {
      line.trim.split("\\s+").toSeq match {
        case Seq("nodes") =>
          for (i <- 0 until nodes) {
            val context = yarn.getNodeManager(i).getNMContext
            val containers = context.getContainers.keySet.asScala.map(_.toString).toSeq.sorted
            println(s"MINI NODE $i ${context.getNodeId} ${containers.mkString(",")}")
          }
          println("MINI END")
        case Seq("resize", i, mb) =>
          val node = yarn.getNodeManager(i.toInt).getNMContext.getNodeId
          val option = ResourceOption.newInstance(Resource.newInstance(mb.toInt, 4), -1)
          yarn.getResourceManager.getRMContext.getRMAdminService
            .updateNodeResource(UpdateNodeResourceRequest.newInstance(Map(node -> option).asJava))
          println("MINI OK")
        case Seq("stop", i) =>
          yarn.getNodeManager(i.toInt).stop()
          println("MINI OK")
        case other => println(s"MINI UNKNOWN ${other.mkString(" ")}")
      }
      System.out.flush()
      line = in.readLine()
    }
    yarn.stop()
    dfs.shutdown()
    System.exit(0)
  }

  /** For [[YarnSuite]]: the directory `main` writes the client configuration into. */
  def confDir(work: Path): Path = work.resolve("conf")
}
