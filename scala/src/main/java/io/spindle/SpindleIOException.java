package io.spindle;

/** A file operation failed: the spill file, an event file, an export (a full disk, a missing permission, a
 * FileSystem refusing a rename). Not an input error: the data was fine. The message names the path.
 */
public class SpindleIOException extends SpindleException {
  private static final long serialVersionUID = 1L;

  public SpindleIOException(String message) {
    super(message);
  }

  public SpindleIOException(String message, Throwable cause) {
    super(message, cause);
  }
}
