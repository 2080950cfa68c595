"""Model-card sections (and log tables) of an in-domain classifier's pairs and checks
(``darling.workshop.in_domain``)."""

from __future__ import annotations

from omegaconf import DictConfig


def human_val_section(result: dict, data: DictConfig, seed: int) -> str:
    """Model-card section (and log table) of ``human_val_auc``."""
    names = [k for k in result if k != "pairs"]
    lines = ["## Human validation pairs", "",
             f"ROC-AUC on the {result['pairs']:.0f} human pairs of the validation prompts "
             f"(`{data.path}`, seed {seed}, validation fraction {data.val_fraction}; the shipped "
             "default was trained with the same split, so it never saw them).", "",
             "| classifier | ROC-AUC |", "|---|---|"]
    lines += [f"| {name} | {result[name]:.3f} |" for name in names]
    if len(names) == 2:
        lines += ["", f"Change: {result[names[0]] - result[names[1]]:+.3f}."]
    return "\n".join(lines + [""])


def heldout_section(results: dict[str, dict], categories: list[str]) -> str:
    """Model-card section (and log table) of ``heldout_agreement`` per classifier."""
    first = next(iter(results.values()))
    lines = ["## Held-out categories", "",
             f"Rollouts of {len(categories)} categories kept out of mining "
             f"({', '.join(categories)}): {first['groups']:.0f} groups, "
             f"{first['same_pairs']:.0f} pairs with the same answer, "
             f"{first['different_pairs']:.0f} with different answers.", "",
             "| classifier | false split | false merge |", "|---|---|---|"]
    lines += [f"| {name} | {r['false_split']:.3f} | {r['false_merge']:.3f} |"
              for name, r in results.items()]
    return "\n".join(lines + [""])


def card_section(counts: dict, data: DictConfig) -> str:
    """Model-card section on the in-domain pairs."""
    return "\n".join([
        "## In-domain pairs",
        "",
        f"Mined from {counts['rollouts']} rollouts of the run `{data.run}` (prompts: "
        f"`{counts['prompts']}`): pairs of distinct responses within one group, balanced between "
        f"same and different answers, at most {data.max_pairs}, seed {data.seed}. "
        f"{counts['mined']} mined: {counts['verifier']} labelled by the task's verifier, "
        f"{counts['judge']} by the LM judge "
        f"({data.judge.model if data.judge.base_url else 'none configured'}), "
        f"{counts['missing']} left unlabelled and not used; "
        f"{counts['equivalent']} labelled equivalent.",
        "",
    ])

