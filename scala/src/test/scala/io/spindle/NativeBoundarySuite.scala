package io.spindle

import io.spindle.jni.NativeRuntime

/** No input to the JNI surface may crash the JVM: each misuse is a typed exception, and the JVM goes on. */
class NativeBoundarySuite extends SpindleTestBase {

  override protected def beforeAll(): Unit = {
    super.beforeAll()
    NativeLoader.ensureLoaded()
  }

  test("a Rust panic becomes a SpindleNativeException carrying its message") {
    val e = intercept[SpindleNativeException](NativeRuntime.panicForTest("boom 42"))
    assert(e.getMessage.contains("boom 42"))
    // The runtime keeps working after a caught panic.
    intercept[SpindleNativeException](NativeRuntime.panicForTest("again"))
  }

  test("unknown and stale handles are errors, closing them is a no-op") {
    intercept[SpindleNativeException](NativeRuntime.modelInfo(123456L))
    intercept[SpindleNativeException](NativeRuntime.submit(987654L, 0, 1))
    intercept[SpindleNativeException](NativeRuntime.awaitSlot(987654L, 0))
    intercept[SpindleNativeException](NativeRuntime.feederLayout(-1L))
    NativeRuntime.closeFeeder(0L)
    NativeRuntime.closeFeeder(987654L)
    NativeRuntime.closeModel(123456L)
  }

  test("malformed protobuf bytes and nulls are errors") {
    intercept[SpindleException](NativeRuntime.loadModel(Array[Byte](1, 2, 3, -1)))
    intercept[SpindleException](NativeRuntime.loadModel(null))
    intercept[SpindleException](NativeRuntime.init(null))
  }

  test("a feeder rejects bad slots and row counts, and closes idempotently") {
    val model = NativeRuntime.loadModel(
      io.spindle.proto.ModelConfig.newBuilder().setPath(fixture("dtypes_model")).build().toByteArray
    )
    try {
      val config = io.spindle.proto.FeederConfig
        .newBuilder()
        .setSignature("double_only")
        .setBatchSize(4)
        .setNumSlots(2)
        .addInputs(
          io.spindle.proto.InputLayout
            .newBuilder()
            .setName("x_f32")
            .setDtype(io.spindle.proto.DType.FLOAT32)
            .addRowShape(4L)
        )
        .build()
      val feeder = NativeRuntime.openFeeder(model, config.toByteArray)
      intercept[SpindleInputException](NativeRuntime.submit(feeder, 5, 1))
      intercept[SpindleInputException](NativeRuntime.submit(feeder, 0, 0))
      intercept[SpindleInputException](NativeRuntime.submit(feeder, 0, 5))
      NativeRuntime.closeFeeder(feeder)
      NativeRuntime.closeFeeder(feeder)
      intercept[SpindleNativeException](NativeRuntime.submit(feeder, 0, 1))
    } finally NativeRuntime.closeModel(model)
    NativeRuntime.closeModel(model)
  }

  test("a spill file that cannot be made is a SpindleIOException naming its path, not an input error") {
    val model = NativeRuntime.loadModel(
      io.spindle.proto.ModelConfig.newBuilder().setPath(fixture("digits_mlp_init")).build().toByteArray
    )
    val missing = tempDir("spindle-spill").resolve("no-such-dir").toString
    try {
      val config = io.spindle.proto.TrainerConfig
        .newBuilder()
        .addInputs(
          io.spindle.proto.InputLayout
            .newBuilder()
            .setName("features")
            .setDtype(io.spindle.proto.DType.FLOAT32)
            .addRowShape(64L)
        )
        .addInputs(io.spindle.proto.InputLayout.newBuilder().setName("labels").setDtype(io.spindle.proto.DType.INT64))
        .setBatchSize(8)
        .setNumSlots(2)
        .setEpochs(1)
        .setSpillDir(missing)
        .build()
      val e = intercept[SpindleIOException](NativeRuntime.openTrainer(model, config.toByteArray, 0L))
      assert(e.getMessage.contains(missing) && e.getMessage.contains("No such file"), e.getMessage)
    } finally NativeRuntime.closeModel(model)
  }

  test("a script feed's reader gone is an empty acquire, never address 0, and a hang-up wakes a blocked acquire") {
    val dir = tempDir("spindle-script-feed")
    val config = io.spindle.proto.ScriptFeedConfig
      .newBuilder()
      .addInputs(
        io.spindle.proto.InputLayout.newBuilder().setName("x").setDtype(io.spindle.proto.DType.FLOAT32).addRowShape(4L)
      )
      .setBatchSize(4)
      .setNumSlots(2)
      .setDir(dir.toString)
      .setSocket(dir.resolve("feed.sock").toString)
      .build()
    val feed = NativeRuntime.openScriptFeed(config.toByteArray)
    try {
      // No script ever connects: two windows fill the feed, and the third acquire blocks until the hang-up.
      for (_ <- 0 until 2) {
        val window = NativeRuntime.scriptFeedAcquire(feed)
        assert(window.isPresent && window.getAsLong != 0)
        NativeRuntime.scriptFeedSubmit(feed, 4)
      }
      val blocked = new java.util.concurrent.CompletableFuture[java.util.OptionalLong]()
      val writer = new Thread(() => blocked.complete(NativeRuntime.scriptFeedAcquire(feed)))
      writer.start()
      Thread.sleep(300)
      assert(!blocked.isDone)
      NativeRuntime.scriptFeedHangUp(feed)
      assert(!blocked.get(10, java.util.concurrent.TimeUnit.SECONDS).isPresent)
      assert(!NativeRuntime.scriptFeedAcquire(feed).isPresent)
      NativeRuntime.scriptFeedHangUp(feed)
    } finally NativeRuntime.closeScriptFeed(feed)
    NativeRuntime.closeScriptFeed(feed)
    intercept[SpindleNativeException](NativeRuntime.scriptFeedAcquire(feed))
    intercept[SpindleNativeException](NativeRuntime.scriptFeedHangUp(feed))
  }
}
