"""Provisioning a real account the kit's way, two ways from one description.

:class:`AccountLayout` names everything (buckets, keys and aliases, the contractor role, the
kit's own roles, the consent table, the trail, topic and queue); :func:`provision` creates or
completes it through the API (idempotent, with a dry-run :class:`Plan`, refusing on
conflicts); :func:`render_cloudformation` renders the same layout as a CloudFormation
template. :meth:`AccountLayout.discover` reads the layout back from an account provisioned
either way. :mod:`securepipe.provision.policies`
generates the least-privilege IAM policy of each of the kit's own roles.
"""

from __future__ import annotations

from securepipe.provision.account import (
    CONTRACTOR_MAX_SESSION_S,
    STEPS,
    Change,
    Plan,
    ensure_kit_role,
    provision,
)
from securepipe.provision.cloudformation import render_cloudformation
from securepipe.provision.layout import BUCKET_ROLES, LOCKED_ROLES, AccountLayout, bucket_name
from securepipe.provision.policies import (
    KIT_ROLES,
    KitRole,
    kit_role_policy,
    kit_role_tags,
    kit_trust_statement,
)

__all__ = [
    "BUCKET_ROLES",
    "CONTRACTOR_MAX_SESSION_S",
    "KIT_ROLES",
    "LOCKED_ROLES",
    "STEPS",
    "AccountLayout",
    "Change",
    "KitRole",
    "Plan",
    "bucket_name",
    "ensure_kit_role",
    "kit_role_policy",
    "kit_role_tags",
    "kit_trust_statement",
    "provision",
    "render_cloudformation",
]
