"""One architecture family per file; every module here is imported (and so registered) on first use."""
