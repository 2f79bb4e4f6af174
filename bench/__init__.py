"""segbench harness: run the model matrix, store the results, render the report."""
