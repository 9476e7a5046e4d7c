"""Step 5: consent records, lifecycle rules, the retention sweeper, per-speaker erasure with
receipts, and crypto-shredding of per-speaker keys.
"""

from __future__ import annotations

from securepipe.retention.consent import (
    BIPA_MAX_DAYS,
    DEFAULT_TABLE,
    STATUSES,
    ConsentRecord,
    ConsentRegistry,
    WrappedSpeakerKey,
    expires_at,
)
from securepipe.retention.erasure import DeletedVersion, ErasureReceipt, KeptVersion, erase_speaker
from securepipe.retention.lifecycle import (
    ABORT_MULTIPART_DAYS,
    ARCHIVAL_CLASSES,
    DATA_PREFIXES,
    IA_MIN_DAYS,
    LIFECYCLE_CONTROLS,
    META_SPEAKER,
    NONCURRENT_DAYS,
    RAW_EXPIRY_DAYS,
    SMALL_OBJECT_BYTES,
    apply_lifecycle,
    features_expiration_days,
    inspect_lifecycle,
    lifecycle_rules,
)
from securepipe.retention.shredding import (
    PROVIDER_ID,
    SPEAKER_CONTEXT_KEY,
    ShredEvidence,
    SpeakerEnvelope,
    SpeakerKeyConfig,
    SpeakerKeys,
    shred_speaker_key,
    speaker_key_context,
)
from securepipe.retention.sweeper import (
    Action,
    AttributedVersion,
    SweepEntry,
    SweepReport,
    attributed_versions,
    sample_speakers,
    short_bucket,
    sweep,
)

__all__ = [
    "ABORT_MULTIPART_DAYS",
    "ARCHIVAL_CLASSES",
    "BIPA_MAX_DAYS",
    "DATA_PREFIXES",
    "DEFAULT_TABLE",
    "IA_MIN_DAYS",
    "LIFECYCLE_CONTROLS",
    "META_SPEAKER",
    "NONCURRENT_DAYS",
    "PROVIDER_ID",
    "RAW_EXPIRY_DAYS",
    "SMALL_OBJECT_BYTES",
    "SPEAKER_CONTEXT_KEY",
    "STATUSES",
    "Action",
    "AttributedVersion",
    "ConsentRecord",
    "ConsentRegistry",
    "DeletedVersion",
    "ErasureReceipt",
    "KeptVersion",
    "ShredEvidence",
    "SpeakerEnvelope",
    "SpeakerKeyConfig",
    "SpeakerKeys",
    "SweepEntry",
    "SweepReport",
    "WrappedSpeakerKey",
    "apply_lifecycle",
    "attributed_versions",
    "erase_speaker",
    "expires_at",
    "features_expiration_days",
    "inspect_lifecycle",
    "lifecycle_rules",
    "sample_speakers",
    "short_bucket",
    "shred_speaker_key",
    "speaker_key_context",
    "sweep",
]
