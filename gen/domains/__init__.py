"""Data worlds behind one protocol: what a world knows about its captions (oracle, negatives, attributes).

base.py holds what generic code may ask (Domain, Verdict, Plain); each world with more to say lives in its
own folder (shapes/); registry.py says which world a folder or a model belongs to. Generic code imports
the names below and never a world's own modules.
"""
from gen.domains.base import RIGHT, UNSURE, VERDICTS, WRONG, Domain, Plain, Scenes, Verdict, same_text
from gen.domains.registry import (
                                  DOMAINS,
                                  INFO,
                                  PLAIN,
                                  SHAPES,
                                  UNDECLARED,
                                  declare,
                                  declared,
                                  draws_scenes,
                                  generating,
                                  get,
                                  of_data,
                                  of_model,
                                  resolve,
                                  scenes,
                                  undeclared_oracle,
)

__all__ = ["DOMAINS", "INFO", "PLAIN", "RIGHT", "SHAPES", "UNDECLARED", "UNSURE", "VERDICTS", "WRONG", "Domain", "Plain",
           "Scenes", "Verdict", "declare", "declared", "draws_scenes", "generating", "get", "of_data", "of_model",
           "resolve", "same_text", "scenes", "undeclared_oracle"]
