package io.spindle;

/** The SavedModel is missing, corrupt, or lacks the signature, tensor or variable asked for. */
public class SpindleModelException extends SpindleException {
  private static final long serialVersionUID = 1L;

  public SpindleModelException(String message) {
    super(message);
  }

  public SpindleModelException(String message, Throwable cause) {
    super(message, cause);
  }
}
