"""A second, independent family of synthetic voices: additive harmonic synthesis.

The leakage lab asserts its claims on two voice families so that no claim is tuned to one
generator. :mod:`securepipe.data.voices` filters a Rosenberg glottal pulse train through a cascade
of time-varying formant resonators. This module shares no synthesis code with it: each utterance
is a sum of sinusoids, one per harmonic of a vibrato-modulated f0, whose amplitudes are a spectral
envelope *sampled at the harmonic frequencies* (a source slope in dB per octave times five
formant resonance curves placed by a vocal-tract length in cm), plus shaped noise for fricatives,
stop bursts and aspiration. The vowel set (ten Peterson & Barney-style vowels), the phonotactics,
the speaker parameters and their ranges are all its own. There is no time-domain filter.

Run ``python -m securepipe.data.heldout --out DIR`` to write the set (default:
``data-synthetic/heldout``): one 16-bit mono WAV per utterance plus ``manifest.json`` in the
same schema as the main set, so :func:`securepipe.data.dataset.load_manifest` reads it.
"""

# DETERMINISM: the same rule as securepipe/data/voices.py (tests/data/test_heldout.py regenerates
# the committed files byte for byte). Transcendentals come from Python's `math` on scalars (a sine
# table, per-block f0, per-harmonic slopes and phases); arrays see only + - * /, np.sqrt (IEEE
# correctly rounded), comparisons, np.where, np.floor, indexing and np.cumsum; harmonics are
# accumulated one by one in a fixed order, never with a reduction; randomness is PCG64 uniforms
# seeded with integer lists. Quantisation to int16 absorbs anything left.

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from securepipe.data.dataset import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    Manifest,
    default_data_dir,
    manifest_from_dict,
)
from securepipe.data.voices import (
    CONSENT_FIRST,
    CONSENT_LAST,
    CONSENT_PURPOSE,
    N_CONTRACTORS,
    write_wav,
)
from securepipe.errors import InvalidParameterError, SecurePipeError
from securepipe.ids import check_int

__all__ = [
    "HELDOUT_GENERATOR",
    "HELDOUT_SEED",
    "HeldoutSpeaker",
    "generate_heldout",
    "heldout_dir",
    "make_heldout_speakers",
    "synthesize_heldout",
]

HELDOUT_GENERATOR = "securepipe.heldout"
HELDOUT_SEED = 7_000_019
SAMPLE_RATE = 16000
DURATIONS_S: tuple[float, ...] = (1.7, 1.8, 1.9, 2.0)
_PEAK = 0.7079457843841379 * 32767.0  # -3 dBFS
_BLOCK = 80  # samples per control block (5 ms at 16 kHz)
_TABLE = 4096  # sine table size; linear interpolation error < 3e-7
_SPEED_OF_SOUND_CM = 35000.0
_TOP_HZ = 7600.0  # highest harmonic synthesised
_TAG_SPEAKERS, _TAG_TEXT, _TAG_UTT, _TAG_CONSENT = 11, 12, 13, 14

# Formant frequencies F1-F5 (Hz) for a 17.5 cm tract, after Peterson & Barney (1952), male means.
_VOWELS: dict[str, tuple[float, float, float, float, float]] = {
    "iy": (270.0, 2290.0, 3010.0, 3700.0, 4500.0),
    "ih": (390.0, 1990.0, 2550.0, 3600.0, 4400.0),
    "eh": (530.0, 1840.0, 2480.0, 3550.0, 4450.0),
    "ae": (660.0, 1720.0, 2410.0, 3500.0, 4500.0),
    "aa": (730.0, 1090.0, 2440.0, 3400.0, 4350.0),
    "ao": (570.0, 840.0, 2410.0, 3350.0, 4300.0),
    "uh": (440.0, 1020.0, 2240.0, 3350.0, 4400.0),
    "uw": (300.0, 870.0, 2240.0, 3300.0, 4300.0),
    "ah": (640.0, 1190.0, 2390.0, 3450.0, 4400.0),
    "er": (490.0, 1350.0, 1690.0, 3300.0, 4350.0),
}
_BANDWIDTHS = (60.0, 90.0, 130.0, 180.0, 250.0)
# Consonants: (kind, duration s, noise level, high-pass passes). Stops are a gap then a burst.
_CONSONANTS: dict[str, tuple[str, float, float, int]] = {
    "s": ("fricative", 0.11, 0.10, 2),
    "z": ("fricative", 0.09, 0.06, 2),
    "f": ("fricative", 0.10, 0.04, 1),
    "h": ("fricative", 0.08, 0.05, 0),
    "t": ("stop", 0.08, 0.25, 2),
    "k": ("stop", 0.09, 0.25, 1),
    "p": ("stop", 0.08, 0.20, 0),
}


