"""Our EK-FAC == kronfluence 1.0.1's EK-FAC at matched settings (Pearson ≥ 0.99 per query).

kronfluence runs through its public API only (oracles.kronfluence_scores): Task with compute_train_loss = summed NLL
over the document's labels (sample=False, use_empirical_fisher=True), measurement = completion NLL summed over the
completion tokens (prompt masked), attention mask for padding, ScoreArguments(damping_factor=None) = 0.1·mean(Λ),
no query low rank, float64, the same tracked MLP layers. Ours: fisher="empirical", damping="auto", rank=None.
"""
import pytest

from tests.engine import oracles as O

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with O.single_thread():
        yield


def test_same_tracked_modules():
    from engine.model import find_tracked_modules
    case = O.trained_case()
    assert list(find_tracked_modules(case.model, "mlp")) == case.modules


def test_ekfac_matches_kronfluence(tmp_path_factory):
    theirs = O.kronfluence_trained_case(str(tmp_path_factory.mktemp("kronfluence")))
    ours = O.engine_trained_case("ekfac")
    pearson = O.pearson_rows(ours, theirs)
    rel_err = float((ours - theirs).norm() / theirs.norm())
    print(f"\nours vs kronfluence ekfac: min per-query Pearson {pearson.min():.8f}, rel err {rel_err:.2e}")
    assert pearson.min() >= 0.99
    assert rel_err < 1e-4   # same conventions exactly (averaging, damping, sign), not just correlated
