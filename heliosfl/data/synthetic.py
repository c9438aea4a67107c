"""Synthetic multi-site data: many sites that share a task but not a data distribution.

The generative process, for ``K`` classes, ``d`` features and sites ``s = 1..S``:

1. Class means ``mu_k`` are random directions of Euclidean norm ``class_separation``,
   shared by every site, so there is a real, learnable signal.
2. Each site draws its label proportions ``pi_s ~ Dirichlet(label_skew * 1_K)`` (label
   skew; ``None`` gives balanced classes) and a covariate shift: an offset
   ``b_s = covariate_shift * g / sqrt(d)`` with ``g ~ N(0, I_d)`` (so ``||b_s||`` is about
   ``covariate_shift``) and per-feature scales ``a_s = exp(0.2 * covariate_shift * h)``,
   ``h ~ N(0, I_d)`` (about 1).
3. A row of site ``s``: ``y ~ Categorical(pi_s)``, ``x = a_s * (mu_y + e) + b_s``,
   ``e ~ N(0, I_d)``.

With ``covariate_shift=0`` and ``label_skew=None`` every site draws from one distribution
(IID). All rows are drawn at once, vectorised; sites are views into one read-only array.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from heliosfl.data.nodedata import (
    FloatArray,
    IntArray,
    NodeData,
    StrArray,
    check_int,
    check_number,
    fraction_count,
    frozen,
)
from heliosfl.errors import ConfigError

__all__ = ["synthetic_sites"]

_SCALE_SPREAD = 0.2
"""Log-standard deviation of the per-feature scales, per unit of ``covariate_shift``."""

_BLOCK_ROWS = 32768
"""Rows generated per vectorised step (fewer when rows are wide)."""

_BLOCK_VALUES = 32 * _BLOCK_ROWS
"""Values (rows x features, or rows x classes) a vectorised step handles at most."""

_MAX_CLASSES = 10_000
"""Most classes :func:`synthetic_sites` generates."""

_MAX_FEATURES = 100_000
"""Most feature columns :func:`synthetic_sites` generates."""

_MAX_BYTES = 4 * 2**30
"""Most memory (bytes) :func:`synthetic_sites` may need; larger requests are refused."""

_ROW_BYTES = 256
"""Bytes per row besides its features: label, site and position indices, subject id."""

_SITE_BYTES = 2048
"""Bytes per site besides its parameters: the NodeData object and its array views."""

_FIXED_BYTES = 64 * 2**20
"""Temporaries of one vectorised step, and slack."""


def synthetic_sites(
    *,
    num_sites: int,
    samples_per_site: int | tuple[int, int] = 100,
    num_features: int = 30,
    num_classes: int = 2,
    covariate_shift: float = 0.5,
    label_skew: float | None = 1.0,
    class_separation: float = 2.0,
    val_fraction: float = 0.2,
    test_samples: int = 2000,
    seed: int = 0,
) -> tuple[list[NodeData], NodeData]:
    """Generate sites with label, covariate and (optionally) quantity skew, and a test set.

    Parameters
    ----------
    num_sites : int
        Number of sites (nodes), ``>= 1``.
    samples_per_site : int or (int, int), default 100
        Rows per site, ``>= 1``; a ``(low, high)`` pair draws each site's size uniformly
        from ``low..high`` inclusive (quantity skew).
    num_features : int, default 30
        Feature columns, from 1 to 100,000.
    num_classes : int, default 2
        Classes, from 2 to 10,000; labels are ``0..num_classes-1``.
    covariate_shift : float, default 0.5
        Size of each site's feature offset (and spread of its feature scales), ``>= 0``.
    label_skew : float or None, default 1.0
        Dirichlet concentration of each site's class proportions, ``> 0``: smaller is more
        skewed (0.1 gives sites dominated by one class, 100 nearly balanced ones). ``None``
        gives every site balanced proportions.
    class_separation : float, default 2.0
        Norm of each class mean, ``>= 0``, against unit within-class noise; 0 means no
        signal. Two classes are about ``sqrt(2) * class_separation`` apart.
    val_fraction : float, default 0.2
        Share of each site's rows held as its validation split, in ``[0, 1)`` (floor; at
        least one training row is kept).
    test_samples : int, default 2000
        Rows of the global test set, ``>= 1``.
    seed : int, default 0
        Seed (``>= 0``); the output is a deterministic function of all the arguments.

    Returns
    -------
    sites : list of NodeData
        One node per site, with ``X_val``/``y_val`` and subject ids such as
        ``"site00042-000017"`` (site, then row within the site).
    test : NodeData
        Rows from the mixture of sites: each row's site is drawn with probability
        proportional to the sites' sizes, then the row as above. Subject ids
        ``"test-000017"``.

    Raises
    ------
    ConfigError
        If any argument is outside the range stated above, or the arguments together ask
        for more than 4 GiB of memory (checked before anything is allocated).

    Notes
    -----
    Rows within a site are independent draws, so its validation split is simply its last
    rows. Generating 10,000 sites of 100 rows and 30 features takes about a second.

    The memory needed is estimated up front: about ``8 * num_features + 256`` bytes per
    row (training and test), ``24 * (num_features + num_classes)`` bytes per site and
    ``16 * num_classes * num_features`` bytes of class means. Requests above 4 GiB raise
    :class:`~heliosfl.errors.ConfigError` naming the argument that needs the most.

    Examples
    --------
    >>> sites, test = synthetic_sites(num_sites=3, samples_per_site=50, seed=0)
    >>> [len(site) for site in sites], sites[0].num_val_samples, test.num_features
    ([40, 40, 40], 10, 30)
    """
    num_sites = check_int("num_sites", num_sites, minimum=1)
    low, high = _check_sizes(samples_per_site)
    num_features = _check_at_most(
        "num_features", check_int("num_features", num_features, minimum=1), 1, _MAX_FEATURES
    )
    num_classes = _check_at_most(
        "num_classes", check_int("num_classes", num_classes, minimum=2), 2, _MAX_CLASSES
    )
    covariate_shift = check_number(
        "covariate_shift", covariate_shift, low=0.0, open_=False, high=100.0
    )  # beyond ~100 the per-feature scales exp(0.2 * shift * h) overflow
    concentration = None
    if label_skew is not None:
        concentration = check_number("label_skew", label_skew, low=0.0, open_=True)
    class_separation = check_number("class_separation", class_separation, low=0.0, open_=False)
    val_fraction = check_number("val_fraction", val_fraction, low=0.0, open_=False, high=1.0)
    test_samples = check_int("test_samples", test_samples, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    _check_memory(
        num_sites=num_sites,
        max_rows=num_sites * high,
        num_features=num_features,
        num_classes=num_classes,
        test_samples=test_samples,
    )

    means_seed, sites_seed, rows_seed, test_seed = np.random.SeedSequence(seed).spawn(4)
    rng = np.random.default_rng(means_seed)
    directions = rng.standard_normal((num_classes, num_features))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    means = class_separation * directions

    rng = np.random.default_rng(sites_seed)
    sizes = rng.integers(low, high, size=num_sites, endpoint=True)
    if concentration is None:
        proportions = np.full((num_sites, num_classes), 1.0 / num_classes)
    else:
        proportions = rng.dirichlet(np.full(num_classes, concentration), size=num_sites)
    offsets = (
        covariate_shift / math.sqrt(num_features) * rng.standard_normal((num_sites, num_features))
    )
    scales = np.exp(_SCALE_SPREAD * covariate_shift * rng.standard_normal(offsets.shape))
    site_params = (means, proportions, offsets, scales)

    site_of_row = np.repeat(np.arange(num_sites), sizes)
    X, y = _draw_rows(np.random.default_rng(rows_seed), site_of_row, *site_params)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    within = np.arange(site_of_row.shape[0]) - starts[site_of_row]
    ids = frozen(np.char.add(_numbered("site", site_of_row, 5), _numbered("-", within, 6)))
    sites = []
    for start, stop in zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True):
        cut = stop - min(fraction_count(val_fraction, stop - start), stop - start - 1)
        validation: dict[str, Any] = {}
        if cut < stop:
            validation = {
                "X_val": X[cut:stop],
                "y_val": y[cut:stop],
                "subject_ids_val": ids[cut:stop],
            }
        sites.append(NodeData(X[start:cut], y[start:cut], ids[start:cut], **validation))

    rng = np.random.default_rng(test_seed)
    test_sites = rng.choice(num_sites, size=test_samples, p=sizes / sizes.sum())
    X_test, y_test = _draw_rows(rng, test_sites, *site_params)
    test_ids = frozen(_numbered("test-", np.arange(test_samples), 6))
    return sites, NodeData(X_test, y_test, test_ids)


def _check_sizes(samples_per_site: object) -> tuple[int, int]:
    """``(low, high)`` of the site sizes, from an int or a pair of ints."""
    allowed = "an integer >= 1 or a (low, high) pair of integers with 1 <= low <= high"
    if isinstance(samples_per_site, Sequence) and not isinstance(samples_per_site, str):
        if len(samples_per_site) != 2:
            raise ConfigError("samples_per_site", samples_per_site, allowed)
        try:
            low = check_int("samples_per_site", samples_per_site[0], minimum=1)
            high = check_int("samples_per_site", samples_per_site[1], minimum=low)
        except ConfigError:
            raise ConfigError("samples_per_site", samples_per_site, allowed) from None
        return low, high
    try:
        size = check_int("samples_per_site", samples_per_site, minimum=1)
    except ConfigError:
        raise ConfigError("samples_per_site", samples_per_site, allowed) from None
    return size, size


def _check_at_most(name: str, value: int, low: int, high: int) -> int:
    """``value`` if it is at most ``high``, else a ConfigError naming the limit."""
    if value > high:
        raise ConfigError(
            name,
            value,
            f"an integer in [{low:,}, {high:,}]",
            hint="Larger values would not fit in memory alongside the rows.",
        )
    return value


def _estimated_bytes(
    *, num_sites: int, max_rows: int, num_features: int, num_classes: int, test_samples: int
) -> dict[str, tuple[int, int]]:
    """Estimate the peak memory of :func:`synthetic_sites`, term by term.

    Returns
    -------
    dict of str to (int, int)
        For each argument (or product of arguments) that memory grows with, its value and
        the bytes per unit of it: ``value * unit`` bytes. A further ``_FIXED_BYTES`` cover
        the temporaries of one vectorised step.
    """
    row_bytes = 8 * num_features + _ROW_BYTES
    return {
        "num_sites * samples_per_site": (max_rows, row_bytes),
        "test_samples": (test_samples, row_bytes),
        "num_sites": (num_sites, 24 * (num_features + num_classes) + _SITE_BYTES),
        "num_classes * num_features": (num_classes * num_features, 16),
    }


def _check_memory(
    *, num_sites: int, max_rows: int, num_features: int, num_classes: int, test_samples: int
) -> None:
    """Refuse, before allocating anything, arguments that need more than ``_MAX_BYTES``."""
    terms = _estimated_bytes(
        num_sites=num_sites,
        max_rows=max_rows,
        num_features=num_features,
        num_classes=num_classes,
        test_samples=test_samples,
    )
    total = _FIXED_BYTES + sum(value * unit for value, unit in terms.values())
    if total <= _MAX_BYTES:
        return
    name, (value, unit) = max(terms.items(), key=lambda item: item[1][0] * item[1][1])
    most = max(0, (_MAX_BYTES - (total - value * unit)) // unit)
    raise ConfigError(
        name,
        value,
        f"at most {most:,} with num_features={num_features:,} and num_classes="
        f"{num_classes:,}, so that the generated data fit in {_MAX_BYTES // 2**30} GiB "
        f"(these arguments need about {total / 2**30:.1f} GiB)",
        hint="Use fewer sites, samples per site, features or classes, or a smaller test set.",
    )


def _draw_rows(
    rng: np.random.Generator,
    site_of_row: IntArray,
    means: FloatArray,
    proportions: FloatArray,
    offsets: FloatArray,
    scales: FloatArray,
) -> tuple[FloatArray, IntArray]:
    """Draw one row per entry of ``site_of_row``; return read-only ``(X, y)``."""
    # Inverse-CDF sampling of the labels, vectorised over blocks of rows; the last
    # cumulative value is left out so rounding can never produce a label past
    # num_classes - 1.
    cumulative = np.cumsum(proportions[:, :-1], axis=1)
    rows = int(site_of_row.shape[0])
    uniform = rng.random(size=rows)
    y = np.empty(rows, dtype=np.int64)
    step = max(1, _BLOCK_VALUES // cumulative.shape[1])
    for start in range(0, rows, step):
        stop = start + step
        below = uniform[start:stop, None] >= cumulative[site_of_row[start:stop]]
        np.sum(below, axis=1, out=y[start:stop])
    X = np.empty((rows, means.shape[1]))
    # Blocks of rows keep the gathered temporaries small (one 240 MB temporary per step
    # would cost more in page faults than the arithmetic).
    step = max(1, min(_BLOCK_ROWS, _BLOCK_VALUES // means.shape[1]))
    for start in range(0, rows, step):
        block, sites = X[start : start + step], site_of_row[start : start + step]
        rng.standard_normal(out=block)
        block += means[y[start : start + step]]
        block *= scales[sites]
        block += offsets[sites]
    return frozen(X), frozen(y)


def _numbered(prefix: str, numbers: IntArray, width: int) -> StrArray:
    """Strings ``prefix + zero-padded number``, vectorised (no Python loop per row)."""
    digits = max(width, len(str(int(numbers.max(initial=0)))))
    return np.char.add(prefix, np.char.zfill(numbers.astype(f"U{digits}"), width))
