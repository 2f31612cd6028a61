"""fusplan: an MR-guided focused ultrasound thalamotomy planner."""

__version__ = "0.1.0"
