"""Step 2: least-privilege, short-lived credentials for one contractor, short presigned links, and
the access review of who can read what.
"""

from __future__ import annotations

from securepipe.access.credentials import (
    ACTIONS,
    CONTEXT_CONTRACTOR_KEY,
    DEFAULT_DURATION_S,
    DEFAULT_ROLE_NAME,
    MAX_PRESIGN_S,
    MAX_SESSION_POLICY_CHARS,
    MIN_DURATION_S,
    RAW_PREFIX,
    ContractorCredentials,
    contractor_prefix,
    contractor_role_policy,
    contractor_session,
    contractor_session_policy,
    contractor_trust_statement,
    ensure_contractor_role,
    serialise_session_policy,
    vend_contractor_credentials,
)
from securepipe.access.guards import (
    GUARD_POLICY_NAME,
    GUARDED_KMS_ACTIONS,
    GUARDED_S3_ACTIONS,
    admin_guard_policy,
    apply_admin_guard,
)
from securepipe.access.presigned import (
    PRESIGN_CAP_SID,
    apply_presign_age_cap,
    presign_age_cap_statement,
    presign_get,
)
from securepipe.access.review import (
    AccessMatrix,
    BroadGrant,
    Principal,
    access_matrix,
    broad_grants,
    key_users,
    role_principal,
    session_principal,
    user_principal,
)

__all__ = [
    "ACTIONS",
    "CONTEXT_CONTRACTOR_KEY",
    "DEFAULT_DURATION_S",
    "DEFAULT_ROLE_NAME",
    "GUARDED_KMS_ACTIONS",
    "GUARDED_S3_ACTIONS",
    "GUARD_POLICY_NAME",
    "MAX_PRESIGN_S",
    "MAX_SESSION_POLICY_CHARS",
    "MIN_DURATION_S",
    "PRESIGN_CAP_SID",
    "RAW_PREFIX",
    "AccessMatrix",
    "BroadGrant",
    "ContractorCredentials",
    "Principal",
    "access_matrix",
    "admin_guard_policy",
    "apply_admin_guard",
    "apply_presign_age_cap",
    "broad_grants",
    "contractor_prefix",
    "contractor_role_policy",
    "contractor_session",
    "contractor_session_policy",
    "contractor_trust_statement",
    "ensure_contractor_role",
    "key_users",
    "presign_age_cap_statement",
    "presign_get",
    "role_principal",
    "serialise_session_policy",
    "session_principal",
    "user_principal",
    "vend_contractor_credentials",
]
