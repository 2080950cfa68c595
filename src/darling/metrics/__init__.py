"""Evaluation metrics: pass@k, NoveltyBench distinct/utility, lexical and embedding diversity.

Pure functions over lists and arrays with explicit ``group_ids``; nothing here logs or reads
files.
"""

from darling.metrics.embedding import mean_pairwise_cosine_distance, vendi_score
from darling.metrics.lexical import distinct_n, ngram_novelty_scores
from darling.metrics.novelty import correct_distinct_k, distinct_k, utility_k
from darling.metrics.passk import default_ks, pass_at_k, pass_at_k_curve

__all__ = [
    "correct_distinct_k",
    "default_ks",
    "distinct_k",
    "distinct_n",
    "mean_pairwise_cosine_distance",
    "ngram_novelty_scores",
    "pass_at_k",
    "pass_at_k_curve",
    "utility_k",
    "vendi_score",
]
