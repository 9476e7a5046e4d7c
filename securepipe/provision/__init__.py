"""Provisioning a real account the kit's way, two ways from one description.

:class:`AccountLayout` names everything (buckets, keys and aliases, the contractor role, the
consent table, the trail, topic and queue); :func:`provision` creates or completes it through the
API (idempotent, with a dry-run :class:`Plan`, refusing on conflicts); :func:`render_cloudformation`
renders the same layout as a CloudFormation template. :meth:`AccountLayout.discover` reads the
layout back from an account provisioned either way. :mod:`securepipe.provision.policies`
generates the least-privilege IAM policy of each of the kit's own roles.
"""

from __future__ import annotations

from securepipe.provision.account import (
    CONTRACTOR_MAX_SESSION_S,
    STEPS,
    Change,
    Plan,
    provision,
)
from securepipe.provision.cloudformation import render_cloudformation
from securepipe.provision.layout import BUCKET_ROLES, LOCKED_ROLES, AccountLayout, bucket_name

__all__ = [
    "BUCKET_ROLES",
    "CONTRACTOR_MAX_SESSION_S",
    "LOCKED_ROLES",
    "STEPS",
    "AccountLayout",
    "Change",
    "Plan",
    "bucket_name",
    "provision",
    "render_cloudformation",
]
