"""Read models built from the log: timeline, directory, consent state, roster."""
