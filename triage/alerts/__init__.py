"""Alert rules, evaluation, state and history."""
