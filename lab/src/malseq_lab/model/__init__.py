"""Training, export, stacking and experiments for the models `malseq.model` evaluates at scan time."""
