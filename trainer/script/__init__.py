"""The script backend: sweep and ablate any modded-nanogpt-style `train_gpt.py` without editing it.

knobs.py lists the literals a researcher would change (each with a stable address), patch.py
rewrites exactly those literals' text, logparse.py reads the record's `step:N/M ...` lines and
run.py runs a patched copy, turning its log into the trainer's event stream
(`python -m trainer.script`).
"""
