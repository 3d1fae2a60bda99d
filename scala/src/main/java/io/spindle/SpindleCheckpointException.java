package io.spindle;

/** A checkpoint that cannot be written, read or used: an unwritable checkpointDir, a corrupt checkpoint, one of a
 * different model. The message names the path; nothing already saved is deleted.
 */
public class SpindleCheckpointException extends SpindleException {
  private static final long serialVersionUID = 1L;

  public SpindleCheckpointException(String message) {
    super(message);
  }

  public SpindleCheckpointException(String message, Throwable cause) {
    super(message, cause);
  }
}
