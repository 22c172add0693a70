"""The recurrent heads of the four papers and their baselines, one readable file per model."""
