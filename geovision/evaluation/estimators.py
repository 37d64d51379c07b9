"""Accuracy and area estimators: small pure functions with their formulas.

Two orientations of an error matrix appear here, and each function says which it takes:

* a **confusion matrix** ``C`` (torchmetrics' and geovision's): rows reference, columns
  predicted (map);
* a **sample error matrix** ``n`` (Olofsson et al.'s): rows map class (the stratum), columns
  reference class.

``n = C.T``. Reference: Olofsson, P., Foody, G. M., Herold, M., Stehman, S. V., Woodcock,
C. E., Wulder, M. A. (2014). Good practices for estimating area and assessing accuracy of land
change. Remote Sensing of Environment 148, 42-57 (section 4, the stratified estimators with the
map classes as strata, and the numerical example of section 5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: Confidence level of every interval.
CONFIDENCE = 0.95
#: Two-sided standard normal quantile of :data:`CONFIDENCE` (the 1.96 of Olofsson et al.).
Z95 = 1.959963984540054


def _ratio(num: np.ndarray | float, den: np.ndarray | float) -> Any:
    """``num / den`` elementwise, NaN where ``den`` is 0."""
    num_a, den_a = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den_a != 0, num_a / np.where(den_a != 0, den_a, 1.0), np.nan)


# --- a full confusion matrix (a census: every pixel has a reference) ---------------------------

def overall_accuracy(confusion: np.ndarray) -> float:
    """Share of agreement: ``OA = sum_k C_kk / sum_ij C_ij`` (NaN for an empty matrix)."""
    c = np.asarray(confusion, dtype=np.float64)
    return float(_ratio(np.trace(c), c.sum()))


def cohen_kappa(confusion: np.ndarray) -> float:
    """Cohen's kappa: agreement beyond chance.

    ``kappa = (p_o - p_e) / (1 - p_e)`` with ``p_o = sum_k C_kk / N`` and
    ``p_e = sum_k (C_k. / N) (C_.k / N)``, ``N = sum_ij C_ij``. NaN when ``p_e = 1``.
    """
    c = np.asarray(confusion, dtype=np.float64)
    total = c.sum()
    if total == 0:
        return float("nan")
    po = np.trace(c) / total
    pe = float(np.sum(c.sum(axis=1) * c.sum(axis=0))) / total**2
    return float(_ratio(po - pe, 1.0 - pe))


@dataclass(frozen=True)
class ClassMetrics:
    """Per-class metrics of a confusion matrix (rows reference, columns predicted).

    With ``TP_k = C_kk``, ``FP_k = C_.k - C_kk`` and ``FN_k = C_k. - C_kk``:

    * ``users_accuracy`` (precision) ``= TP / (TP + FP) = C_kk / C_.k``;
    * ``producers_accuracy`` (recall) ``= TP / (TP + FN) = C_kk / C_k.``;
    * ``f1 = 2 TP / (2 TP + FP + FN)``;
    * ``iou = TP / (TP + FP + FN)``.

    Each is NaN where its denominator is 0 (a class absent from both sides, or from the side
    it divides by).
    """

    users_accuracy: np.ndarray
    producers_accuracy: np.ndarray
    f1: np.ndarray
    iou: np.ndarray
    reference: np.ndarray
    predicted: np.ndarray


def class_metrics(confusion: np.ndarray) -> ClassMetrics:
    """IoU, F1, user's and producer's accuracy of every class (see :class:`ClassMetrics`)."""
    c = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(c)
    reference, predicted = c.sum(axis=1), c.sum(axis=0)
    fp, fn = predicted - tp, reference - tp
    return ClassMetrics(
        users_accuracy=_ratio(tp, predicted), producers_accuracy=_ratio(tp, reference),
        f1=_ratio(2 * tp, 2 * tp + fp + fn), iou=_ratio(tp, tp + fp + fn),
        reference=reference, predicted=predicted)


# --- stratified sample, strata = map classes (Olofsson et al. 2014) -----------------------------

@dataclass(frozen=True)
class StratifiedEstimates:
    """Estimates from a stratified sample whose strata are the map classes.

    Every array is indexed by class. Standard errors are NaN where a stratum holds fewer than
    two sample units; values are NaN where undefined (e.g. the user's accuracy of a class with
    no sample unit).

    Attributes:
        proportions: ``p_ij`` (rows map, columns reference), the estimated area proportions.
        overall_accuracy, overall_accuracy_se: ``O`` and its standard error.
        users_accuracy, users_accuracy_se: ``U_i`` and its standard errors.
        producers_accuracy, producers_accuracy_se: ``P_j`` and its standard errors.
        area_proportion, area_proportion_se: ``p_.k`` (the reference class's share of the
            area) and its standard errors.
        area, area_se: ``A_k = A p_.k`` in the unit of the mapped areas, and standard errors.
        total_area: ``A``, the sum of the mapped areas.
    """

    proportions: np.ndarray
    overall_accuracy: float
    overall_accuracy_se: float
    users_accuracy: np.ndarray
    users_accuracy_se: np.ndarray
    producers_accuracy: np.ndarray
    producers_accuracy_se: np.ndarray
    area_proportion: np.ndarray
    area_proportion_se: np.ndarray
    area: np.ndarray
    area_se: np.ndarray
    total_area: float

    def interval(self, value: np.ndarray | float, se: np.ndarray | float,
                 z: float = Z95) -> tuple[Any, Any]:
        """The normal interval ``value -/+ z se`` (95% by default, as in the paper)."""
        return (np.asarray(value) - z * np.asarray(se), np.asarray(value) + z * np.asarray(se))


@dataclass(frozen=True)
class PointEstimates:
    """The stratified point estimates (no standard errors), for any leading dimensions.

    Attributes:
        proportions: ``p_ij = W_i n_ij / n_i.`` (rows map, columns reference).
        overall_accuracy: ``O = sum_j p_jj``.
        users_accuracy: ``U_i = p_ii / p_i.``.
        producers_accuracy: ``P_j = p_jj / p_.j``.
        area_proportion: ``p_.k = sum_i p_ik``.
    """

    proportions: np.ndarray
    overall_accuracy: np.ndarray
    users_accuracy: np.ndarray
    producers_accuracy: np.ndarray
    area_proportion: np.ndarray


def point_estimates(sample: np.ndarray, mapped_area: np.ndarray) -> PointEstimates:
    """The point estimates of :func:`stratified_estimates`, vectorized.

    ``sample`` may carry leading dimensions before its ``(q, q)`` (e.g. bootstrap replicates,
    each its own sample); ``mapped_area`` is the same for all. A class that the map does not
    hold (``W_i = 0``) adds nothing; a mapped class without sample units leaves ``p_ij``
    undefined, so every estimate that needs its row is NaN.
    """
    n = np.asarray(sample, dtype=np.float64)
    mapped = np.asarray(mapped_area, dtype=np.float64)
    w = mapped / mapped.sum()
    share = _ratio(n, n.sum(axis=-1, keepdims=True))                   # n_ij / n_i.
    share = np.where((w == 0)[:, None], 0.0, share)
    p = w[:, None] * share
    diag = np.diagonal(p, axis1=-2, axis2=-1)
    return PointEstimates(
        proportions=p, overall_accuracy=diag.sum(axis=-1),
        users_accuracy=_ratio(diag, p.sum(axis=-1)),
        producers_accuracy=_ratio(diag, p.sum(axis=-2)),
        area_proportion=p.sum(axis=-2))


def stratified_estimates(sample: np.ndarray, mapped_area: np.ndarray) -> StratifiedEstimates:
    """Area, accuracy and their standard errors from a stratified random sample.

    ``sample`` is the sample error matrix ``n_ij`` (rows: map class ``i``, the stratum;
    columns: reference class ``j``), ``mapped_area`` the area ``A_m,i`` that the map gives
    each class (any unit; pixels work). With ``n_i. = sum_j n_ij``, ``A = sum_i A_m,i`` and
    ``W_i = A_m,i / A`` (the estimators of Olofsson et al. 2014, section 4):

    * area proportions ``p_ij = W_i n_ij / n_i.``;
    * overall accuracy ``O = sum_j p_jj``,
      ``V(O) = sum_i W_i^2 U_i (1 - U_i) / (n_i. - 1)``;
    * user's accuracy ``U_i = p_ii / p_i. = n_ii / n_i.``,
      ``V(U_i) = U_i (1 - U_i) / (n_i. - 1)``;
    * producer's accuracy ``P_j = p_jj / p_.j``, with ``N_i. = A_m,i`` and the estimated
      reference total ``N_.j = sum_i N_i. n_ij / n_i.``::

          V(P_j) = 1 / N_.j^2 * [ N_j.^2 (1 - P_j)^2 U_j (1 - U_j) / (n_j. - 1)
                                  + P_j^2 sum_{i != j} N_i.^2 (n_ij / n_i.)
                                    (1 - n_ij / n_i.) / (n_i. - 1) ];

    * area proportion of reference class ``k``: ``p_.k = sum_i W_i n_ik / n_i.``,
      ``SE(p_.k) = sqrt(sum_i W_i^2 (n_ik / n_i.) (1 - n_ik / n_i.) / (n_i. - 1))``;
    * area ``A_k = A p_.k`` with ``SE(A_k) = A SE(p_.k)``; a 95% interval is
      ``A_k -/+ 1.96 SE(A_k)`` (:meth:`StratifiedEstimates.interval`).

    Args:
        sample: ``(q, q)`` counts of sample units, rows map, columns reference.
        mapped_area: ``(q,)`` mapped area of each class.

    Returns:
        The estimates.

    Raises:
        ValueError: the shapes do not agree.
    """
    n = np.asarray(sample, dtype=np.float64)
    mapped = np.asarray(mapped_area, dtype=np.float64)
    q = len(mapped)
    if n.shape != (q, q):
        raise ValueError(f"sample is {n.shape}, expected ({q}, {q}) for {q} mapped areas")
    point = point_estimates(n, mapped)
    total = float(mapped.sum())
    w = mapped / total
    n_i = n.sum(axis=1)
    share = np.nan_to_num(_ratio(n, n_i[:, None]))  # n_ij / n_i.
    dof = np.where(n_i > 1, n_i - 1, np.nan)        # n_i. - 1; NaN below two units
    users, producers = point.users_accuracy, point.producers_accuracy
    users0 = np.nan_to_num(users)
    mapped_here = w > 0
    o_var = float(np.sum(np.where(mapped_here, w**2 * users0 * (1 - users0) / dof, 0.0)))
    users_var = users * (1 - users) / dof
    n_col = (mapped[:, None] * share).sum(axis=0)   # N_.j
    terms = np.where(mapped_here[:, None],
                     mapped[:, None] ** 2 * share * (1 - share) / dof[:, None], 0.0)
    producers_var = np.empty(q)
    for j in range(q):
        others = terms[:, j].sum() - terms[j, j]
        own = mapped[j] ** 2 * (1 - producers[j]) ** 2 * users[j] * (1 - users[j]) / dof[j]
        producers_var[j] = _ratio(own + producers[j] ** 2 * others, n_col[j] ** 2)
    prop_var = np.where(mapped_here[:, None], w[:, None] ** 2 * share * (1 - share)
                        / dof[:, None], 0.0).sum(axis=0)
    prop_se = np.sqrt(prop_var)
    return StratifiedEstimates(
        proportions=point.proportions, overall_accuracy=float(point.overall_accuracy),
        overall_accuracy_se=float(np.sqrt(o_var)),
        users_accuracy=users, users_accuracy_se=np.sqrt(users_var),
        producers_accuracy=producers, producers_accuracy_se=np.sqrt(producers_var),
        area_proportion=point.area_proportion, area_proportion_se=prop_se,
        area=total * point.area_proportion, area_se=total * prop_se, total_area=total)


# --- a full reference map: census values and the block bootstrap --------------------------------

def census_estimates(area_matrix: np.ndarray) -> PointEstimates:
    """The estimators of :func:`stratified_estimates` when every unit of the map is sampled.

    With the areas ``a_ij`` (rows map class, columns reference class) as the sample and
    ``A_m,i = a_i.`` as the mapped areas, ``p_ij = W_i a_ij / a_i. = a_ij / A``: the
    stratified estimates are the area-weighted census values. Their sampling variance is zero
    (every unit is observed); their uncertainty comes from the block bootstrap
    (:func:`bootstrap_weights`), whose replicates go through :func:`point_estimates` with the
    scene's mapped areas.
    """
    a = np.asarray(area_matrix, dtype=np.float64)
    return point_estimates(a, a.sum(axis=-1))


def bootstrap_weights(seed: int, block: tuple[int, int], replicates: int) -> np.ndarray:
    """How many times each bootstrap replicate draws one block of the scene.

    With a full reference map, the interval of an estimate says how far it could be from
    that of another scene mapped with the same errors. The scene is cut into square blocks; a
    replicate redraws the blocks with replacement, sums their area error matrices into its
    own "sample", and goes through the stratified estimators (:func:`point_estimates`) with
    the scene's mapped areas, which the map gives exactly, as in Olofsson et al.: what varies
    between replicates is the error matrix within each map class, as it would between
    stratified samples. Blocks keep the spatial correlation of errors inside them (a block
    bootstrap, Kuensch 1989). Drawing ``B``
    blocks out of ``B`` with replacement gives each block a Multinomial(B, 1/B) count, which
    for many blocks is Poisson(1) and independent between blocks (the Poisson bootstrap,
    Hanley and MacGibbon 2006). Independent counts let each block's weights come from its own
    seed, ``(seed, block row, block col)``: the replicates do not depend on the order in which
    blocks are read, so a scene read in any order, or in parts, gives the same intervals.

    Args:
        seed: the bootstrap's seed.
        block: (row, col) of the block in the grid of blocks.
        replicates: number of replicates.

    Returns:
        ``(replicates,)`` float64 Poisson(1) counts.
    """
    rng = np.random.default_rng([int(seed), int(block[0]), int(block[1])])
    return rng.poisson(1.0, replicates).astype(np.float64)


def percentile_interval(values: np.ndarray, level: float = CONFIDENCE) -> tuple[Any, Any]:
    """The percentile bootstrap interval of replicates along axis 0.

    The ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles, NaN replicates left out (NaN
    where all are).
    """
    v = np.asarray(values, dtype=np.float64)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    if v.size == 0 or np.all(np.isnan(v)):
        nan = np.full(v.shape[1:], np.nan)
        return nan, nan
    out = []
    for q in (lo, hi):
        with np.errstate(invalid="ignore"):
            all_nan = np.all(np.isnan(v), axis=0)
            filled = np.where(all_nan[None], 0.0, v)
            out.append(np.where(all_nan, np.nan, np.nanpercentile(filled, q, axis=0)))
    return out[0], out[1]


def bootstrap_se(values: np.ndarray) -> Any:
    """Standard deviation of the replicates along axis 0 (NaN replicates left out)."""
    v = np.asarray(values, dtype=np.float64)
    ok = (~np.isnan(v)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(v, axis=0) / np.maximum(ok, 1)
        var = np.nansum((v - mean) ** 2, axis=0) / np.maximum(ok - 1, 1)
    return np.where(ok > 1, np.sqrt(var), np.nan)
