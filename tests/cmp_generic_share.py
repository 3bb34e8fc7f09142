"""The share of the catalogue's wrong answers that get only cmp's generic message.

    .venv/bin/python tests/cmp_generic_share.py            # with this repository's cmp.py
    PYTHONPATH=/some/other/version .venv/bin/python tests/cmp_generic_share.py

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
import test_cmp_catalog as catalog  # noqa: E402
from lecture import forward, manual_backward  # noqa: E402

GENERIC = {"wrong_values", "dtype+wrong_values"}


def generic_mistakes():
    """(labels that get only the generic message, number of mistakes)."""
    generic = []
    for label, tensor, mistake, _, _ in catalog.MISTAKES:
        net = forward()
        grads = manual_backward(net)
        cmp.reset()
        with contextlib.redirect_stdout(io.StringIO()):
            catalog._check_everything_before(net, grads, tensor)
            result = cmp.cmp(tensor, mistake(net, grads), getattr(net, tensor), strict=False)
        if result.diagnosis in GENERIC:
            generic.append(label)
    return generic, len(catalog.MISTAKES)


if __name__ == "__main__":
    generic, total = generic_mistakes()
    print(f"cmp from {cmp.__file__}")
    print(f"{len(generic)} of {total} wrong answers get only the generic message ({100 * len(generic) / total:.1f}%)")
    for label in generic:
        print("  " + label)
