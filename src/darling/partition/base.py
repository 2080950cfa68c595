"""The pairwise equivalence classifier interface shared by every backend.

A classifier estimates ``p(equivalent | y_a, y_b)`` for two responses to the same prompt
(spec section 2). The estimator contract (scikit-learn's):

- ``__init__`` only stores its keyword arguments, each under its own name; ``get_params`` and
  ``set_params`` are derived from the ``__init__`` signature, so ``type(c)(**c.get_params())``
  is an unfitted copy of ``c`` (``clone``);
- learned attributes end in ``_`` (``threshold_``, the head tensors of embed-once) and are set
  only by ``fit`` (and ``calibrate``, which sets ``threshold_``) or by ``load_classifier``;
- ``fit(pairs, labels)`` returns ``self``; ``predict_proba`` returns one float array of shape
  ``(n_pairs,)``; predicting with a classifier that needs fitting and was neither fitted nor
  loaded raises ``NotFittedError``. The parameter-free lexical baselines need no fit
  (``darling.partition.lexical``).

Every backend implements ``_score_indexed(texts, index_pairs)``; the base class applies the
short-answer rule before any model, checks for NaN, and offers the pair-list API on top.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from darling.errors import BadFileError, MissingPathError, is_hub_name, one_line
from darling.partition.calibration import best_f1_threshold
from darling.partition.unionfind import union_find_partition

SHORT_ANSWER_MAX_WORDS = 5
"""Spec section 2: the short-answer rule applies when both responses have at most 5 words."""

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

SENTENCE_PUNCTUATION = ".,;:!?"
"""Characters ``short_answer_words`` strips from the end of a token (``"lima."`` -> ``"lima"``)."""

Pair = tuple[str, str]


class NotFittedError(ValueError, AttributeError):
    """A classifier that needs fitting was used to predict before ``fit`` or loading
    (scikit-learn's ``NotFittedError`` also derives from ValueError and AttributeError)."""


def short_answer_words(text: str) -> list[str]:
    """Lower-cased whitespace tokens of ``text`` (the authors' rule, spec section 2), each with
    trailing sentence punctuation stripped; nothing inside a token is touched, so signs,
    decimal points, fraction bars and thousands commas stay. A token made only of punctuation is
    kept whole (``"!!!"`` stays ``"!!!"``).

    >>> short_answer_words("Lima.  -1/2 2,000 !!!")
    ['lima', '-1/2', '2,000', '!!!']
    """
    return [token.rstrip(SENTENCE_PUNCTUATION) or token for token in text.lower().split()]


def short_answer_rule(text_a: str, text_b: str) -> bool | None:
    """The authors' short-answer rule (spec section 2).

    When both responses have at most ``SHORT_ANSWER_MAX_WORDS`` whitespace words, they are
    equivalent iff ``2 * |shared lower-cased words| >= max(word counts)``. Returns ``None`` when
    the rule does not apply (either response is longer), so the model decides.

    Words are ``short_answer_words``: whitespace tokens with only trailing sentence punctuation
    stripped, so ``"Banana"`` and ``"banana."`` match but ``"1/2"`` and ``"1/3"``, ``"-1"`` and
    ``"1"`` do not. Two empty responses are equivalent (``0 >= 0``); an empty and a non-empty
    one are not.

    >>> short_answer_rule("Lima", "lima.")
    True
    >>> short_answer_rule("Lima, Peru", "Quito")
    False
    >>> short_answer_rule("3.14", "3.15")
    False
    >>> short_answer_rule("one two three four five six", "one") is None
    True
    """
    if len(text_a.split()) > SHORT_ANSWER_MAX_WORDS or len(text_b.split()) > SHORT_ANSWER_MAX_WORDS:
        return None
    words_a, words_b = short_answer_words(text_a), short_answer_words(text_b)
    shared = len(set(words_a) & set(words_b))
    return 2 * shared >= max(len(words_a), len(words_b))


def short_answer_decisions(pairs: Iterable[Pair]) -> np.ndarray:
    """``short_answer_rule`` on each pair: 1.0 (equivalent), 0.0 (not), or NaN where the rule
    does not apply and the model decides. Shape ``(n_pairs,)``, float64.

    >>> short_answer_decisions([("Lima", "lima."), ("Lima", "Quito"), ("a " * 6, "a")]).tolist()
    [1.0, 0.0, nan]
    """
    decisions = [short_answer_rule(a, b) for a, b in pairs]
    return np.asarray([np.nan if d is None else float(d) for d in decisions], dtype=np.float64)


class PairClassifier:
    """Base class: ``p(equivalent | a, b)`` with a calibrated decision threshold ``threshold_``.

    Subclasses set ``backend`` (the name written to ``config.json``), take their hyper-parameters
    as ``__init__`` keyword arguments stored under the same names, implement ``_score_indexed``
    and, when they learn anything, ``fit``, ``learned_state`` and ``_restore_state``.
    """

    backend: ClassVar[str] = ""
    stores_weights: ClassVar[bool] = False
    """Whether a saved classifier of this backend must have a ``model.safetensors`` (learned
    tensors); ``load_classifier`` refuses a folder without it rather than score with an
    untrained model."""
    applies_short_answer_rule: ClassVar[bool] = True
    """Whether pairs of short responses are decided by ``short_answer_rule`` before the model.
    Backends that compare final answers ("1/2" vs "0.50") turn it off."""
    fitted_attributes: ClassVar[tuple[str, ...]] = ("threshold_",)
    """Learned attributes that ``fit`` or loading sets; scoring before all of them exist raises
    ``NotFittedError``. Empty for backends that need no fitting."""
    threshold_: float

    # -- parameters (scikit-learn's BaseEstimator contract) -----------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        """Names of the ``__init__`` keyword arguments, in signature order."""
        if cls.__init__ is object.__init__:
            return []
        names = []
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if name == "self":
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(
                    f"{cls.__name__}.__init__ must list its parameters by name (scikit-learn "
                    f"estimator convention), not *{name}: get_params derives from the signature"
                )
            names.append(name)
        return names

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The ``__init__`` keyword arguments and their current values (read from the attributes
        of the same names). ``deep`` is accepted for scikit-learn compatibility; no parameter
        is itself an estimator."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> PairClassifier:
        """Set ``__init__`` parameters by name and return ``self``. Learned attributes are kept:
        refit (or reload) after changing a parameter that shapes what was learned."""
        valid = self._param_names()
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no parameter(s) {unknown}; valid parameters: {valid}"
            )
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    def check_is_fitted(self) -> None:
        """Raise ``NotFittedError`` unless every one of ``fitted_attributes`` is set."""
        missing = [name for name in self.fitted_attributes if not hasattr(self, name)]
        if missing:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted (no {', '.join(missing)}): call "
                "fit(pairs, labels) first, or load a trained one with "
                "darling.partition.load_classifier(<directory>)"
            )

    # -- learning ------------------------------------------------------------------------------
    def fit(self, pairs: Sequence[Pair], labels: Sequence[int]) -> PairClassifier:
        """Learn from labelled pairs (1 = equivalent); returns ``self``."""
        raise NotImplementedError

    def calibrate(self, pairs: Sequence[Pair], labels: Sequence[int]) -> np.ndarray:
        """Set ``threshold_`` to the best-F1 threshold of ``p > t`` on these labelled pairs
        (held-out ones: ``calibration.best_f1_threshold``, spec section 2).

        Returns ``predict_proba(pairs)``, shape ``(n_pairs,)``.
        """
        _check_pairs_labels(pairs, labels)
        proba = self.predict_proba(pairs)
        self.threshold_, _ = best_f1_threshold(labels, proba)
        return proba

    # -- prediction ----------------------------------------------------------------------------
    def predict_proba(self, pairs: Sequence[Pair]) -> np.ndarray:
        """``p(equivalent)`` for each pair. Shape ``(n_pairs,)``, float64 in [0, 1]."""
        texts: list[str] = []
        index = np.empty((len(pairs), 2), dtype=np.int64)
        for k, (a, b) in enumerate(pairs):
            index[k] = (len(texts), len(texts) + 1)
            texts.extend((a, b))
        return self.predict_proba_indexed(texts, index)

    def labels(
        self,
        texts: Sequence[str],
        group_ids: Sequence[Hashable],
        rows: Sequence[Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, float]]:
        """The ``Partition`` protocol (``darling.partition.protocol``): classes are the connected
        components of the within-group pairs with ``p > threshold_`` (``union_find_partition``); the
        metrics summarise the pair probabilities. ``rows`` are not used."""
        self.check_is_fitted()
        return union_find_partition(texts, group_ids, self)

    def predict(self, pairs: Sequence[Pair]) -> np.ndarray:
        """Equivalence decisions ``p > threshold_``. Shape ``(n_pairs,)``, bool."""
        self.check_is_fitted()
        return self.predict_proba(pairs) > self.threshold_

    def predict_proba_indexed(self, texts: Sequence[str], index_pairs: np.ndarray) -> np.ndarray:
        """Score pairs of ``texts`` given by position: ``index_pairs`` has shape ``(P, 2)``.

        This is the batched entry point used by ``partition``: embed-once backends encode each
        text once, however many pairs it takes part in. Returns shape ``(P,)``.
        Raises NotFittedError before ``fit``/loading (backends that need it), ValueError if the
        backend produced NaN (never silently 0 or 1).
        """
        self.check_is_fitted()
        index_pairs = np.asarray(index_pairs, dtype=np.int64).reshape(-1, 2)
        proba = (
            short_answer_decisions((texts[i], texts[j]) for i, j in index_pairs)
            if self.applies_short_answer_rule
            else np.full(len(index_pairs), np.nan)
        )
        rows = np.flatnonzero(np.isnan(proba))
        if len(rows):
            scores = np.asarray(self._score_indexed(texts, index_pairs[rows]), dtype=np.float64)
            if scores.shape != (len(rows),):
                raise ValueError(
                    f"{type(self).__name__} returned scores of shape {scores.shape}, "
                    f"expected ({len(rows)},)"
                )
            if np.isnan(scores).any():
                bad = index_pairs[rows][np.isnan(scores)][0]
                raise ValueError(
                    f"{type(self).__name__} returned NaN for {int(np.isnan(scores).sum())} "
                    "pair(s), "
                    f"first at texts {bad.tolist()}: refusing to read NaN as equivalent or not"
                )
            proba[rows] = scores
        return proba

    def _score_indexed(self, texts: Sequence[str], index_pairs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- persistence -------------------------------------------------------------------------
    def learned_state(self) -> dict[str, Any]:
        """Learned tensors, as ``save`` writes them to model.safetensors (empty for
        parameter-free backends). ``threshold_`` is saved in config.json instead."""
        return {}

    def _restore_state(self, state: dict[str, Any]) -> None:
        """Restore what ``learned_state`` returned (called by ``load_classifier`` only)."""

    def parameter_counts(self) -> dict[str, int]:
        """``stored``: numbers in ``learned_state``; ``inference``: parameters used to score
        (the whole network for model backends)."""
        stored = sum(int(v.numel()) for v in self.learned_state().values())
        return {"stored": stored, "inference": stored}

    def save(self, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write ``config.json`` (backend, ``get_params()``, ``threshold_``, ``extra`` metadata)
        and, when the backend has learned tensors, ``model.safetensors``."""
        from safetensors.torch import save_file

        self.check_is_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "backend": self.backend,
            "threshold": float(self.threshold_),
            "params": self.get_params(),
            "meta": extra or {},
        }
        state = self.learned_state()
        if state:
            save_file({k: v.contiguous() for k, v in state.items()}, str(directory / WEIGHTS_FILE))
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        return directory


_BACKENDS: dict[str, type[PairClassifier]] = {}

_BUILTIN_MODULES = {
    "embed_once": "darling.partition.embed_once",
    "cross_encoder": "darling.partition.cross_encoder",
    "ngram": "darling.partition.lexical",
    "jaccard": "darling.partition.lexical",
}
"""Modules of the built-in backends, imported by ``load_classifier`` on demand (so importing
``darling.partition`` does not import torch or transformers)."""


def register_backend(cls: type[PairClassifier]) -> type[PairClassifier]:
    """Class decorator: make ``cls`` loadable by its ``backend`` name."""
    if not cls.backend:
        raise TypeError(f"{cls.__name__} must set a non-empty `backend` name")
    _BACKENDS[cls.backend] = cls
    return cls


def load_classifier(directory: str | Path, trust_remote_code: bool = False) -> PairClassifier:
    """Load a classifier saved by ``PairClassifier.save``; clear errors name the path.

    ``trust_remote_code`` (for the cross-encoder backend: run Python shipped with the model) comes
    from the caller's own config only: a folder whose ``config.json`` asks for it is refused unless
    the caller passes ``trust_remote_code=True`` (``classifier.trust_remote_code=true``), since a
    downloaded folder could otherwise run its own code.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise MissingPathError(
            f"no classifier at {directory}: expected {config_path} (write one with "
            "PairClassifier.save or train one with train_classifier.py)"
        )
    try:
        config = json.loads(config_path.read_text())
        backend, threshold = config["backend"], float(config["threshold"])
        params = dict(config.get("params", {}))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise BadFileError(f"corrupt classifier config {config_path}: {err}") from err
    if backend not in _BACKENDS and backend in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[backend])
    if backend not in _BACKENDS:
        known = sorted(set(_BACKENDS) | set(_BUILTIN_MODULES))
        raise BadFileError(f"{config_path} names backend {backend!r}; known backends: {known}")
    if "trust_remote_code" in params:
        if params["trust_remote_code"] and not trust_remote_code:
            raise ValueError(
                f"{config_path} sets trust_remote_code=true, which would run Python code from "
                f"the model files: refused. Only your own config may enable it: pass "
                f"classifier.trust_remote_code=true if you trust {directory}"
            )
        params["trust_remote_code"] = trust_remote_code
    cls = _BACKENDS[backend]
    weights = directory / WEIGHTS_FILE
    if cls.stores_weights and not weights.is_file():
        raise MissingPathError(
            f"classifier {directory} (backend {backend!r}) has no {WEIGHTS_FILE}: its learned "
            f"weights are missing, and an untrained {cls.__name__} would call every pair 0.5. "
            "Copy the whole folder, or train one with train_classifier.py"
        )
    encoder = params.get("encoder")
    if isinstance(encoder, str) and not Path(encoder).exists() and not is_hub_name(encoder):
        raise MissingPathError(
            f"{config_path} names encoder {encoder!r}, which does not exist: set \"encoder\" "
            "there to the folder of the sentence encoder (or null for the shipped MiniLM)"
        )
    classifier = cls(**params)
    if weights.exists():
        try:
            state = load_file(str(weights))
        except (SafetensorError, OSError, RuntimeError) as err:
            raise BadFileError(f"corrupt classifier weights {weights}: {err}") from err
        try:
            classifier._restore_state(state)
        except OSError as err:  # transformers could not load the encoder the config names
            raise BadFileError(
                f"{config_path} names encoder {encoder!r}, which could not be loaded (not a "
                f"local folder; as a hub name it needs hub access): {one_line(err)}"
            ) from err
        except (SafetensorError, RuntimeError, KeyError) as err:
            raise BadFileError(f"corrupt classifier weights {weights}: {err}") from err
    classifier.threshold_ = threshold
    return classifier


def _check_pairs_labels(pairs: Sequence[Pair], labels: Sequence[int]) -> None:
    if len(pairs) != len(labels):
        raise ValueError(f"got {len(pairs)} pairs but {len(labels)} labels")
    if len(pairs) == 0:
        raise ValueError("cannot fit a classifier on zero pairs")
