"""darling: diversity-aware RL for language models (DARLING, arXiv 2509.02534)."""

__version__ = "0.1.0"
