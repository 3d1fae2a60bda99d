package io.spindle.internal

import scala.jdk.CollectionConverters._

import io.spindle.SpindleModelException
import io.spindle.jni.NativeRuntime
import io.spindle.proto.{ModelInfo, SignatureInfo}

/** One SavedModel loaded into one TensorFlow session. Owned by [[ModelCache]], or by the training task that loaded it
  * privately.
  */
final class LoadedModel private[internal] (id0: Long, val path: String) extends NativeObject(id0, s"model $path") {

  /** Signatures of the model, read once. */
  lazy val info: ModelInfo = ModelInfo.parseFrom(NativeRuntime.modelInfo(id))

  /** The signature `name`, or an error listing the ones that exist. */
  def signature(name: String): SignatureInfo =
    info.getSignaturesList.asScala.find(_.getName == name).getOrElse {
      val known = info.getSignaturesList.asScala.map(_.getName).mkString(", ")
      throw new SpindleModelException(s"SavedModel $path has no signature '$name' (it has: $known)")
    }

  protected def release(id: Long): Unit = NativeRuntime.closeModel(id)
}
