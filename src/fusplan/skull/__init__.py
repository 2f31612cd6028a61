"""Skull model: CT input, transducer pose, per-element ray tracing, SDR, transmission."""
