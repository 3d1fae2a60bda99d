package io.spindle;

/** The data does not fit the model: missing column, wrong dtype or shape, null value. */
public class SpindleInputException extends SpindleException {
  private static final long serialVersionUID = 1L;

  public SpindleInputException(String message) {
    super(message);
  }

  public SpindleInputException(String message, Throwable cause) {
    super(message, cause);
  }
}
