"""`ezclip eval`: the published protocols, their plans and scoring, metrics, the report and its plots."""
