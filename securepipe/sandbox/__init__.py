"""The sandbox: a moto-mocked AWS account per use, the kit's emulation of the enforcement moto lacks
(labelled as such wherever it refuses), the register of moto's gaps, and a CloudTrail-shaped
recorder. Only this subpackage knows moto.
"""

from __future__ import annotations

from securepipe.sandbox.account import (
    ADMIN_USER,
    ARCHIVE_KMS_ALIAS,
    AUDIT_RETENTION_DAYS,
    BUCKET_ROLES,
    DEFAULT_REGION,
    KMS_ALIAS,
    SIGNING_KMS_ALIAS,
    Sandbox,
    SandboxResources,
    bucket_name,
    describe_account,
    start_sandbox,
)
from securepipe.sandbox.cloudtrail import (
    EVENT_VERSION,
    S3_DATA_EVENTS,
    SERVICES,
    CloudTrailRecorder,
    build_event,
    iter_get_object_events,
    principal_of,
    user_identity,
)
from securepipe.sandbox.emulation import (
    ACCOUNTS,
    BOOTSTRAP,
    EMULATION,
    REFUSALS,
    Enforcer,
    Refusal,
    credentials_for,
)
from securepipe.sandbox.gaps import (
    EMULATION_GUARANTEES,
    EMULATION_LIMITS,
    MOTO_GAPS,
    MotoGap,
    Response,
    gap,
    gaps_for_step,
)
from securepipe.sandbox.tls import (
    TlsFiles,
    generate_ca,
    issue_server_certificate,
    server_ssl_context,
    write_tls_material,
)

__all__ = [
    "ACCOUNTS",
    "ADMIN_USER",
    "ARCHIVE_KMS_ALIAS",
    "AUDIT_RETENTION_DAYS",
    "BOOTSTRAP",
    "BUCKET_ROLES",
    "DEFAULT_REGION",
    "EMULATION",
    "EMULATION_GUARANTEES",
    "EMULATION_LIMITS",
    "EVENT_VERSION",
    "KMS_ALIAS",
    "MOTO_GAPS",
    "REFUSALS",
    "S3_DATA_EVENTS",
    "SERVICES",
    "SIGNING_KMS_ALIAS",
    "CloudTrailRecorder",
    "Enforcer",
    "MotoGap",
    "Refusal",
    "Response",
    "Sandbox",
    "SandboxResources",
    "TlsFiles",
    "bucket_name",
    "build_event",
    "credentials_for",
    "describe_account",
    "gap",
    "gaps_for_step",
    "generate_ca",
    "issue_server_certificate",
    "iter_get_object_events",
    "principal_of",
    "server_ssl_context",
    "start_sandbox",
    "user_identity",
    "write_tls_material",
]
