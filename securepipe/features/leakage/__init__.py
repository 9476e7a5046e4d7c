"""The leakage lab: how much of a voice do stored features and "anonymised" audio still carry?

The common claim is "you can't clone someone's voice from an MFCC matrix". This module measures
it instead, with the kit's baseline attacker (:mod:`securepipe.features.speakerid`) and three views
of the
same stored features (:mod:`securepipe.features.extract`):

* **raw audio** -- the recordings themselves (what step 4 deletes);
* **stored matrix** -- the attacker reads the stored blob and runs
  :func:`~securepipe.features.speakerid.embed_matrix` on it directly;
* **inverted audio** -- the attacker turns the matrix back into sound with Griffin-Lim
  (:func:`invert`) and runs :func:`~securepipe.features.speakerid.embed_audio` on that.

Each is scored by leave-one-out nearest-neighbour re-identification over the whole set, against
chance (1 / number of speakers), and inverted audio also by how much pitch survives
(:func:`compare_f0`).

The second half tests a defence: the McAdams-coefficient anonymiser (:func:`mcadams`, the
signal-processing baseline B2 of the VoicePrivacy Challenge). :func:`anonymisation_table` scores
it against an attacker who enrols on *raw* recordings of the speakers (obtained elsewhere) and
probes with anonymised ones, and against an informed attacker who links anonymised recordings to
each other. The VoicePrivacy Challenge measures privacy as the equal error rate (EER) of a
speaker-verification attacker and utility as the word error rate (WER) of a speech recogniser.
This lab has neither a verification back-end nor an ASR, so its proxies are simpler and stated:
nearest-neighbour identification accuracy for privacy, and for utility (a) sentence
identification by dynamic time warping against other speakers' readings of the same sentences
and (b) log-spectral distance to the original.

Everything is deterministic for a seed, computed in memory (nothing cached on disk), and sized
to run in seconds on a laptop: Griffin-Lim runs ``DEFAULT_GL_ITER`` iterations in the tables,
and every row says how many.
"""


from securepipe.features.leakage.anonymise import draw_coefficient, mcadams
from securepipe.features.leakage.attacks import enrolled_accuracy, sentence_accuracy
from securepipe.features.leakage.common import (
    DEFAULT_GL_ITER,
    F0_FMAX,
    F0_FMIN,
    MCADAMS_FIXED,
    MCADAMS_RANDOM_RANGE,
    VOICING_THRESHOLD,
)
from securepipe.features.leakage.inversion import invert, log_spectral_distance, reconstruction_pair
from securepipe.features.leakage.pitch import F0Comparison, compare_f0, f0_correlation, f0_track
from securepipe.features.leakage.tables import (
    anonymisation_table,
    leakage_table,
    plot_anonymisation,
    plot_leakage,
)

__all__ = [
    "DEFAULT_GL_ITER",
    "F0_FMAX",
    "F0_FMIN",
    "MCADAMS_FIXED",
    "MCADAMS_RANDOM_RANGE",
    "VOICING_THRESHOLD",
    "F0Comparison",
    "anonymisation_table",
    "compare_f0",
    "draw_coefficient",
    "enrolled_accuracy",
    "f0_correlation",
    "f0_track",
    "invert",
    "leakage_table",
    "log_spectral_distance",
    "mcadams",
    "plot_anonymisation",
    "plot_leakage",
    "reconstruction_pair",
    "sentence_accuracy",
]
