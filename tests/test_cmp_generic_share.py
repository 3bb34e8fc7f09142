"""The share of the catalogue's wrong answers that get only cmp's generic message.

    .venv/bin/python tests/test_cmp_generic_share.py            # with this repository's cmp.py
    PYTHONPATH=/some/other/version .venv/bin/python tests/test_cmp_generic_share.py

Every mistake of tests/test_cmp_catalog.py is checked as a student meets it (every gradient
before it checked, right); "generic" is the rule `wrong_values` ("check the local derivative
and the gradient you multiply it by"), alone or after a dtype note.
"""
import contextlib
import io
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path += [os.path.dirname(HERE), HERE]  # appended: a cmp.py on PYTHONPATH comes first

import cmp  # noqa: E402

if not hasattr(cmp, "RULE_IDS"):  # an older cmp.py, measured for comparison: its RULES was the list of ids
    cmp.RULE_IDS = cmp.RULES
import test_cmp_catalog as catalog  # noqa: E402
from lecture import manual_backward  # noqa: E402

GENERIC = {"wrong_values", "dtype+wrong_values"}


def generic_mistakes():
    """(labels that get only the generic message, number of mistakes)."""
    generic = []
    for label, tensor, mistake, _, _ in catalog.MISTAKES:
        net = catalog.forward_keeping_the_graph()
        grads = manual_backward(net)
        cmp.reset()
        with contextlib.redirect_stdout(io.StringIO()):
            catalog._check_everything_before(net, grads, tensor)
            result = catalog.cmp_in_notebook(net, grads, tensor, mistake(net, grads))
        if result.diagnosis in GENERIC:
            generic.append(label)
    return generic, len(catalog.MISTAKES)


if __name__ == "__main__":
    generic, total = generic_mistakes()
    print(f"cmp from {cmp.__file__}")
    print(f"{len(generic)} of {total} wrong answers get only the generic message ({100 * len(generic) / total:.1f}%)")
    for label in generic:
        print("  " + label)


def test_the_share_counts_exactly_the_catalogue_mistakes_labelled_generic():
    generic, total = generic_mistakes()
    assert total == len(catalog.MISTAKES)
    assert generic == [m[0] for m in catalog.MISTAKES if m[3] in GENERIC]
