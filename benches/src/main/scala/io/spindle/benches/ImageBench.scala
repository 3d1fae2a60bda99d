package io.spindle.benches

import java.awt.image.BufferedImage
import java.nio.file.{Files, Paths}

import javax.imageio.ImageIO

import org.apache.spark.sql.SpindleSqlShim
import org.apache.spark.sql.functions.col

import io.spindle.SpindleModel

/** Rows/s of `SpindleModel.transform` over images from Spark's image data source through a uint8 CNN
  * (tests/fixtures/image_cnn, [32, 32, 3] pixels: two convolutions, CIFAR-sized). It writes `files` PNG images into
  * `dir`, reads them with `spark.read.format("image")`, repeats them to `rows` rows and caches them; it also writes the
  * decoded bytes of the first images, as the image source holds them, to `dir/images.u8`, which benches/images.sh hands
  * to the Rust runtime alone. Best of `repeats` timed runs after `repeats` untimed ones.
  *
  * Usage: ImageBench DIR [rows=20000] [batchSize=256] [repeats=10] [files=1000]
  */
object ImageBench {
  val Size = 32

  def main(args: Array[String]): Unit = {
    val dir = Paths.get(args(0))
    val rest = args.drop(1)
    val rows = Bench.arg(rest, 0, 20000)
    val batch = Bench.arg(rest, 1, 256)
    val repeats = Bench.arg(rest, 2, 10)
    val files = Bench.arg(rest, 3, 1000)
    val images = Files.createDirectories(dir.resolve("png"))
    for (i <- 0 until files) {
      val image = new BufferedImage(Size, Size, BufferedImage.TYPE_3BYTE_BGR)
      for (y <- 0 until Size; x <- 0 until Size)
        image.setRGB(x, y, (i * 2654435761L + y * 131 + x * 7).toInt & 0xffffff)
      ImageIO.write(image, "png", images.resolve(f"$i%05d.png").toFile)
    }
    val spark = Bench.spark("spindle-bench-images")
    val read = spark.read.format("image").load(images.toString)
    val copies = (rows + files - 1) / files
    val df = (1 until copies).foldLeft(read)((d, _) => d.union(read)).limit(rows).repartition(2).cache()
    require(df.count() == rows, "every image read")
    val bytes = read.select(col("image.data")).limit(batch).collect().flatMap(_.getAs[Array[Byte]](0))
    Files.write(dir.resolve("images.u8"), bytes)
    val model = SpindleModel
      .fromSavedModel("tests/fixtures/image_cnn")
      .setInputCols(Map("features" -> "image"))
      .setBatchSize(batch)
    Bench.best("transform", rows, repeats) {
      SpindleSqlShim.internalRows(model.transform(df)).map(_.getArray(1).getFloat(0).toDouble).sum()
    }
    spark.stop()
  }
}
