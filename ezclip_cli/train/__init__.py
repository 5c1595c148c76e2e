"""`ezclip train`: data, model set-up, the step loop, schedule, exact-resume state, validation, run files."""
