"""Notebook helpers: the common-pattern anti-patterns (what NOT to copy; each lesson attacks them),
refusal demos, tables, figures and measurements. Nothing here is a control.
"""

from __future__ import annotations

from securepipe.lessons.antipatterns import (
    ARTICLE_LIFECYCLE_RULE,
    SHARED_KEY_ENV_VAR,
    LongLivedKey,
    fernet_decrypt_sample,
    fernet_encrypt_sample,
    fstring_session_policy,
    generate_shared_key,
    long_lived_reader,
    shared_key_from_env,
)
from securepipe.lessons.demo import (
    EMULATION_MARK,
    REFUSAL_CODES,
    REFUSAL_ERRORS,
    expect_refusal,
    expect_success,
)
from securepipe.lessons.measure import (
    MiB,
    T,
    compare_encryption,
    peak_python_memory,
    write_random_file,
)
from securepipe.lessons.viz import (
    OKABE_ITO_BLUE,
    OKABE_ITO_VERMILLION,
    PIPELINE_STAGES,
    plot_access_matrix,
    plot_encryption_costs,
    plot_pipeline_map,
    plot_request_rates,
    plot_voices,
)

__all__ = [
    "ARTICLE_LIFECYCLE_RULE",
    "EMULATION_MARK",
    "OKABE_ITO_BLUE",
    "OKABE_ITO_VERMILLION",
    "PIPELINE_STAGES",
    "REFUSAL_CODES",
    "REFUSAL_ERRORS",
    "SHARED_KEY_ENV_VAR",
    "LongLivedKey",
    "MiB",
    "T",
    "compare_encryption",
    "expect_refusal",
    "expect_success",
    "fernet_decrypt_sample",
    "fernet_encrypt_sample",
    "fstring_session_policy",
    "generate_shared_key",
    "long_lived_reader",
    "peak_python_memory",
    "plot_access_matrix",
    "plot_encryption_costs",
    "plot_pipeline_map",
    "plot_request_rates",
    "plot_voices",
    "shared_key_from_env",
    "write_random_file",
]
