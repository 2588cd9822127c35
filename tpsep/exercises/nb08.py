"""Exercises of notebook 08 (the leaderboard): which methods are worth their cost, and which
examples each process of a DDP run sees."""

from __future__ import annotations

import numpy as np

from tpsep.exercises import register


def pareto_front(costs, scores) -> np.ndarray:
    """Which methods no other method beats at no greater cost.

    Method ``i`` is *dominated* when some method ``j`` costs no more (``costs[j] <= costs[i]``)
    and scores no less (``scores[j] >= scores[i]``), and is strictly better in one of the two.

    Args:
        costs, scores: ``(methods,)`` arrays (a cost such as minutes or parameters; a score in dB).

    Returns:
        ``(methods,)`` boolean array, True for the methods that are not dominated.
    """
    costs, scores = np.asarray(costs, dtype=float), np.asarray(scores, dtype=float)
    no_worse = (costs[None, :] <= costs[:, None]) & (scores[None, :] >= scores[:, None])  # [i, j]: j vs i
    better = (costs[None, :] < costs[:, None]) | (scores[None, :] > scores[:, None])
    return ~(no_worse & better).any(axis=1)


def shard_indices(n_examples: int, rank: int, world_size: int) -> list[int]:
    """The examples that process ``rank`` of ``world_size`` reads in one epoch, without shuffling.

    As ``torch.utils.data.DistributedSampler(shuffle=False)``: the list ``0 .. n_examples - 1`` is
    padded by repeating its start until every process gets as many examples, then dealt out like
    cards: process ``r`` takes positions ``r, r + world_size, r + 2 world_size, ...``.
    """
    per_process = -(-n_examples // world_size)  # ceil: no process may run out of batches before another
    indices = list(range(n_examples))
    indices += indices[:per_process * world_size - n_examples]
    return indices[rank::world_size]


def _front_inputs(rng):
    methods = int(rng.integers(4, 12))
    costs = rng.choice([1.0, 2.0, 5.0, 15.0, 40.0, 105.0], size=methods)  # ties in cost happen
    scores = np.round(rng.normal(5.0, 4.0, size=methods), 0)  # ... and ties in score
    return (costs, scores), {}


def _shard_inputs(rng):
    world_size = int(rng.integers(2, 5))
    n_examples = int(rng.integers(world_size, 23))  # often not a multiple of world_size
    return (n_examples, int(rng.integers(0, world_size)), world_size), {}


register("08.pareto_front", reference=pareto_front, make_inputs=_front_inputs, trials=5, points=3,
         hint="compare every pair (i, j): i is dominated when some j has cost <= and score >=, with at least "
              "one of the two strict; a method tied with another on both counts is not dominated by it")
register("08.shard_indices", reference=shard_indices, make_inputs=_shard_inputs, trials=5,
         hint="pad to ceil(n / world_size) * world_size by repeating the first indices, then take every "
              "world_size-th index starting at rank")
