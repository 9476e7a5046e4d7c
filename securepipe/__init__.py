"""securepipe: vetted building blocks for securing voice and biometric training data.

The notebooks in ``notebooks/`` narrate; this package does the work. Every function that talks
to AWS takes a boto3 Session or client, so the same code runs against the moto sandbox
(:mod:`securepipe.sandbox.account`) and against a real account.
"""

import os as _os
import warnings as _warnings
from pathlib import Path as _Path

# Run from a checkout: share the project's numba cache (warmed by `make`) with every notebook
# kernel, so no lesson pays librosa's first-use compile. Must happen before numba is imported.
_ROOT = _Path(__file__).resolve().parents[1]
if (_ROOT / "pyproject.toml").is_file():
    _os.environ.setdefault("NUMBA_CACHE_DIR", str(_ROOT / ".cache" / "numba"))
# librosa pulls in tqdm.auto, which warns in a kernel without ipywidgets; the kit needs no widgets.
_warnings.filterwarnings("ignore", message="IProgress not found")

from securepipe.errors import (  # noqa: E402
    ConsentError,
    ConsentRecordError,
    DatasetError,
    DecryptionError,
    EncryptionError,
    ErasureError,
    ErasureInProgressError,
    IngestError,
    InvalidAudioError,
    InvalidParameterError,
    JournalRollbackError,
    LogFileError,
    MalformedEventError,
    ProvisioningConflictError,
    RetentionError,
    SandboxError,
    SecurePipeError,
    SignatureError,
    UnknownSpeakerError,
)

__version__ = "0.1.0"

__all__ = [
    "ConsentError",
    "ConsentRecordError",
    "DatasetError",
    "DecryptionError",
    "EncryptionError",
    "ErasureError",
    "ErasureInProgressError",
    "IngestError",
    "InvalidAudioError",
    "InvalidParameterError",
    "JournalRollbackError",
    "LogFileError",
    "MalformedEventError",
    "ProvisioningConflictError",
    "RetentionError",
    "SandboxError",
    "SecurePipeError",
    "SignatureError",
    "UnknownSpeakerError",
    "__version__",
]
