"""EVIDENCE: the per-image arrays behind every metric. ``ops`` computes them on the device from
masks and logits, ``npz`` is their stored format (``evidence.npz``), ``quality`` defines the overlap
measures on them, ``declarations`` declares every stored array and per-image metric once, and
``metrics`` pools them into the metric rows a record stores and the report's statistics resample."""
