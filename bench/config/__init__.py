"""SETTINGS: what a run is asked to do. ``profiles`` (the named schedules and their overrides),
``run_config`` (one run's settings and the identity hashed from them) and ``modes`` (the speed
modes: precision, XLA, determinism). Every later stage reads these; they read no later stage."""
