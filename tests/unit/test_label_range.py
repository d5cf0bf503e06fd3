"""Labels the model can never predict are refused: otherwise top-1 is 0 for both models and --max-drop passes."""

from __future__ import annotations

import numpy as np
import pytest

from edgecompress.errors import CalibrationError
from edgecompress.validate.evaluate import refuse_labels_outside


@pytest.mark.parametrize("labels", [[0, 3, 10], [-1, 2, 3], [99] * 5])
def test_labels_outside_the_output_classes_are_refused_naming_the_file(labels):
    with pytest.raises(CalibrationError, match=r"test.npz: expected labels in 0\.\.9 .*Received: \d+ of \d+ labels"):
        refuse_labels_outside(np.array(labels), 10, "test.npz")


def test_labels_inside_the_output_classes_pass():
    refuse_labels_outside(np.array([0, 9, 4]), 10, "test.npz")
