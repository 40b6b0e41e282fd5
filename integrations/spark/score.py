"""spark-submit integrations/spark/score.py --model DIR|s3://BUCKET/PREFIX --input PATH --output PATH [--explain]

Scores raw customer records with a Customer Categorizer model on Spark (see
categorizer_spark.cli). Runs from a checkout (the package beside it) or with the package
installed (pip install integrations/spark, or --py-files on a cluster)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from categorizer_spark.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