@dataclass(frozen=True)
class HeldoutSpeaker:
    """One held-out voice: a tract length and shape, a source slope, vibrato and aspiration."""

    speaker: str
    f0_hz: float
    tract_cm: float  # vocal-tract length: formants scale by 17.5 / tract_cm
    formant_offsets: tuple[float, float, float, float, float]  # per-formant factors
    slope_db_oct: float  # source spectral slope (harmonic k gets slope * log2(k) dB)
    bandwidth_scale: float
    vibrato_hz: float
    vibrato_cents: float
    aspiration: float  # noise level relative to the harmonic part
    tempo: float  # > 1 is faster

    def voice(self) -> dict[str, object]:
        """The voice parameters as recorded in the manifest."""
        params = asdict(self)
        del params["speaker"]
        params["formant_offsets"] = list(self.formant_offsets)
        return params


def heldout_dir() -> Path:
    """Where the held-out family lives: ``heldout/`` inside the main data folder."""
    return default_data_dir() / "heldout"


def _rng(*parts: int) -> np.random.Generator:
    return np.random.default_rng(list(parts))


def make_heldout_speakers(n: int, seed: int = HELDOUT_SEED) -> list[HeldoutSpeaker]:
    """``n`` voices, alternating lower and higher; each parameter stratified over its range."""
    n = check_int(n, "n_speakers", 2, 99)
    seed = check_int(seed, "seed", 0, 2**63 - 1)
    rng = _rng(seed, _TAG_SPEAKERS)
    low = [i for i in range(n) if i % 2 == 0]
    high = [i for i in range(n) if i % 2 == 1]

    def strata(members: list[int], lo: float, hi: float) -> dict[int, float]:
        order = rng.permutation(len(members))
        jitter = rng.random(len(members))
        return {
            m: lo + (hi - lo) * (int(order[j]) + 0.2 + 0.6 * float(jitter[j])) / len(members)
            for j, m in enumerate(members)
        }

    f0 = strata(low, 85.0, 140.0) | strata(high, 165.0, 260.0)
    tract = strata(low, 16.2, 18.8) | strata(high, 13.6, 16.0)
    everyone = list(range(n))
    shared = {
        name: strata(everyone, lo, hi)
        for name, (lo, hi) in {
            "slope": (-15.0, -8.0),
            "bw": (0.7, 1.6),
            "vib_hz": (4.0, 6.5),
            "vib_cents": (8.0, 40.0),
            "asp": (0.01, 0.12),
            "tempo": (0.88, 1.12),
        }.items()
    }
    offsets = [strata(everyone, 0.92, 1.08) for _ in range(5)]
    return [
        HeldoutSpeaker(
            speaker=f"hv{i + 1:02d}",
            f0_hz=round(f0[i], 2),
            tract_cm=round(tract[i], 3),
            formant_offsets=(
                round(offsets[0][i], 4),
                round(offsets[1][i], 4),
                round(offsets[2][i], 4),
                round(offsets[3][i], 4),
                round(offsets[4][i], 4),
            ),
            slope_db_oct=round(shared["slope"][i], 3),
            bandwidth_scale=round(shared["bw"][i], 3),
            vibrato_hz=round(shared["vib_hz"][i], 3),
            vibrato_cents=round(shared["vib_cents"][i], 2),
            aspiration=round(shared["asp"][i], 4),
            tempo=round(shared["tempo"][i], 4),
        )
        for i in range(n)
    ]


