"""The compression flow: recipes and plans (`recipe`, `steps`), the engine that runs a plan over a
graph (`engine`), report rows and gates (`report`, `gates`), the artifact of a run and the graph
rebuilt from one (`artifacts`), and one whole run (`run`)."""

from nncompress.pipeline.artifacts import build_artifact, graph_from_artifact, skeleton_file
from nncompress.pipeline.engine import ALIAS, LOSSLESS_INT, RAW, compress_graph
from nncompress.pipeline.recipe import PRESETS, Plan, Recipe, Rule, plan_from, plan_from_toml, recipe_from
from nncompress.pipeline.run import Result, compress, save

__all__ = [
    "ALIAS",
    "LOSSLESS_INT",
    "PRESETS",
    "RAW",
    "Plan",
    "Recipe",
    "Result",
    "Rule",
    "build_artifact",
    "compress",
    "compress_graph",
    "graph_from_artifact",
    "plan_from",
    "plan_from_toml",
    "recipe_from",
    "save",
    "skeleton_file",
]
