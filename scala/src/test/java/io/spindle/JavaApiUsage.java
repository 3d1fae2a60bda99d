package io.spindle;

import java.util.HashMap;
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
}
