package io.spindle;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;

/** Spindle used from Java, compiled by javac: the Java-friendly surface must stay usable as written here. */
public final class JavaApiUsage {
  private JavaApiUsage() {}

  public static Dataset<Row> doubleIt(String modelDir, Dataset<Row> df) {
    Map<String, String> inputs = new HashMap<>();
    inputs.put("x_f32", "values");
    Map<String, String> outputs = new HashMap<>();
    outputs.put("y_f32", "doubled");
    SpindleModel model =
        SpindleModel.fromSavedModel(modelDir)
            .setSignature("double_only")
            .setInputCols(inputs)
            .setOutputCols(outputs)
            .setBatchSize(8);
    return model.transform(df);
  }

  /** What a Java caller reads from a fit's summary, through its java.util views alone: the steps, the mean loss of
   * each epoch, and the rows of each worker. */
  public static String describe(TrainingSummary summary) {
    List<StepSummary> steps = summary.stepsJava();
    List<EpochSummary> epochs = summary.epochsJava();
    List<Long> rows = summary.rowsPerWorkerJava();
    List<Double> feed = summary.feedSecondsPerWorkerJava();
    StringBuilder out = new StringBuilder();
    out.append(steps.size()).append(" steps, last loss ").append(steps.get(steps.size() - 1).loss());
    for (EpochSummary e : epochs) out.append("; epoch ").append(e.epoch()).append(' ').append(e.loss());
    long total = 0;
    for (long r : rows) total += r;
    out.append("; rows ").append(total).append(" on ").append(feed.size()).append(" workers");
    return out.toString();
  }
}
