import numpy as np
import pytest
import torch

from pait.heads import fit_ridge


@pytest.mark.parametrize("n,d", [(40, 7), (5, 12)])  # primal and dual branches
def test_fit_ridge_matches_numpy_lstsq(n, d):
    gen = torch.Generator().manual_seed(n)
    phi = torch.randn(n, d, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 3, (n,), generator=gen)
    alpha = 1.0
    xi = fit_ridge(phi, labels, 3, alpha=alpha)

    y = np.eye(3)[labels.numpy()]
    a = phi.numpy().T @ phi.numpy() + alpha * np.eye(d)
    reference = np.linalg.lstsq(a, phi.numpy().T @ y, rcond=None)[0]
    assert xi.shape == (d, 3)
    np.testing.assert_allclose(xi.numpy(), reference, atol=1e-6, rtol=0)


def test_fit_ridge_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="do not match"):
        fit_ridge(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long), 2)
