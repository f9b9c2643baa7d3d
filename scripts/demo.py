"""``make demo``: the whole ROAR pipeline on the embedded digits at demo scale.

Base ResNet-8 -> gradient, SmoothGrad-squared, random and Sobel rankings of every image -> masked
shards at t = 0, 0.3, 0.6, 0.9 -> five retrained models per setting -> the base model's no-retrain
curves -> the report (verdicts against random, figures, outputs/roar_digits/report/index.html).
About 6 minutes on 2 CPU cores the first time; a rerun skips everything already done.
"""

import sys

from roar.stages.pipeline import main

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "experiment=roar_digits", "trainer.enable_progress_bar=false", *sys.argv[1:]]
    main()
