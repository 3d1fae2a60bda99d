package io.spindle.internal

import java.util.concurrent.atomic.AtomicLong

import scala.jdk.CollectionConverters._

import io.spindle.SpindleModelException
import io.spindle.jni.NativeRuntime
import io.spindle.proto.{ModelInfo, SignatureInfo}

/** One SavedModel loaded into one TensorFlow session. Owned by [[ModelCache]]; `close` is idempotent. */
final class LoadedModel private[internal] (handle0: Long, val path: String) extends AutoCloseable {
  private val handle = new AtomicLong(handle0)

  /** The native handle; fails if the model was closed. */
  def nativeHandle: Long = {
    val h = handle.get()
    if (h == 0) throw new SpindleModelException(s"model $path was closed")
    h
  }

  /** Signatures of the model, read once. */
  lazy val info: ModelInfo = ModelInfo.parseFrom(NativeRuntime.modelInfo(nativeHandle))

  /** The signature `name`, or an error listing the ones that exist. */
  def signature(name: String): SignatureInfo =
    info.getSignaturesList.asScala.find(_.getName == name).getOrElse {
      val known = info.getSignaturesList.asScala.map(_.getName).mkString(", ")
      throw new SpindleModelException(s"SavedModel $path has no signature '$name' (it has: $known)")
    }

  override def close(): Unit = {
    val h = handle.getAndSet(0)
    if (h != 0) NativeRuntime.closeModel(h)
  }
}
