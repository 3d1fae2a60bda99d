package io.spindle.jni;

/**
 * The whole JNI surface of Spindle: every native method lives here and nowhere else.
 *
 * <p>Handles are opaque ids issued by the Rust runtime's handle table, never raw pointers, so a stale or
 * bogus handle yields a {@link io.spindle.SpindleNativeException} instead of a crash. Structured data
 * crosses as protobuf bytes (messages in {@code proto/spindle/runtime.proto}). Every method throws a
 * subclass of {@link io.spindle.SpindleException} on failure; a Rust panic becomes a
 * {@link io.spindle.SpindleNativeException}. Call {@link io.spindle.NativeLoader#ensureLoaded()} before
 * any of these.
 */
public final class NativeRuntime {
  private NativeRuntime() {}

  /**
   * Initializes logging (lines queue for {@link #nextLogs}) and the panic hook; idempotent.
   *
   * @param logLevel the most verbose level logged: "trace", "debug", "info", "warn", "error" or "off"
   * @return the runtime version string
   */
  public static native String init(String logLevel);

  /** Sets the most verbose level the runtime logs, as {@link #init} takes it. */
  public static native void setLogLevel(String logLevel);

  /**
   * Waits up to {@code timeoutMs} for the runtime's next log line, then takes it and the lines already queued.
   *
   * @param maxLines the most lines to take
   * @return serialized {@code spindle.LogBatch}, with no lines when none came in time
   */
  public static native byte[] nextLogs(long timeoutMs, int maxLines);

  /**
   * Loads a custom op library into this process's TensorFlow, once per content, after checking the TensorFlow
   * version its wheel was built for.
   *
   * @param path a local path to the library's {@code .so}
   * @return a line saying what was done (the ops it registered, or where it was loaded from before), for the log
   * @throws io.spindle.SpindleOpLibraryException unreadable, built for another TensorFlow, or refused by TensorFlow
   */
  public static native String loadOpLibrary(String path);

  /**
   * Loads a SavedModel into a new TensorFlow session.
   *
   * @param modelConfig serialized {@code spindle.ModelConfig}
   * @return a model handle, to be released with {@link #closeModel(long)}
   */
  public static native long loadModel(byte[] modelConfig);

  /**
   * Describes the signatures of a loaded model.
   *
   * @param model a handle from {@link #loadModel(byte[])}
   * @return serialized {@code spindle.ModelInfo}
   */
  public static native byte[] modelInfo(long model);

  /**
   * Releases a model handle; the session closes once no feeder uses it. Idempotent.
   *
   * @param model a handle from {@link #loadModel(byte[])}, or 0 (ignored)
   */
  public static native void closeModel(long model);

  /**
   * Opens a ring of memory-mapped input slots that feeds one signature of a model.
   *
   * @param model a handle from {@link #loadModel(byte[])}
   * @param feederConfig serialized {@code spindle.FeederConfig}
   * @return a feeder handle, to be released with {@link #closeFeeder(long)}
   */
  public static native long openFeeder(long model, byte[] feederConfig);

  /**
   * Tells where the JVM writes rows.
   *
   * @param feeder a handle from {@link #openFeeder(long, byte[])}
   * @return serialized {@code spindle.FeederLayout}
   */
  public static native byte[] feederLayout(long feeder);

  /**
   * Hands a filled slot to TensorFlow; returns at once (the run happens on the feeder's thread).
   *
   * @param feeder a feeder handle
   * @param slot slot index in [0, num_slots), which must be free
   * @param rows number of rows written, in [1, batch_size]
   */
  public static native void submit(long feeder, int slot, int rows);

  /**
   * Waits for a submitted slot's run to finish.
   *
   * @param feeder a feeder handle
   * @param slot a submitted slot
   * @return serialized {@code spindle.BatchOutputs}; the output memory stays valid until
   *     {@link #releaseSlot(long, int)}
   */
  public static native byte[] awaitSlot(long feeder, int slot);

  /**
   * Drops a slot's outputs and makes it free for writing again.
   *
   * @param feeder a feeder handle
   * @param slot a slot whose run finished (or a free slot: no-op)
   */
  public static native void releaseSlot(long feeder, int slot);

  /**
   * Stops the feeder's thread, waits for a running batch, and unmaps its memory. Idempotent.
   *
   * @param feeder a feeder handle, or 0 (ignored)
   */
  public static native void closeFeeder(long feeder);

  /**
   * Binds this worker's ring socket on an ephemeral port, to be published to the peers.
   *
   * @param host the executor's host name or address, as the peers reach it
   * @return a rendezvous handle, consumed by {@link #openTrainer(long, byte[], long)} or released with
   *     {@link #closeRendezvous(long)}
   */
  public static native long bindRendezvous(String host);

  /**
   * The address ("host:port") to publish for a rendezvous.
   *
   * @param rendezvous a handle from {@link #bindRendezvous(String)}
   * @return the published address
   */
  public static native String rendezvousAddress(long rendezvous);

  /**
   * Releases a rendezvous that was not consumed. Idempotent.
   *
   * @param rendezvous a handle from {@link #bindRendezvous(String)}, or 0 (ignored)
   */
  public static native void closeRendezvous(long rendezvous);

