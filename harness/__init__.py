"""harness: a research harness for vanishing and exploding gradients."""

__version__ = "0.1.0"
