"""packedInputCols from PySpark on local[2]: 200 columns packed into one float32 [None, 200] input
(tests/fixtures/packed_model), a dict of lists that crosses to the JVM and back, and is saved with the stage."""

import os

import pytest
from conftest import FIXTURES
from pyspark.sql import functions as F

from spindle.ml import SpindleModel

MASTER = "local[2]"
K = 200
COLUMNS = [f"c{j}" for j in range(K)]


def value(i, j):
    """Row i's value of column j: a multiple of 1/8, exact in float32."""
    return ((i * 7 + j * 13) % 101) / 8.0 - 6.0


def test_packed_columns_feed_one_input_and_survive_save_and_load(spark, tmp_path):
    frame = spark.range(0, 12, 1, 2).select(
        "id", *[((F.col("id") * 7 + j * 13) % 101 / 8.0 - 6.0).alias(c) for j, c in enumerate(COLUMNS)]
    )
    model = SpindleModel.load(os.path.join(FIXTURES, "packed_model")).setPackedInputCols({"x": COLUMNS})
    assert model.getPackedInputCols() == {"x": COLUMNS}
    rows = model.transform(frame).select("id", "same").collect()
    assert len(rows) == 12
    for r in rows:
        assert list(r["same"]) == [value(r["id"], j) for j in range(K)]

    path = str(tmp_path / "stage")
    model.write().save(path)
    assert SpindleModel.load(path).getPackedInputCols() == {"x": COLUMNS}


def test_packed_columns_take_a_dict_of_lists_of_str():
    with pytest.raises(TypeError, match="list of str"):
        SpindleModel().setPackedInputCols({"x": "c0"})