def _text(seed: int, sentence: int, min_s: float) -> list[tuple[str, float]]:
    """The phone string of sentence ``sentence``: (symbol, nominal seconds); "" is a pause."""
    rng = _rng(seed, _TAG_TEXT, sentence)
    vowels, consonants = sorted(_VOWELS), sorted(_CONSONANTS)
    phones: list[tuple[str, float]] = []
    total = 0.0
    while total < min_s:
        if rng.random() < 0.8:
            c = consonants[int(rng.integers(0, len(consonants)))]
            phones.append((c, _CONSONANTS[c][1]))
        v = vowels[int(rng.integers(0, len(vowels)))]
        phones.append((v, 0.09 + 0.09 * float(rng.random())))
        if rng.random() < 0.15:
            phones.append(("", 0.06))
        total = sum(d for _, d in phones)
    return phones


def _sine_table() -> np.ndarray:
    return np.asarray([math.sin(2.0 * math.pi * i / _TABLE) for i in range(_TABLE + 1)])


def _sine(table: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """sin(2 pi cycles) by table lookup and linear interpolation (elementwise arithmetic only)."""
    frac = cycles - np.floor(cycles)
    pos = frac * _TABLE
    i = np.minimum(np.floor(pos).astype(np.int64), _TABLE - 1)
    w = pos - i
    return table[i] + w * (table[i + 1] - table[i])


def _noise(rng: np.random.Generator, n: int, highpass: int) -> np.ndarray:
    u = rng.random((4, n))
    x = (u[0] + u[1] + u[2] + u[3] - 2.0) * 1.7
    for _ in range(highpass):
        x = np.concatenate(([x[0]], x[1:] - x[:-1])) * 0.5
    return x


def synthesize_heldout(
    speaker: HeldoutSpeaker,
    sentence: int,
    *,
    seed: int = HELDOUT_SEED,
    duration_s: float = 2.0,
) -> np.ndarray:
    """Speak sentence ``sentence`` in ``speaker``'s voice: int16 mono at 16 kHz, peak -3 dBFS."""
    if not isinstance(speaker, HeldoutSpeaker):
        raise InvalidParameterError(f"speaker must be a HeldoutSpeaker, got {type(speaker)!r}")
    sentence = check_int(sentence, "sentence", 0, 10_000)
    seed = check_int(seed, "seed", 0, 2**63 - 1)
    if isinstance(duration_s, bool) or not isinstance(duration_s, int | float):
        raise InvalidParameterError(f"duration_s must be a number, got {duration_s!r}")
    if not 0.2 <= float(duration_s) <= 10.0:
        raise InvalidParameterError(f"duration_s must be in [0.2, 10] s, got {duration_s!r}")
    sr = SAMPLE_RATE
    n_blocks = round(float(duration_s) * sr) // _BLOCK
    n = n_blocks * _BLOCK
    rng = _rng(seed, _TAG_UTT, int.from_bytes(speaker.speaker.encode(), "big"), sentence)

    # Lay the phones out from 0.1 s at the speaker's tempo; whatever does not fit is not said.
    lead, end = 0.1, float(duration_s) - 0.12
    segments: list[tuple[str, float, float]] = []
    t = lead
    for symbol, nominal in _text(seed, sentence, 2.0 * float(duration_s)):
        d = nominal / speaker.tempo
        if t + d > end:
            break
        segments.append((symbol, t, t + d))
        t += d
    speech_end = t

    # Per-block control values, in Python: f0 (declination + vibrato), voicing, formants.
    scale = 17.5 / speaker.tract_cm
    vowel_knots = [
        ((s + e) / 2.0, _VOWELS[sym]) for sym, s, e in segments if sym in _VOWELS
    ] or [(float(duration_s) / 2.0, _VOWELS["ah"])]
    vib_phase = float(rng.random())
    f0_blocks, voicing, formants = [], [], []
    for b in range(n_blocks):
        tb = (b + 0.5) * _BLOCK / sr
        x = min(max((tb - lead) / max(speech_end - lead, 1e-3), 0.0), 1.0)
        vibrato = math.sin(2.0 * math.pi * (speaker.vibrato_hz * tb + vib_phase))
        cents = speaker.vibrato_cents * vibrato
        f0_blocks.append(speaker.f0_hz * (1.12 - 0.22 * x) * 2.0 ** (cents / 1200.0))
        v = 0.0
        for sym, s, e in segments:
            if sym in _VOWELS and s - 0.015 <= tb <= e + 0.015:
                v = min(1.0, (tb - s + 0.015) / 0.03, (e + 0.015 - tb) / 0.03)
        voicing.append(max(v, 0.0))
        # Formants glide linearly between vowel centres, held before the first and after the last.
        k = 0
        while k + 1 < len(vowel_knots) and vowel_knots[k + 1][0] <= tb:
            k += 1
        t0, fa = vowel_knots[k]
        if k + 1 < len(vowel_knots) and tb > t0:
            t1, fb = vowel_knots[k + 1]
            w = (tb - t0) / (t1 - t0)
            target = [a + w * (c - a) for a, c in zip(fa, fb, strict=True)]
        else:
            target = list(fa)
        formants.append(
            [target[j] * scale * speaker.formant_offsets[j] for j in range(5)]
        )

    # Per-sample instantaneous phase (cycles): f0 held per block, sequential cumulative sum.
    f0_arr = np.asarray(f0_blocks)
    inc = np.repeat(f0_arr / sr, _BLOCK)
    phase = np.cumsum(inc)
    within = (np.arange(n) % _BLOCK) / _BLOCK  # for linear interpolation of block amplitudes
    nxt = np.minimum(np.arange(n_blocks) + 1, n_blocks - 1)

    def per_sample(values: np.ndarray) -> np.ndarray:
        a = np.repeat(values, _BLOCK)
        b = np.repeat(values[nxt], _BLOCK)
        return a + within * (b - a)

    form = np.asarray(formants)  # (n_blocks, 5)
    bws = np.asarray([bw * speaker.bandwidth_scale for bw in _BANDWIDTHS])
    table = _sine_table()
    harmonic = np.zeros(n)
    k_max = int(_TOP_HZ // (min(f0_blocks) if f0_blocks else speaker.f0_hz))
    offsets = rng.random(k_max + 1)
    for k in range(1, k_max + 1):
        freq = f0_arr * k  # per block
        gain = np.where(freq < _TOP_HZ, 10.0 ** (speaker.slope_db_oct * math.log2(k) / 20.0), 0.0)
        for j in range(5):
            fj2 = form[:, j] * form[:, j]
            d = fj2 - freq * freq
            gain = gain * fj2 / np.sqrt(d * d + (bws[j] * freq) * (bws[j] * freq))
        harmonic = harmonic + per_sample(gain) * _sine(table, phase * k + float(offsets[k]))
    voiced = per_sample(np.asarray(voicing))
    ref = float(np.max(np.abs(harmonic * voiced))) or 1.0
    out = harmonic * voiced + ref * speaker.aspiration * voiced * _noise(rng, n, 1)

    # Consonants: shaped noise over the fricative, a burst after each stop's closure.
    times = (np.arange(n) + 0.5) / sr
    for sym, s, e in segments:
        if sym not in _CONSONANTS:
            continue
        kind, _, level, highpass = _CONSONANTS[sym]
        lo, hi = (s, e) if kind == "fricative" else (s + 0.7 * (e - s), s + 0.7 * (e - s) + 0.015)
        ramp = min(0.02, (hi - lo) / 3.0)
        env = np.clip(np.minimum((times - lo) / ramp, (hi - times) / ramp), 0.0, 1.0)
        i0, i1 = max(0, int(lo * sr) - 1), min(n, int(hi * sr) + 2)
        if i0 >= i1:
            continue
        out[i0:i1] = out[i0:i1] + ref * level * env[i0:i1] * _noise(rng, i1 - i0, highpass)
    fade = 160
    ramp_in = (np.arange(fade) + 0.5) / fade
    out[:fade] = out[:fade] * ramp_in
    out[n - fade :] = out[n - fade :] * ramp_in[::-1]
    peak = float(np.max(np.abs(out)))
    if peak == 0.0:
        return np.zeros(n, dtype=np.int16)
    return np.clip(np.round(out * (_PEAK / peak)), -32768, 32767).astype(np.int16)


def _consent(rng: np.random.Generator) -> dict[str, object]:
    span = (CONSENT_LAST - CONSENT_FIRST).days
    date = CONSENT_FIRST + dt.timedelta(days=int(rng.integers(0, span + 1)))
    return {
        "purpose": CONSENT_PURPOSE,
        "consent_date": date.isoformat(),
        "term_days": 730,
        "retention_until": (date + dt.timedelta(days=730)).isoformat(),
        "withdrawn": None,
    }


def generate_heldout(
    out_dir: str | os.PathLike[str],
    *,
    n_speakers: int = 10,
    n_utterances: int = 4,
    seed: int = HELDOUT_SEED,
) -> Manifest:
    """Write ``<out_dir>/<speaker>/<speaker>_u<k>.wav`` and ``manifest.json``; same bytes every run.

    Utterance ``k`` of every speaker reads sentence ``k - 1``. No utterance is on legal hold or
    flagged for archiving: this family exists to test claims, not to be ingested.
    """
    n_speakers = check_int(n_speakers, "n_speakers", 2, 99)
    n_utterances = check_int(n_utterances, "n_utterances", 1, 50)
    seed = check_int(seed, "seed", 0, 2**63 - 1)
    root = Path(out_dir)
    consent_rng = _rng(seed, _TAG_CONSENT)
    speaker_rows, utterance_rows = [], []
    for i, spk in enumerate(make_heldout_speakers(n_speakers, seed)):
        contractor = f"c{i % N_CONTRACTORS + 1:02d}"
        speaker_rows.append(
            {
                "speaker": spk.speaker,
                "contractor": contractor,
                "voice": spk.voice(),
                "consent": _consent(consent_rng),
            }
        )
        (root / spk.speaker).mkdir(parents=True, exist_ok=True)
        for k in range(1, n_utterances + 1):
            duration = DURATIONS_S[(k - 1) % len(DURATIONS_S)]
            samples = synthesize_heldout(spk, k - 1, seed=seed, duration_s=duration)
            sample_id = f"{spk.speaker}_u{k}"
            rel = f"{spk.speaker}/{sample_id}.wav"
            digest = write_wav(root / rel, samples, SAMPLE_RATE)
            utterance_rows.append(
                {
                    "sample_id": sample_id,
                    "speaker": spk.speaker,
                    "contractor": contractor,
                    "path": rel,
                    "sentence_index": k - 1,
                    "duration_s": round(len(samples) / SAMPLE_RATE, 4),
                    "sample_rate": SAMPLE_RATE,
                    "sha256": digest,
                    "legal_hold": False,
                    "archive_required": False,
                }
            )
    data = {
        "schema_version": SCHEMA_VERSION,
        "seed": seed,
        "sample_rate": SAMPLE_RATE,
        "generator": HELDOUT_GENERATOR,
        "speakers": speaker_rows,
        "utterances": utterance_rows,
    }
    (root / MANIFEST_NAME).write_bytes(
        (json.dumps(data, sort_keys=True, indent=2) + "\n").encode("utf-8")
    )
    return manifest_from_dict(data, root)


def main(argv: list[str] | None = None) -> int:
    """``python -m securepipe.data.heldout [--out DIR]``: write the held-out family."""
    parser = argparse.ArgumentParser(description="Write the held-out synthetic voice family.")
    parser.add_argument("--out", type=Path, default=None, help="default: data-synthetic/heldout")
    args = parser.parse_args(argv)
    out = args.out if args.out is not None else heldout_dir()
    try:
        manifest = generate_heldout(out)
    except SecurePipeError as exc:
        print(f"heldout: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(manifest.utterances)} utterances of {len(manifest.speakers)} to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
