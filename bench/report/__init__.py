"""RENDER: the leaderboard, from stored results only.

The path through this package: ``load`` reads what the runner stored, ``comparable`` keeps one
comparison context, ``summary`` and ``statistics`` summarise and test, ``tables`` and ``figures``
draw, ``markdown``, ``sections``, ``provenance``, ``classical`` and ``training`` write the page, and
``render`` runs them in that order. Nothing here trains, predicts or recomputes a metric.
"""

from bench.report.render import FIGURE_FILES, LEADERBOARD_MD, ResultsNotFoundError, render_report

__all__ = ["FIGURE_FILES", "LEADERBOARD_MD", "ResultsNotFoundError", "render_report"]
