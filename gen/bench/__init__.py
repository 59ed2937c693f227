"""`gen bench`: speed against a plain diffusers loop, FLOPs and MFU."""
