"""`caption describe`: captions for image files, with greedy, beam or nucleus decoding."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from caption.judge.judge import Judge
from gen.core.errors import UserError
from gen.data import UNREADABLE, SkipLog, read_rgb
from gen.data.images import ImageRejected


def describe(model_dir: str | Path, images: Sequence[str | Path], beams: int = 1, top_p: float | None = None,
             seed: int = 0, device: str | None = None) -> list[dict]:
    """One dict per input: {"file", "caption"} or {"file", "skipped": reason}; bad files never stop the run."""
    if beams < 1:  # checked before the model is loaded
        raise UserError(f"--beams must be at least 1 (1: greedy), not {beams}")
    if top_p is not None and not 0 < top_p <= 1:  # NaN fails this too
        raise UserError(f"--top-p must be in (0, 1], not {top_p}")
    judge = Judge(model_dir, device=device)
    results, pixels, ok = [], [], []
    notes = SkipLog()  # 16-bit or float inputs: warned about once
    for path in map(Path, images):
        try:  # read_rgb refuses FIFOs, devices and decompression bombs before decoding anything
            pixels.append(judge.pil_to_pixels(read_rgb(path, notes)))
            ok.append(len(results))
            results.append({"file": str(path)})
        except FileNotFoundError:
            results.append({"file": str(path), "skipped": "missing file"})
        except ImageRejected as err:
            results.append({"file": str(path), "skipped": str(err)})
        except UNREADABLE as err:
            results.append({"file": str(path), "skipped": f"not a readable image ({type(err).__name__})"})
    if pixels:
        for i, cap in zip(ok, judge.caption(torch.stack(pixels), num_beams=beams, top_p=top_p, seed=seed)):
            results[i]["caption"] = cap
    return results
