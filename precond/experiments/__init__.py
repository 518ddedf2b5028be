"""Experiment runners: protocols, results stores, plots and reports."""
