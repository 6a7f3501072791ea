"""Fig. 1 and Fig. 2 toy landscapes: the computed facts the figures show, and the drawn points."""

import numpy as np

from pait.report.toy import THETA0, TOY_SCORES, draw_fig1, fig1_data, fig2_data, prune


def test_obs_score_prunes_the_weight_whose_removal_costs_least():
    for panel in fig1_data():
        h = panel.task.hessian
        candidates = []
        for q in (0, 1):  # every way to zero one weight, with the best re-fit of the other
            point = THETA0.copy()
            point[q] = 0
            candidates.append(panel.task.loss(point))
            other = 1 - q
            point[other] = THETA0[other] + h[other, q] / h[other, other] * THETA0[q]
            candidates.append(panel.task.loss(point))
        assert panel.losses["obs"] == min(panel.losses.values())
        assert np.isclose(panel.losses["obs"], min(candidates))
        assert all((panel.points[s] == 0).sum() == 1 for s in TOY_SCORES)
    tilted = {p.name: p for p in fig1_data()}["tilted"]
    assert tilted.removed["magnitude"] != tilted.removed["obs"]
    assert tilted.losses["obs"] < tilted.losses["diagonal"] < tilted.losses["magnitude"]


def test_obs_update_is_the_constrained_minimum():
    h = np.array([[2.0, 0.7], [0.7, 1.0]])
    q, point = prune(THETA0, h, "obs")
    g = h @ (point - THETA0)
    assert point[q] == 0 and abs(g[1 - q]) < 1e-12


def test_retraining_helps_aligned_and_hurts_misaligned_transfer():
    panels = {p.name: p for p in fig2_data()}
    for p in panels.values():
        assert (p.path[:, 1] == 0).all()  # the mask is held
        assert p.source_losses[-1] < p.source_losses[0]
    assert panels["aligned"].transfer_losses[-1] < panels["aligned"].transfer_losses[0]
    assert panels["misaligned"].transfer_losses[-1] > panels["misaligned"].transfer_losses[0]


def test_fig1_marks_the_computed_points():
    fig = draw_fig1()
    for ax, panel in zip(fig.axes, fig1_data()):
        drawn = {line.get_label().split(":")[0]: np.array([line.get_xdata()[0], line.get_ydata()[0]])
                 for line in ax.lines if ":" in line.get_label()}
        assert len(drawn) == len(TOY_SCORES)
        for point in panel.points.values():
            assert any(np.allclose(point, d) for d in drawn.values())
