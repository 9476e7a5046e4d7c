"""Shared constants and argument checks for the leakage lab.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from securepipe.errors import InvalidParameterError
from securepipe.features.extract import (
    MEL_SPEC,
    MFCC13_SPEC,
    MFCC40_SPEC,
    FeatureSpec,
)
from securepipe.ids import check_int

DEFAULT_GL_ITER = 8  # Griffin-Lim iterations in the tables (invert() defaults to 32)


F0_FMIN = 60.0  # pitch search range, Hz (the synthetic voices sit at 97-240 Hz)


F0_FMAX = 400.0


F0_FRAME = 1024  # YIN frame: 64 ms at 16 kHz, > 2 periods of F0_FMIN


VOICING_THRESHOLD = 0.45  # normalised autocorrelation at the YIN period (Praat's default)


SILENCE_DB = -30.0  # frames this far below the loudest frame are not voiced


GROSS_ERROR = 0.2  # an f0 more than 20 % off is a gross pitch error


MCADAMS_FIXED = 0.8  # VoicePrivacy 2020 baseline B2 uses a fixed coefficient of 0.8


MCADAMS_RANDOM_RANGE = (0.7, 0.9)  # same mean as the fixed coefficient: only randomness differs


# Pitch and formant shifting: a random pseudo-voice per speaker, each magnitude uniform in its
# range and each direction a coin toss (e.g. -3.7 semitones and formants x 1.12).
PITCH_SHIFT_SEMITONES = (2.0, 5.0)
FORMANT_SHIFT_RANGE = (0.08, 0.18)


CONTENT_HOP = 320  # 20 ms frames for the sentence-identification utility proxy


LSD_SPEECH_DB = -40.0  # log-spectral distance is averaged over frames within 40 dB of the max


DEFAULT_SPECS: tuple[FeatureSpec, ...] = (MEL_SPEC, MFCC13_SPEC, MFCC40_SPEC)


def check_signal(y: Any, name: str = "y", min_len: int = 512) -> np.ndarray:
    x = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.size < min_len:
        raise InvalidParameterError(f"{name} must be a 1-D signal of at least {min_len} samples")
    if not np.all(np.isfinite(x)):
        raise InvalidParameterError(f"{name} contains NaN or infinite values")
    return x


def check_sr(sr: Any) -> int:
    return check_int(sr, "sr", 1000, 192000)


def check_coefficient(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(f"McAdams coefficient must be a number, got {value!r}")
    alpha = float(value)
    if not 0.5 <= alpha <= 1.5:
        raise InvalidParameterError(f"McAdams coefficient must be in [0.5, 1.5], got {value!r}")
    return alpha


def check_range(value: Any) -> tuple[float, float]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise InvalidParameterError(f"coefficient range must be (low, high), got {value!r}")
    low, high = check_coefficient(value[0]), check_coefficient(value[1])
    if not low < high:
        raise InvalidParameterError(f"coefficient range needs low < high, got {value!r}")
    return low, high
