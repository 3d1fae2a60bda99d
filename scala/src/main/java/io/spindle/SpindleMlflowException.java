package io.spindle;

/** MLflow tracking could not start: the tracking URI is not an http(s) URI, or its server did not answer, or refused
 * to create the experiment or the run. Raised by {@code fit} before any job; the message names the URI. Once the run
 * exists, MLflow failures never fail training (they are retried, then logged as a warning).
 */
public class SpindleMlflowException extends SpindleException {
  private static final long serialVersionUID = 1L;

  public SpindleMlflowException(String message) {
    super(message);
  }

  public SpindleMlflowException(String message, Throwable cause) {
    super(message, cause);
  }
}
