"""Chapter 5's summaries of the max-pool tables: the numbers its prose glues and its rendered tables.

Re-exported by :mod:`smp.experiments.maxpool`; kept apart so that the sweeps' module holds the
runs and this one what the page says about them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..models import maxpool_switch_integral

__all__ = ["sweep_summary", "sweep_table", "CNN_MODELS", "cnn_summary", "cnn_tables"]


def sweep_summary(sweep: pd.DataFrame, spot: pd.DataFrame | None = None) -> dict:
    """The numbers chapter 5 states about :func:`maxpool_sweep`'s table (for ``glue_all``).

    ``spot`` is a fresh rerun of some of its points (another seed); ``spot_z_max`` is then the
    largest difference from the stored measurement in combined standard errors.

    Example
    -------
    >>> from smp.experiments.maxpool import maxpool_sweep
    >>> table = maxpool_sweep(((2, 0.0),), n_paths=4, n_samples=4001, batch_paths=4)
    >>> summary = sweep_summary(table)
    >>> summary["paths"], summary["all_ok"] in ("all", "not all")
    (4, True)
    """
    allowed = np.maximum(3 * sweep.rel_sem, 0.03)  # 3 s.e., or 3 % where s.e. is tiny
    out = dict(
        paths=int(sweep.paths.iloc[0]),
        L=float(sweep.length.iloc[0]),
        ratio=float(sweep.dstd.iloc[0]),
        spe=float(
            (sweep.n_samples.iloc[0] - 1) / sweep.length.iloc[0] / sweep.dstd.iloc[0]
        ),
        sem_max=float(100 * sweep.rel_sem.max()),
        worst_pct=float(100 * sweep.rel_error.abs().max()),
        worst_z=float(sweep.z.abs().max()),
        all_ok="all" if bool((sweep.rel_error.abs() < allowed).all()) else "not all",
        est_worst=float(100 * sweep.estimator_error.abs().max()),
        rho_max=float(sweep.rho.max()),
    )
    for k in (2, 3, 4, 9):
        out[f"switch_rate_{k}"] = float(k * (k - 1) * maxpool_switch_integral(k))
    if spot is not None:
        ref = sweep.set_index(["k", "rho"]).loc[list(zip(spot.k, spot.rho))]
        z = (spot.measured.to_numpy() - ref.measured.to_numpy()) / np.hypot(
            spot.measured_sem.to_numpy(), ref.measured_sem.to_numpy()
        )
        out["spot_z_max"] = float(np.abs(z).max())
    return out


def sweep_table(sweep: pd.DataFrame) -> pd.DataFrame:
    """The sweep's rows for the page: K, rho, model, measured, s.e. and error in percent."""
    return pd.DataFrame(
        dict(
            k=sweep.k,
            rho=sweep.rho,
            model=sweep.model,
            measured=sweep.measured,
            se_pct=100 * sweep.rel_sem,
            error_pct=100 * sweep.rel_error,
            z=sweep.z,
        )
    )


#: the window models of :func:`maxpool_cnn`, by column stem, as the page names them
CNN_MODELS = {
    "iid": "i.i.d.",
    "corr": "equicorrelated",
    "window": "own statistics",
    "full": "measured covariance",
    "full_cross": "+ cross-covariance",
}


def cnn_summary(cnn: pd.DataFrame) -> dict:
    """The numbers chapter 5 states about :func:`maxpool_cnn`'s table (for ``glue_all``):
    per block ``{model}_b{block}_pct`` and ``_sem`` (total error, %), ``births_{model}_b{block}_pct``
    (births against those counted on the path, %), ``rho_b, drho_b, xcorr_b, spread_b,
    pass_share_b`` and the derived block-1 and cross-covariance numbers.

    Example
    -------
    >>> from smp.experiments.maxpool import maxpool_cnn
    >>> table = maxpool_cnn((1, 2, 2), input_size=4, n_samples=400, n_networks=2,
    ...                     full_draws=50)
    >>> summary = cnn_summary(table)
    >>> "cross_effect_b1_pct" in summary, "full_cross_b2_pct" in summary
    (True, True)
    """
    b = cnn.set_index("block")
    out = {"networks": int(cnn.networks.iloc[0])}
    for blk in b.index:
        row = b.loc[blk]
        for name in CNN_MODELS:
            out[f"{name}_b{blk}_pct"] = float(100 * row[f"{name}_error"])
            out[f"{name}_b{blk}_sem"] = float(100 * row[f"{name}_error_sem"])
            if name != "corr":
                births = row[f"births_{name}"] / row.births_counted - 1
                out[f"births_{name}_b{blk}_pct"] = float(100 * births)
        for name in ("rho", "drho", "xcorr"):
            out[f"{name}_b{blk}"] = float(row[name])
        out[f"spread_b{blk}"] = float(row.mean_spread)
        out[f"pass_share_b{blk}"] = float(100 * (1 - row.births_counted / row.measured))
        # the term's effect: the same draws with and without it
        effect = row.births_full_cross / row.births_full - 1
        out[f"cross_effect_b{blk}_pct"] = float(100 * effect)
        zero_effect = row.zero_full_cross / row.zero_full - 1
        out[f"cross_zero_b{blk}_pct"] = float(100 * zero_effect)
    later = cnn.iloc[1:]
    out["full_b23_worst"] = float(100 * later.full_error.abs().max())
    out["cross_effect_max_pct"] = float(
        100 * (cnn.births_full_cross / cnn.births_full - 1).abs().max()
    )
    first = b.loc[b.index[0]]
    out["corr_effect_b1_pct"] = float(
        100 * (first.births_full / first.births_window - 1)
    )
    # chapter 4: Rice's Gaussian rate times 2/sqrt(pi) is exact for a sinusoid, and every
    # block-1 input is one
    out["sinusoid_factor_pct"] = float(100 * (np.sqrt(np.pi) / 2 - 1))
    corrected = first.births_full * 2 / np.sqrt(np.pi) / first.births_counted - 1
    out["full_b1_sinusoid_pct"] = float(100 * corrected)
    return out


def cnn_tables(cnn: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Chapter 5's three views of :func:`maxpool_cnn`'s table, one row per block.

    ``windows``: the measured window statistics (rho, rho', median |corr(x_i, x_j')|, spread
    of the means, share of the SMP passed through); ``totals``: the measured total SMP and each
    model's error in percent; ``births``: the births counted on the path and each model's
    births error in percent (the equicorrelated model's births are not recorded).

    Example
    -------
    >>> from smp.experiments.maxpool import maxpool_cnn
    >>> table = maxpool_cnn((1, 2, 2), input_size=4, n_samples=400, n_networks=2,
    ...                     full_draws=50)
    >>> sorted(cnn_tables(table))
    ['births', 'totals', 'windows']
    """
    windows = pd.DataFrame(
        dict(
            block=cnn.block,
            windows=cnn.windows,
            rho=cnn.rho,
            drho=cnn.drho,
            xcorr=cnn.xcorr,
            spread=cnn.mean_spread,
            passed=100 * (1 - cnn.births_counted / cnn.measured),
        )
    )
    totals = pd.DataFrame(dict(block=cnn.block, measured=cnn.measured))
    births = pd.DataFrame(dict(block=cnn.block, counted=cnn.births_counted))
    for name in CNN_MODELS:
        totals[name] = 100 * cnn[f"{name}_error"]
        if name != "corr":
            births[name] = 100 * (cnn[f"births_{name}"] / cnn.births_counted - 1)
    totals["se"] = 100 * cnn.full_error_sem
    return dict(windows=windows, totals=totals, births=births)
