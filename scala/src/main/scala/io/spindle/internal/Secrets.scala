package io.spindle.internal

import java.security.{MessageDigest, SecureRandom}
import javax.crypto.Mac
import javax.crypto.spec.SecretKeySpec

/** A job's secret (a fit's or a run's) and the proofs of knowing it: the secret travels to the tasks inside Spark's own
  * task description and never crosses one of Spindle's sockets; a peer proves it holds the secret with an HMAC-SHA256
  * under it, of a request (the rendezvous gather) or of a fresh challenge (a run's task link).
  */
object Secrets {

  /** Bytes of a secret, of a challenge and of a MAC. */
  val Bytes = 32

  private val random = new SecureRandom()

  /** Fresh random bytes: a new secret or a challenge. */
  def fresh(): Array[Byte] = {
    val bytes = new Array[Byte](Bytes)
    random.nextBytes(bytes)
    bytes
  }

  /** HMAC-SHA256 of `bytes` under `secret`. */
  def mac(secret: Array[Byte], bytes: Array[Byte]): Array[Byte] = {
    val m = Mac.getInstance("HmacSHA256")
    m.init(new SecretKeySpec(secret, "HmacSHA256"))
    m.doFinal(bytes)
  }

  /** Whether `proof` is the MAC of `bytes` under `secret` (compared in constant time). */
  def verify(secret: Array[Byte], bytes: Array[Byte], proof: Array[Byte]): Boolean =
    MessageDigest.isEqual(proof, mac(secret, bytes))
}
