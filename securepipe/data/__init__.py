"""The synthetic voices and their manifest: load, verify and regenerate ``data-synthetic/``."""

from __future__ import annotations

from securepipe.data.dataset import (
    DATA_ENV_VAR,
    MANIFEST_NAME,
    SCHEMA_VERSION,
    Consent,
    Manifest,
    Speaker,
    Utterance,
    default_data_dir,
    load_audio,
    load_manifest,
    manifest_from_dict,
    read_wav,
    sha256_file,
    verify,
)
from securepipe.data.voices import (
    DEFAULT_SEED,
    GENERATOR,
    SUPPORTED_SAMPLE_RATES,
    SpeakerProfile,
    generate_corpus,
    main,
    make_speakers,
    synthesize,
    wav_bytes,
    write_wav,
)

__all__ = [
    "DATA_ENV_VAR",
    "DEFAULT_SEED",
    "GENERATOR",
    "MANIFEST_NAME",
    "SCHEMA_VERSION",
    "SUPPORTED_SAMPLE_RATES",
    "Consent",
    "Manifest",
    "Speaker",
    "SpeakerProfile",
    "Utterance",
    "default_data_dir",
    "generate_corpus",
    "load_audio",
    "load_manifest",
    "main",
    "make_speakers",
    "manifest_from_dict",
    "read_wav",
    "sha256_file",
    "synthesize",
    "verify",
    "wav_bytes",
    "write_wav",
]
