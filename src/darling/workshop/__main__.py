"""``python -m darling.workshop``: what ``train_classifier.py`` runs (``darling.workshop.cli``)."""

from darling.workshop.cli import cli

cli()
