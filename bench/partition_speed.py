"""Time the embed-once partition against a pairwise cross-encoder on the same base encoder.

For a group of n synthetic responses of about ``--words`` words, the embed-once classifier encodes
each response once (n encoder passes, each response chunked into 256-piece windows) while the
cross-encoder scores all n(n-1)/2 pairs on ``[CLS] a [SEP] b [SEP]`` inputs (the authors' method).
``CrossEncoderClassifier`` scores both orders to be symmetric; the one-order time (what the
authors' serving code pays) is reported too. Both run in this process with the same torch threads.

    python bench/partition_speed.py --out bench/partition_speed.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from darling.partition.cross_encoder import CrossEncoderClassifier
from darling.partition.embed_once import EmbedOnceClassifier
from darling.partition.unionfind import union_find_partition

COMMON_WORDS = tuple("""
the of and to in is that for it as was with be by on not he this are or his from at which but
have an they you were her she there been one all we their has would when if so no will more can
out other into about some what time only could new these two may first then do any like my now
over such our man me even most made after also did many before must through back years where much
your way well down should because each just those people how too little state good very make world
still own see men work long get here between both life being under never day same another know
while last might great old year off come since against go came right used take three states
himself few house use during without again place around however home small found thought went say
part once general high upon school every does got united left number course war until always away
something fact though water less public put think almost hand enough far took head yet government
system better set told nothing night end why called didn find look asked later knew point next
program city business give group toward young days let room president side social given present
several order national possible rather second face per among form important often things looked
early white case john become large big need four within felt along children saw best church ever
least power development light thing seemed family interest want members mind country area others
done turned although open god service problem certain kind different thus began door help sense
whole matter perhaps itself york times law human line above name example action company hands
local show five history whether gave either today act feet across taken past quite anything seen
having death week experience body word half really field am car words already themselves
information tell together college shall money period held keep sure free real probably seems
behind cannot miss political air question making office brought whose special heard major problems
ago became federal moment study available known result street economic boy position reason change
south board individual job areas society west close turn love community true court force full
""".split())


def synthetic_responses(n: int, words: int, seed: int) -> list[str]:
    """``n`` deterministic pseudo-responses of ``words`` common English words each.

    Common words tokenise like real chat responses (about 1.1 word pieces per word), so a
    300-word response needs two 256-piece windows, as a typical NoveltyBench response does.
    """
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(n):
        tokens = rng.choice(COMMON_WORDS, size=words)
        sentences = [" ".join(tokens[s : s + 15]).capitalize() + "." for s in range(0, words, 15)]
        texts.append(" ".join(sentences))
    return texts


def best_time(fn, repeats: int) -> float:
    """Minimum wall time of ``repeats`` calls of ``fn`` (seconds)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--words", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per size (min kept)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the table as a JSON list to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    warm = synthetic_responses(2, args.words, args.seed + 1)  # load models, warm up kernels
    # untrained heads (epochs=0: the head of embed-once fit on two pairs, a fresh cross-encoder
    # head): timing only, the encoder cost is the trained classifiers'
    warm_pairs, warm_labels = [(warm[0], warm[0]), (warm[0], warm[1])], [1, 0]
    embed_once = EmbedOnceClassifier(epochs=0).fit(warm_pairs, warm_labels)
    cross = CrossEncoderClassifier(seed=args.seed, epochs=0).fit(warm_pairs, warm_labels)
    union_find_partition(warm, [0, 0], embed_once)
    union_find_partition(warm, [0, 0], cross)

    rows = []
    for n in args.sizes:
        texts = synthetic_responses(n, args.words, args.seed + n)
        groups = [0] * n
        first, second = np.triu_indices(n, k=1)

        def one_order(texts=texts, first=first, second=second) -> None:
            for s in range(0, len(first), cross.batch_size):
                rows_ = slice(s, s + cross.batch_size)
                cross.pair_logits([texts[i] for i in first[rows_]],
                                  [texts[j] for j in second[rows_]])

        embed_s = best_time(
            lambda texts=texts, groups=groups: union_find_partition(texts, groups, embed_once),
            args.repeats)
        pairwise_s = best_time(
            lambda texts=texts, groups=groups: union_find_partition(texts, groups, cross),
            args.repeats)
        one_order_s = best_time(one_order, args.repeats)
        rows.append({
            "n": n,
            "pairs": int(n * (n - 1) // 2),
            "pairwise_s": round(pairwise_s, 3),
            "pairwise_one_order_s": round(one_order_s, 3),
            "embed_once_s": round(embed_s, 3),
            "speedup": round(pairwise_s / embed_s, 1),
            "speedup_one_order": round(one_order_s / embed_s, 1),
        })
        print(f"n={n}: embed-once {embed_s:.2f}s, pairwise both orders {pairwise_s:.2f}s, "
              f"one order {one_order_s:.2f}s", flush=True)

    header = ("n", "pairs", "pairwise_s", "pairwise_one_order_s", "embed_once_s", "speedup",
              "speedup_one_order")
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(row[h]) for h in header))
    print(f"threads={args.threads}, words={args.words}, repeats={args.repeats}")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
