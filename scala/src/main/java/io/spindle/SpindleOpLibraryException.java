package io.spindle;

/**
 * An op library ({@code opLibraries}, {@code spindle.opLibraries}) cannot be loaded: unreadable, built for another
 * TensorFlow release (the message names both versions), or refused by TensorFlow's loader.
 */
public class SpindleOpLibraryException extends SpindleException {
  private static final long serialVersionUID = 1L;

  public SpindleOpLibraryException(String message) {
    super(message);
  }

  public SpindleOpLibraryException(String message, Throwable cause) {
    super(message, cause);
  }
}
