"""STORE: one record per run and the folder that holds them. ``record`` builds and stamps a record;
``results`` commits a run folder atomically, keeps one comparison context per folder, and rebuilds
the tidy CSVs (docs/results-schema.md is the contract)."""
