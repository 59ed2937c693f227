"""Draw the data set a config names (data.source: a world that draws its own, e.g. scenes) unless it is there:
`python3 .ci/scenes_data.py CONFIG [KEY=VALUE ...]`, the overrides as `gen train --set` takes them.

`gen train` would draw it too, but inside the run; drawn apart, it can be drawn here and carried to a lent GPU
machine (`make gpu-scenes-data`), and .ci/gpu_scenes can time it before it fixes the training budget."""
import sys

from gen import domains
from gen.core.config import GenConfig, load

cfg = load(GenConfig, sys.argv[1], sys.argv[2:]).data
world = domains.scenes(domains.get(cfg.source), "write a data set")
print(world.ensure_dataset(cfg.path, count=cfg.generate.count, size=cfg.resolution, seed=cfg.generate.seed))
