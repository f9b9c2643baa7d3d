"""The masking-explanations paper's linear toy (appendix F): its two claims."""

import numpy as np

from roar.evaluate.linear_toy import certifies_interval, certifies_top, make_problem, run_linear_toy


def test_the_problem_has_unit_inputs_and_the_stated_margin():
    w, x, y = make_problem(np.random.default_rng(0), 50, 400, 0.3)
    assert np.allclose(np.linalg.norm(x, axis=1), 1) and np.isclose(np.linalg.norm(w), 1)
    assert np.allclose(y * (x @ w), 0.3)
    assert np.abs(x).max() < 10 / np.sqrt(400) and np.abs(w).max() < 10 / np.sqrt(400)  # appendix F's bound


def test_certificates_on_a_hand_checked_vector():
    votes = np.array([[3.0, -1.0, -1.0, -1.0, -1.0, 0.5]])
    assert certifies_top(votes, 5) and not certifies_top(votes, 6)  # 3 + 0.5 - 1 - 1 - 1 = 0.5; all six: -0.5
    assert certifies_interval(votes, 2) and certifies_interval(votes, 1)  # [3, -1] sums to 2
    assert not certifies_interval(votes, 4)  # [3,-1,-1,-1] = 0, [-1,-1,-1,-1], [-1,-1,-1,0.5]: none above 0


def test_top_coordinates_certify_both_labels_complete_and_unsound():
    r = run_linear_toy(n=300, d=1000, gamma=0.3, lengths=(1, 10, 100, 300, 500))
    assert r["top"]["y"] == [1.0] * 5 and r["top"]["-y"] == [1.0] * 5


def test_intervals_certify_the_label_and_almost_never_its_opposite_as_length_grows():
    lengths = (1, 10, 30, 100, 300, 500)
    r = run_linear_toy(n=500, d=1000, gamma=0.3, lengths=lengths)
    wrong = r["interval"]["-y"]
    assert r["interval"]["y"] == [1.0] * len(lengths)  # complete at every length
    assert wrong[0] == 1.0 and all(a >= b for a, b in zip(wrong, wrong[1:]))  # falls with L
    assert wrong[3] <= 0.15 and wrong[4] == 0.0  # measured: 0.072 at L = 100, 0 from L = 300
    wider = run_linear_toy(n=500, d=1000, gamma=0.5, lengths=lengths)["interval"]["-y"]
    assert wider[2] < wrong[2]  # a larger margin needs shorter intervals (L ~ log(d) / gamma^2)
