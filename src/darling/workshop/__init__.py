"""The classifier workshop: offline fitting of the partition's pair classifiers.

The partition function that training calls every step lives in ``darling.partition``; this
package makes and checks the classifiers it loads, and nothing here runs during training:

- ``pairs_data``: labelled pairs (NoveltyBench format) and the prompt-disjoint split;
- ``training``: fit, calibrate on held-out prompts, report next to baselines, save with a card;
- ``folds``, ``fold_scorers``, ``fold_report``: leave-one-labeller-out and cross-source folds,
  one scorer per backend, the fold table;
- ``mining``, ``labelling``, ``in_domain``: in-domain pairs from a run's rollout log, labelled
  by the task's verifier or an LM judge (threads, a disk cache), and the checks of a classifier
  trained with them; ``card_sections``: their model-card sections;
- ``cli``: the Hydra shell (``python -m darling.workshop`` or ``python train_classifier.py``).
"""
