"""EXECUTE: run the planned runs and store each as it ends. ``sweep`` is the loop (progress, ETA,
Ctrl-C); an ``executor`` (``local`` worker processes, or ``ray`` tasks) runs each run through
``process`` as ``python -m bench.execute.worker``, whose ``worker`` process measures and writes the
record; ``limits`` sizes the memory and time a run may take."""
