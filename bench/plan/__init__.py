"""PLAN: which runs a sweep makes and what is already stored. ``matrix`` turns a profile, model
globs and a data source into one ``RunConfig`` per pair and seed and sorts them into done, failed
and to do; ``estimate`` says how long and how much memory each will take."""
