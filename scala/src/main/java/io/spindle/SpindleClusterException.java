package io.spindle;

/** Spark cluster or peer trouble: too few task slots, a peer missing, rendezvous or network failure. */
public class SpindleClusterException extends SpindleException {
  private static final long serialVersionUID = 1L;

  public SpindleClusterException(String message) {
    super(message);
  }

  public SpindleClusterException(String message, Throwable cause) {
    super(message, cause);
  }
}
