"""Keeping a running log in shape: retention (delete the oldest records, leave a
signed anchor) and the maintenance thread that signs checkpoints and applies it."""
