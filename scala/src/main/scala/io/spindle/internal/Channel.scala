package io.spindle.internal

import java.io.{DataInputStream, DataOutputStream}
import java.nio.charset.StandardCharsets.UTF_8
import java.security.GeneralSecurityException

import com.google.crypto.tink.subtle.{AesGcmJce, Hkdf}
import org.apache.spark.SparkConf

import io.spindle.SpindleClusterException

/** One direction of one of the JVM's own connections (the driver's rendezvous, `spindle.run`'s task link): frames of a
  * 4-byte length and their bytes, each sealed with AES-256-GCM when the job encrypts its channels. The key is the
  * connection's and the direction's alone: HKDF-SHA256 of the job's secret, salted with the random bytes the connection
  * starts with, for the direction's name. Tink (which Spark ships, for its own RPC encryption) seals: a random 96-bit
  * IV per frame, carried in it, and a 128-bit tag. The Rust runtime seals the workers' ring and mesh the same way
  * (`native/spindle-runtime/src/crypto.rs`, counters for IVs).
  */
final class Channel private (aead: Option[AesGcmJce], peer: String) {

  /** Writes `bytes` as one frame (sealed when encrypting); the caller flushes. */
  def write(out: DataOutputStream, bytes: Array[Byte]): Unit = {
    val frame = aead.fold(bytes)(_.encrypt(bytes, Channel.NoData))
    out.writeInt(frame.length)
    out.write(frame)
  }

  /** Reads one frame of at most `max` bytes of content; throws a [[SpindleClusterException]] naming the peer when it is
    * larger, or when a sealed frame fails its tag (tampered, or sent by a peer that does not encrypt).
    */
  def read(in: DataInputStream, max: Int): Array[Byte] = {
    val length = in.readInt()
    if (length < 0 || length > max + Channel.Overhead)
      throw new SpindleClusterException(s"$peer sent a frame of $length bytes, more than the $max expected")
    val frame = new Array[Byte](length)
    in.readFully(frame)
    aead.fold(frame) { a =>
      try a.decrypt(frame, Channel.NoData)
      catch {
        case e: GeneralSecurityException =>
          throw new SpindleClusterException(s"a frame from $peer failed authentication: tampered, or not encrypted", e)
      }
    }
  }
}

object Channel {
  private val NoData = Array.emptyByteArray

  /** IV and tag. */
  private val Overhead = 12 + 16

  /** A direction that sends frames as they are. */
  def plain(peer: String): Channel = new Channel(None, peer)

  /** A direction whose frames are sealed under the key HKDF-SHA256(`secret`, `salt`, "spindle " + `direction`). */
  def encrypted(secret: Array[Byte], salt: Array[Byte], direction: String, peer: String): Channel = {
    val key = Hkdf.computeHkdf("HMACSHA256", secret, salt, s"spindle $direction".getBytes(UTF_8), 32)
    new Channel(Some(new AesGcmJce(key)), peer)
  }

  /** [[encrypted]] when `encrypt`, else [[plain]]. */
  def apply(encrypt: Boolean, secret: Array[Byte], salt: Array[Byte], direction: String, peer: String): Channel =
    if (encrypt) encrypted(secret, salt, direction, peer) else plain(peer)

  /** Whether Spark encrypts its own traffic (RPC and block transfers, or TLS): then Spindle's channels are too. */
  def sparkEncrypts(conf: SparkConf): Boolean =
    Seq("spark.network.crypto.enabled", "spark.ssl.enabled", "spark.ssl.rpc.enabled").exists(conf.getBoolean(_, false))
}
