"""Train, calibrate and save the partition's pair classifier: ``darling.workshop.cli``.

    python train_classifier.py    # the shipped default, see conf/train_classifier/config.yaml
    python train_classifier.py folds.enabled=true train=false    # the fold table only
    python train_classifier.py data=rollouts data.run=runs/<name>  # in-domain classifier

``python -m darling.workshop`` runs the same program.
"""

from darling.workshop.cli import cli

if __name__ == "__main__":
    cli()
