package io.spindle;

/** An internal failure of the native runtime (including a caught Rust panic or a bad handle). */
public class SpindleNativeException extends SpindleException {
  private static final long serialVersionUID = 1L;

  public SpindleNativeException(String message) {
    super(message);
  }

  public SpindleNativeException(String message, Throwable cause) {
    super(message, cause);
  }
}
