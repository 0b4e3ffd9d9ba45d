"""The demonstration (``harness-demo``): the numbers it prints are the regimes mean-field theory predicts
for its two networks, and its gradient check passes."""

import math
import re

from harness import demo, prediction

NETWORKS = {"sigmoid/xavier": ("sigmoid", "xavier_normal"), "relu/he": ("relu", "he_normal")}  # as printed


def _printed(capsys) -> tuple[int, dict[str, list[float]], dict[str, float], list[str]]:
    demo.main()
    lines = capsys.readouterr().out.splitlines()
    width = int(re.search(r"width (\d+)", lines[0])[1])
    names = lines[1].split()[1:]
    rows = [line.split() for line in lines[2:] if re.fullmatch(r"\s*\d+(\s+\S+)+", line)]
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))  # one row per layer, in order
    profiles = {name: [float(r[1 + i]) for r in rows] for i, name in enumerate(names)}
    ratios = {}
    for line in lines:
        found = re.fullmatch(r"(\S+): first/last layer gradient ratio = (\S+)", line)
        if found:
            ratios[found[1]] = float(found[2])
    return width, profiles, ratios, lines


def test_the_demo_prints_vanishing_sigmoid_and_flowing_he_relu_gradients(capsys):
    width, profiles, ratios, lines = _printed(capsys)
    assert list(profiles) == list(ratios) == list(NETWORKS)
    depth = len(profiles["relu/he"])
    for name, p in profiles.items():
        # the ratio is the table's first over last row; both are printed to 4 significant digits
        # (each rounding within 5e-4 relative), the ratio to 4 more: 1.5e-3 relative at most
        assert math.isclose(ratios[name], p[0] / p[-1], rel_tol=1.5e-3), name
    # sigmoid: each layer back multiplies ||dL/dh|| by at most max sigmoid' = 1/4 times the weights'
    # largest singular value, 2 for a square Xavier matrix (Bai-Yin; 2.1 leaves many Tracy-Widom
    # standard deviations, ~n^(-2/3), of slack): a hard bound over the depth - 1 layers below the top
    assert ratios["sigmoid/xavier"] < (2.1 / 4) ** (depth - 1)
    # both against the mean-field prediction sqrt(E||dL/dh_1||^2 / E||dL/dh_D||^2) (relu/He: 1), with
    # 5 standard deviations of the finite-width spread of the log ratio (theory's variance for one
    # sample bounds the batch's; halved for a norm) plus its O(depth / n) bias, (2 + v) / 4n per layer
    # with v <= 1 the spread of phi'^2 (relu's Bernoulli mask; sigmoid's is smaller)
    for name, (activation, init) in NETWORKS.items():
        pred = prediction.predict(activation, [width] * depth, width, init, 1.0, 0.0, output_dim=10, batch=64)
        expected = 0.5 * math.log(pred.grad_h2[0] / pred.grad_h2[-1])
        tol = 5 * math.sqrt(pred.grad_h_logvar[0]) / 2 + (depth - 1) * 3 / (4 * width)
        assert abs(math.log(ratios[name]) - expected) < tol, (name, ratios[name], math.exp(expected), tol)
    # the gradient check of the small residual, layer-normed network passes every row
    assert lines[-1].startswith("PASSED; cost: ")
    rows = [line.split() for line in lines if re.match(r"(layer\d+|readout|input)\s", line)]
    assert rows and all(r[-1] == "yes" for r in rows)
