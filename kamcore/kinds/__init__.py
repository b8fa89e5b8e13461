"""The rule kinds: formula, decision table, scorecard, ranking — each compiled to whole-column operations."""
