"""The leakage lab: how much of a voice do stored features and "anonymised" audio still carry?

The common claim is "you can't clone someone's voice from an MFCC matrix". This module measures
it instead, with two attackers: the kit's baseline (:mod:`securepipe.features.speakerid`, nearest
neighbour on utterance statistics) and a GMM-UBM speaker-verification system with MAP adaptation
(:mod:`~securepipe.features.leakage.gmm`, after Reynolds, Quatieri & Dunn 2000), the classic
baseline of the speaker-verification literature. Three views of the same stored features
(:mod:`securepipe.features.extract`):

* **raw audio** -- the recordings themselves (what step 4 deletes);
* **stored matrix** -- the attacker reads the stored blob and works on the matrix directly;
* **inverted audio** -- the attacker turns the matrix back into sound with Griffin-Lim
  (:func:`invert`).

Every attack enrols each speaker on some sentences and is tested on another, and reports top-1
identification against chance and the equal error rate (EER) of verification trials, the
VoicePrivacy Challenge's primary privacy metric. Inverted audio is also scored by how much pitch
survives (:func:`compare_f0`).

The second half tests defences that need no trained model: the McAdams coefficient
(:func:`mcadams`, VoicePrivacy baseline B2; fixed, or drawn per utterance) and LPC pitch and
formant shifting with a random pseudo-voice per speaker (:func:`pitch_formant_shift`). Each is
attacked in the Challenge's *ignorant* (enrol raw) and *lazy-informed* (enrol anonymised with
the same method) conditions; utility is measured beside privacy by sentence identification
(DTW) and log-spectral distance, since the kit ships no ASR.

Every claim is measured on two independent voice families (:mod:`securepipe.data.voices` and
:mod:`securepipe.data.heldout`). Everything is deterministic for its seeds, which every row
records; the tables can be cached on disk by content hash (:mod:`.cache`).
"""


from securepipe.features.leakage.anonymise import (
    draw_coefficient,
    draw_voice_shift,
    mcadams,
    pitch_formant_shift,
)
from securepipe.features.leakage.attacks import enrolled_accuracy, sentence_accuracy
from securepipe.features.leakage.cache import DEFAULT_CACHE, cache_key, cached_rows
from securepipe.features.leakage.common import (
    DEFAULT_GL_ITER,
    F0_FMAX,
    F0_FMIN,
    FORMANT_SHIFT_RANGE,
    MCADAMS_FIXED,
    MCADAMS_RANDOM_RANGE,
    PITCH_SHIFT_SEMITONES,
    VOICING_THRESHOLD,
)
from securepipe.features.leakage.gmm import (
    MAP_RELEVANCE,
    MIN_ENROL_UTTERANCES,
    UBM_COMPONENTS,
    AttackResult,
    Ubm,
    audio_frames,
    cross_validated,
    equal_error_rate,
    gmm_ubm_scores,
    llr_score,
    map_adapt,
    matrix_frames,
    nearest_neighbour_scores,
    top1_accuracy,
    train_ubm,
)
from securepipe.features.leakage.inversion import invert, log_spectral_distance, reconstruction_pair
from securepipe.features.leakage.pitch import (
    F0Comparison,
    compare_f0,
    f0_correlation,
    f0_track,
    median_f0_correlation,
)
from securepipe.features.leakage.tables import (
    ANONYMISERS,
    anonymisation_table,
    leakage_table,
    plot_anonymisation,
    plot_leakage,
)

__all__ = [
    "ANONYMISERS",
    "DEFAULT_CACHE",
    "DEFAULT_GL_ITER",
    "F0_FMAX",
    "F0_FMIN",
    "FORMANT_SHIFT_RANGE",
    "MAP_RELEVANCE",
    "MCADAMS_FIXED",
    "MCADAMS_RANDOM_RANGE",
    "MIN_ENROL_UTTERANCES",
    "PITCH_SHIFT_SEMITONES",
    "UBM_COMPONENTS",
    "VOICING_THRESHOLD",
    "AttackResult",
    "F0Comparison",
    "Ubm",
    "anonymisation_table",
    "audio_frames",
    "cache_key",
    "cached_rows",
    "compare_f0",
    "cross_validated",
    "draw_coefficient",
    "draw_voice_shift",
    "enrolled_accuracy",
    "equal_error_rate",
    "f0_correlation",
    "f0_track",
    "gmm_ubm_scores",
    "invert",
    "leakage_table",
    "llr_score",
    "log_spectral_distance",
    "map_adapt",
    "matrix_frames",
    "mcadams",
    "median_f0_correlation",
    "nearest_neighbour_scores",
    "pitch_formant_shift",
    "plot_anonymisation",
    "plot_leakage",
    "reconstruction_pair",
    "sentence_accuracy",
    "top1_accuracy",
    "train_ubm",
]