  /**
   * Stops a rendezvous's wait for its peers, from another thread (the task was killed while its ring forms):
   * {@link #openTrainer(long, byte[], long)} then fails at once. Unknown handles (0, consumed) are ignored.
   *
   * @param rendezvous a handle from {@link #bindRendezvous(String)}, or 0 (ignored)
   */
  public static native void cancelRendezvous(long rendezvous);

  /**
   * Starts one training worker: checks the config, forms the authenticated ring with the peers (blocking up
   * to the connect timeout) and starts the trainer thread.
   *
   * @param model a handle from {@link #loadModel(byte[])}, used by this worker alone (training changes it)
   * @param trainerConfig serialized {@code spindle.TrainerConfig}
   * @param rendezvous a handle from {@link #bindRendezvous(String)} (consumed), or 0 for a single worker
   * @return a trainer handle, to be released with {@link #closeTrainer(long)}
   */
  public static native long openTrainer(long model, byte[] trainerConfig, long rendezvous);

  /**
   * Where each input goes inside a batch window.
   *
   * @param trainer a trainer handle
   * @return serialized {@code spindle.FeederLayout} whose base address is 0
   */
  public static native byte[] trainerLayout(long trainer);

  /**
   * Maps the next batch window; blocks while the trainer holds every slot (backpressure).
   *
   * @param trainer a trainer handle
   * @return the window's address; input i starts at {@code address + input_offsets[i]}
   */
  public static native long acquireBatch(long trainer);

  /**
   * Hands the acquired window to the trainer.
   *
   * @param trainer a trainer handle
   * @param rows rows written, in [1, batch_size]
   */
  public static native void submitBatch(long trainer, int rows);

  /**
   * Ends the training data of epoch 1: the batches submitted from now on are validation data (the trainer's config
   * asked for validation).
   */
  public static native void endTrainingData(long trainer);

  /**
   * Ends the input and waits until every epoch has run on every worker.
   *
   * @param trainer a trainer handle
   * @return serialized {@code spindle.TrainingReport}
   */
  public static native byte[] finishTraining(long trainer);

  /** StepMetrics bytes of the trainer's last step (all fields zero before the first); never blocks. */
  public static native byte[] trainerProgress(long trainer);

  /**
   * Blocks until the chief's trainer saved a checkpoint on local disk and returns its CheckpointInfo bytes; null once
   * no more will come (training ended or was closed, or the trainer takes no checkpoints).
   */
  public static native byte[] nextCheckpoint(long trainer);

  /**
   * Reports that checkpoint {@code step}, from {@link #nextCheckpoint}, was uploaded (failure null) or could not be
   * (then training fails with a SpindleCheckpointException carrying {@code failure}); its local copy is deleted.
   */
  public static native void checkpointDone(long trainer, long step, String failure);

  /**
   * Stops training (peers blocked on this worker fail at once), joins its thread and frees its memory.
   * Idempotent.
   *
   * @param trainer a trainer handle, or 0 (ignored)
   */
  public static native void closeTrainer(long trainer);

  /**
   * Panics inside the runtime on purpose; used by tests to prove panics become exceptions.
   *
   * @param message the panic message
   */
  public static native void panicForTest(String message);

  /**
   * Opens the feed of a script process: creates {@code feed.spill} and listens on {@code feed.sock} in the
   * config's folder, where the script ({@code spindle.data}) connects.
   *
   * @param scriptFeedConfig serialized {@code spindle.ScriptFeedConfig}
   * @return a feed handle, to be released with {@link #closeScriptFeed(long)}
   */
  public static native long openScriptFeed(byte[] scriptFeedConfig);

  /**
   * @param feed a handle from {@link #openScriptFeed(byte[])}
   * @return serialized {@code spindle.FeederLayout}: input offsets, row bytes, and the windows' stride
   */
  public static native byte[] scriptFeedLayout(long feed);

  /**
   * Maps the next window to write, blocking while the script holds every window.
   *
   * @param feed a handle from {@link #openScriptFeed(byte[])}
   * @return the window's address (never 0), or empty once the reader is gone: the script hung up (it ended
   *     or read what it wanted), or {@link #scriptFeedHangUp(long)} was called
   */
  public static native java.util.OptionalLong scriptFeedAcquire(long feed);

  /**
   * Tells the feed that its reader is gone (the script's process exited, or the task was killed): a blocked
   * or later {@link #scriptFeedAcquire(long)} returns empty. Windows stay mapped until {@link
   * #closeScriptFeed(long)}, so a thread writing one is safe. Safe from any thread; idempotent.
   */
  public static native void scriptFeedHangUp(long feed);

  /** Hands the window acquired last, holding {@code rows} rows, to the script. */
  public static native void scriptFeedSubmit(long feed, int rows);

  /** Tells the script that no window follows the ones submitted. */
  public static native void scriptFeedEnd(long feed);

  /** Stops the feed and removes its files. Unknown handles (0, closed) are ignored. */
  public static native void closeScriptFeed(long feed);
}
