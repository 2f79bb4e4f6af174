"""MEASURE: what one worker does for one run. ``run.measure_run`` builds the model (``build``) on
its devices (``devices``), trains it (``train``, ``validation``, ``precise_bn``), evaluates it
(per-image evidence from :mod:`bench.evidence`), times it (``timing``, ``flops``) and notes the
machine (``envinfo``)."""
