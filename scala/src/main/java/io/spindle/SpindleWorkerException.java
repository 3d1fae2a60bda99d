package io.spindle;

/**
 * A process of {@code spindle.run} failed: it raised (the message holds its Python traceback), exited
 * non-zero, or never started. The message names its rank, TF_CONFIG role and host.
 */
public class SpindleWorkerException extends SpindleException {
  private static final long serialVersionUID = 1L;

  public SpindleWorkerException(String message) {
    super(message);
  }
}
