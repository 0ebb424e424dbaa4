"""Evaluation: shared-prefix log-likelihood scoring, ranking metrics, baselines, reports.

* :mod:`.scoring`: ``score_continuations`` / ``score_question`` (reused by recommend and DPO).
* :mod:`.metrics`: accuracy, HR@k, MRR, bootstrap intervals.
* :mod:`.baselines`: random and co-occurrence (PMI) scorers.
* :mod:`.runner`: ``run_evaluation`` (what ``mlx-outfit eval`` runs), resumable predictions.
* :mod:`.report`: terminal table, markdown comparison, PNG chart.
"""
