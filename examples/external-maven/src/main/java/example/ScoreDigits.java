package example;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

import io.spindle.SpindleModel;

/**
 * Scores 100 held-out handwritten digits with the Keras model in tests/fixtures/digits_mlp_trained, from plain Java
 * through the published Spindle artifact alone (java.util.Map setters, no Scala converters), and checks every
 * probability against the ones Python TensorFlow computed (tests/fixtures/digits_expected.csv: index, label,
 * 64 pixels f0..f63, 10 probabilities p0..p9).
 *
 * <p>Usage: ScoreDigits savedModelDir expected.csv; exits 1 on any mismatch.
 */
public final class ScoreDigits {
  private static final double TOLERANCE = 1e-5;

  private ScoreDigits() {}

  public static void main(String[] args) throws IOException {
    if (args.length != 2) {
      System.err.println("usage: ScoreDigits <savedModelDir> <expected.csv>");
      System.exit(2);
    }
    String modelDir = args[0];
    String csv = args[1];
    List<Row> inputs = new ArrayList<>();
    Map<Integer, double[]> expected = new HashMap<>();
    List<String> lines = Files.readAllLines(Paths.get(csv));
    for (String line : lines.subList(1, lines.size())) {
      String[] v = line.split(",");
      float[] pixels = new float[64];
      for (int i = 0; i < 64; i++) pixels[i] = Float.parseFloat(v[2 + i]);
      double[] probabilities = new double[10];
      for (int i = 0; i < 10; i++) probabilities[i] = Double.parseDouble(v[66 + i]);
      int index = Integer.parseInt(v[0]);
      inputs.add(RowFactory.create(index, Integer.parseInt(v[1]), pixels));
      expected.put(index, probabilities);
    }

    SparkSession spark =
        SparkSession.builder()
            .master("local[2]")
            .appName("spindle-external-maven")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.ui.enabled", "false")
            .getOrCreate();
    spark.sparkContext().setLogLevel("WARN");
    List<String> errors = new ArrayList<>();
    try {
      StructType schema =
          new StructType()
              .add("index", DataTypes.IntegerType)
              .add("label", DataTypes.IntegerType)
              .add("pixels", DataTypes.createArrayType(DataTypes.FloatType));
      Dataset<Row> df = spark.createDataFrame(inputs, schema);
      Map<String, String> inputCols = new HashMap<>();
      inputCols.put("features", "pixels");
      Map<String, String> outputCols = new HashMap<>();
      outputCols.put("probabilities", "probabilities");
      SpindleModel model =
          SpindleModel.load(modelDir).setInputCols(inputCols).setOutputCols(outputCols).setBatchSize(16);
      List<Row> scored = model.transform(df).select("index", "label", "probabilities").collectAsList();

      double maxDiff = 0;
      int correct = 0;
      Set<Integer> seen = new HashSet<>();
      for (Row r : scored) {
        int index = r.getInt(0);
        seen.add(index);
        List<Float> got = r.getList(2);
        double[] want = expected.get(index);
        double diff = got.size() == want.length ? 0 : 1;
        int best = 0;
        for (int i = 0; i < Math.min(got.size(), want.length); i++) {
          diff = Math.max(diff, Math.abs(got.get(i) - want[i]));
          if (got.get(i) > got.get(best)) best = i;
        }
        maxDiff = Math.max(maxDiff, diff);
        if (best == r.getInt(1)) correct++;
        if (diff > TOLERANCE) {
          errors.add("digit " + index + ": got " + got + ", want " + java.util.Arrays.toString(want));
        }
      }
      for (int index : expected.keySet()) {
        if (!seen.contains(index)) errors.add("digit " + index + ": no output row");
      }
      if (scored.size() != inputs.size()) {
        errors.add(scored.size() + " output rows for " + inputs.size() + " inputs");
      }
      System.out.printf(
          "checked %d digits x 10 probabilities against %s: max |diff| = %s (tolerance %s), %d of %d predicted"
              + " labels right%n",
          scored.size(), csv, maxDiff, TOLERANCE, correct, scored.size());
    } finally {
      spark.stop();
    }
    if (!errors.isEmpty()) {
      System.err.println("MISMATCH: " + errors.size() + " problem(s) scoring " + modelDir + " with Spindle:");
      errors.stream().limit(10).forEach(e -> System.err.println("  " + e));
      System.exit(1);
    }
    System.out.println("OK: io.spindle:spindle-spark4_2.13:0.1.0 agrees with Python TensorFlow on every digit (Java)");
  }
}
