package io.spindle;

/** Training that cannot go on: a diverging loss (NaN or infinite), or no data at all. The message names the step and
 * what went wrong; the checkpoints already written stay.
 */
public class SpindleTrainingException extends SpindleException {
  private static final long serialVersionUID = 1L;

  public SpindleTrainingException(String message) {
    super(message);
  }
}
