"""Backtest and history tooling: importers, the in-process pipeline, baselines and reports.

History flows through the services' own engines (`perpsignal_domain.scoring.engine.ScoringEngine`,
`perpsignal_judge.judge.Judge`, `perpsignal_domain.outcomes.evaluate`), never a re-implementation,
so a backtest measures the code that runs live.
"""
