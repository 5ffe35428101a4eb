"""Scores for generated text against the expected answer.

BLEU is sacrebleu's sentence BLEU (0-100, effective-order smoothing, the right choice for single short
sentences); ROUGE-L is rouge-score's F-measure (0-1). The others are the original system's extras (spec §6.1).
"""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    # No stemmer: it lower-cases and strips punctuation already, and stemming would need nltk data.
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s.strip().lower())


def bleu(generated: str, expected: str) -> float:
    if not expected.strip():
        return 0.0
    return float(_bleu_metric().sentence_score(generated, [expected]).score) if generated.strip() else 0.0


@lru_cache(maxsize=1)
def _bleu_metric():
    from sacrebleu.metrics import BLEU

    return BLEU(effective_order=True)


def rouge_l(generated: str, expected: str) -> float:
    if not expected.strip() or not generated.strip():
        return 0.0
    return float(_rouge().score(expected, generated)["rougeL"].fmeasure)


def exact_match(generated: str, expected: str) -> float:
    return 1.0 if _norm(generated) == _norm(expected) else 0.0


def length_ratio(generated: str, expected: str) -> float:
    exp = len(expected.split())
    return len(generated.split()) / exp if exp else 0.0


def cer(generated: str, expected: str) -> float:
    """Character error rate: Levenshtein distance over the expected length."""
    a, b = _norm(generated), _norm(expected)
    if not b:
        return 0.0 if not a else 1.0
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1] / len(b)


def word_overlap(generated: str, expected: str) -> float:
    g, e = set(_norm(generated).split()), set(_norm(expected).split())
    return len(g & e) / len(e) if e else 0.0


def score_all(generated: str, expected: str | None) -> dict[str, float | None]:
    if expected is None:
        return {"bleu": None, "rouge_l": None, "exact_match": None, "length_ratio": None, "cer": None,
                "word_overlap": None}
    return {
        "bleu": round(bleu(generated, expected), 4),
        "rouge_l": round(rouge_l(generated, expected), 4),
        "exact_match": exact_match(generated, expected),
        "length_ratio": round(length_ratio(generated, expected), 4),
        "cer": round(cer(generated, expected), 4),
        "word_overlap": round(word_overlap(generated, expected), 4),
    }
