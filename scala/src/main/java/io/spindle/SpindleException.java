package io.spindle;

/** Base of every error Spindle raises; subclasses say which layer is at fault. */
public class SpindleException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public SpindleException(String message) {
    super(message);
  }

  public SpindleException(String message, Throwable cause) {
    super(message, cause);
  }
}
