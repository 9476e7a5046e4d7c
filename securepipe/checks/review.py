"""The access review (step 6): who can reach which contractor's recordings, and who never uses it.

:func:`access_review` reads every role and user in the account (their inline, attached and
group policies, through the IAM API), adds one *session* per contractor for each contractor
role, narrowed by the kit's own session policy
(:func:`securepipe.access.credentials.contractor_session_policy`, what
:func:`~securepipe.access.credentials.vend_contractor_credentials` passes), and evaluates
Get/Put/List/Delete
on every contractor prefix of the raw bucket with
:func:`securepipe.access.credentials.access_matrix`.

* **Broad**: :func:`securepipe.access.credentials.broad_grants`, any principal allowed an action on
  more than one contractor's prefix. One kind of principal is broad by design and *exempt*
  (listed with the reason, never hidden): the kit's own contractor role on its own
  (:func:`~securepipe.access.credentials.ensure_contractor_role`: its default name or its
  ``securepipe=contractor-access`` tag), whose every vended session is narrowed; the session
  rows show that it works. Any other contractor role is reviewed as it is: how its sessions
  are narrowed (an f-string policy? none?) cannot be seen from the account. The identity
  running the review is reviewed like any other (labelled ``runs this review``), not exempt.
  The kit's own roles (uploader, ingest, trainer, auditor, eraser, made by
  :func:`securepipe.provision.ensure_kit_role`) are exempt too, each with its reason, but only
  while each holds exactly its generated policy (:func:`kit_role`): one extra statement and
  the role is reviewed as it is.
* **Unused**: a role with any access to the raw bucket's contractor prefixes whose
  ``RoleLastUsed`` (IAM GetRole) is empty or older than :attr:`CheckConfig.unused_after`. A
  role never used but *created* within that window (``CreateDate``) is reported as new, not
  yet used, and passes: it has not had the chance to be used (a freshly provisioned account's
  roles); it is flagged once it stays unused past the window. IAM
  tracks last use for 400 days; where GetRole returns no ``RoleLastUsed`` at all the role is
  ``unverifiable``. moto records it when the role's credentials are used.

Contractor prefixes are the ``raw/<id>/`` and ``features/<id>/`` prefixes found in the buckets;
if fewer than two exist (a fresh account), two probe prefixes stand in, so "reaches more than
one contractor" can still be answered. What is not modelled: permissions boundaries, SCPs,
resource-based grants in the bucket policy, sessions vended with other session policies.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import boto3

from securepipe.access.credentials import DEFAULT_ROLE_NAME, contractor_session_policy
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
from securepipe.checks._base import (
    BUCKET_ROLES,
    Check,
    CheckConfig,
    CheckContext,
    ResourceResult,
)
from securepipe.checks.identity import all_roles, all_users, contractor_roles
from securepipe.errors import InvalidParameterError, SecurePipeError
from securepipe.ids import CONTRACTOR_ID
from securepipe.provision import KIT_ROLES, AccountLayout, kit_role_policy
from securepipe.provision.policies import KIT_ROLE_POLICY_NAME, KIT_ROLE_TAG

_PROBES = ("review-probe-a", "review-probe-b")
#: Why each of the kit's own roles may reach every contractor's prefix (exempt from "broad"
#: only while it holds exactly its generated policy, see :func:`kit_role`).
_KIT_EXEMPTION = {
    "uploader": "the kit's uploader role with exactly its generated policy: PutObject under "
                "raw/ only (no read, list or delete); sessions narrow it to one contractor",
    "ingest": "the kit's ingest worker with exactly its generated policy: it reads, "
              "quarantines and retires every upload by design",
    "trainer": "the kit's trainer role with exactly its generated policy: features only",
    "auditor": "the kit's auditor role with exactly its generated policy: read-only, and what "
               "it can fetch from raw/ is ciphertext it cannot decrypt",
    "eraser": "the kit's eraser role with exactly its generated policy: it must reach every "
              "speaker's versions to erase them",
}
_ASSUMED = re.compile(r"arn:aws[\w-]*:sts::\d{12}:assumed-role/([^/]+)/.+")


@dataclass(frozen=True)
class UnusedGrant:
    """A role with data access that is not used (``last_used`` is ``None``: never)."""

    principal: str
    last_used: dt.datetime | None
    reason: str


@dataclass(frozen=True)
class AccessReview:
    """The review's matrix and verdicts. ``kinds`` says what each principal is."""

    bucket: str
    contractors: tuple[str, ...]
    matrix: AccessMatrix
    kinds: Mapping[str, str]
    broad: tuple[BroadGrant, ...]
    exempt: Mapping[str, str]
    unused: tuple[UnusedGrant, ...]
    last_used: Mapping[str, str]
    notes: tuple[str, ...] = ()
    signers: tuple[str, ...] = ()
    #: roles created within the review window and not used yet, with what is said of them
    new: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """One row per principal: kind, what it reaches, the verdict (for format_table)."""
        broad = {g.principal: g for g in self.broad}
        unused = {u.principal: u for u in self.unused}
        out = []
        for name in self.matrix.principals:
            reach = {a: len(self.matrix.allowed_prefixes(name, a)) for a in self.matrix.actions}
            verdict = ("BROAD: " + ", ".join(
                f"{g.action} on {len(g.prefixes)}" for g in self.broad if g.principal == name)
                if name in broad else "")
            if name in unused:
                verdict = (verdict + "; " if verdict else "") + "UNUSED: " + unused[name].reason
            if not verdict:
                verdict = (f"exempt: {self.exempt[name]}" if name in self.exempt
                           else self.new.get(name, "ok"))
            out.append({"principal": name, "kind": self.kinds.get(name, ""),
                        "prefixes (Get/Put/List/Delete)": "/".join(
                            str(reach[a]) for a in self.matrix.actions),
                        "last used": self.last_used.get(name, ""), "verdict": verdict})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "contractors": list(self.contractors),
                "prefixes": list(self.matrix.prefixes), "actions": list(self.matrix.actions),
                "principals": self.rows(),
                "cells": [{"principal": p, "prefix": pre, "action": a,
                           "decision": d.effect, "statement": d.statement}
                          for (p, pre, a), d in self.matrix.cells.items()],
                "broad": [str(g) for g in self.broad], "exempt": dict(self.exempt),
                "unused": [u.reason for u in self.unused], "new": dict(self.new),
                "notes": list(self.notes),
                "signers": list(self.signers)}


def kit_contractor_role(ctx: CheckContext, name: str) -> bool:
    """Was this role made by :func:`securepipe.access.credentials.ensure_contractor_role`? (its
    default
    name, or its tag ``securepipe=contractor-access``; ListRoleTags)."""
    if name == DEFAULT_ROLE_NAME:
        return True
    tags = ctx.memo(("role_tags", name), lambda: ctx.client("iam").list_role_tags(
        RoleName=name).get("Tags", []))
    return any(t.get("Key") == "securepipe" and t.get("Value") == "contractor-access"
               for t in tags)


def _canonical(document: Mapping[str, Any]) -> str:
    statements = document.get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    return json.dumps(sorted(json.dumps(st, sort_keys=True) for st in statements))


def kit_role(ctx: CheckContext, name: str) -> tuple[str | None, str | None]:
    """``(kit role, None)`` when ``name`` is one of the kit's own roles
    (:func:`securepipe.provision.ensure_kit_role`: named ``securepipe-<role>`` or tagged
    ``securepipe-kit-role=<role>``) holding exactly its generated policy for this account's
    layout (one inline policy equal to :func:`~securepipe.provision.kit_role_policy`, nothing
    attached); ``(None, note)`` when it claims to be one but holds anything else (it is then
    reviewed as it is); ``(None, None)`` otherwise. Reads ListRoleTags, ListRolePolicies,
    GetRolePolicy and ListAttachedRolePolicies."""
    iam = ctx.client("iam")
    tags = ctx.memo(("role_tags", name), lambda: iam.list_role_tags(RoleName=name).get(
        "Tags", []))
    claimed = {t.get("Value") for t in tags if t.get("Key") == KIT_ROLE_TAG}
    claimed |= {r for r in KIT_ROLES if name == f"securepipe-{r}"}
    if not claimed:
        return None, None
    if len(claimed) != 1:
        return None, f"role/{name} claims several kit roles ({sorted(map(str, claimed))})"
    role = str(claimed.pop())
    layout = ctx.memo("kit_layout", lambda: _layout(ctx))
    if role not in KIT_ROLES or isinstance(layout, str):
        why = layout if isinstance(layout, str) else "no such kit role"
        return None, (f"role/{name} claims the kit role {role!r}, which cannot be compared "
                      f"with its generated policy ({why})")
    inline = [n for page in iam.get_paginator("list_role_policies").paginate(RoleName=name)
              for n in page["PolicyNames"]]
    attached = [a for page in iam.get_paginator("list_attached_role_policies").paginate(
        RoleName=name) for a in page["AttachedPolicies"]]
    if inline == [KIT_ROLE_POLICY_NAME] and not attached:
        doc = iam.get_role_policy(RoleName=name, PolicyName=KIT_ROLE_POLICY_NAME)[
            "PolicyDocument"]
        if isinstance(doc, str):
            doc = json.loads(unquote(doc))
        # either generated shape: a layout with per-speaker keys or without
        # (AccountLayout.speaker_keys changes the ingest and trainer roles' policies)
        if any(_canonical(doc) == _canonical(kit_role_policy(role, variant))
               for variant in (layout, dataclasses.replace(layout, speaker_keys=True))):
            return role, None
    return None, (f"role/{name} claims the kit's {role} role but holds more or other than its "
                  "generated policy, so it is reviewed as it is")


def _layout(ctx: CheckContext) -> AccountLayout | str:
    """The account's layout as the configuration knows it (buckets, keys, consent table), or
    why it cannot be made."""
    config = ctx.config
    data, archive = config.bucket("raw"), config.bucket("archive")
    try:
        account = ctx.account_id or str(ctx.session.client("sts").get_caller_identity()[
            "Account"])
        return AccountLayout(
            account_id=account, region=ctx.session.region_name or "us-east-1",
            buckets={b.role: b.name for b in config.buckets if b.role in BUCKET_ROLES},
            consent_table=config.consent_table,
            data_key_arn=data.key_arn if data else None,
            archive_key_arn=archive.key_arn if archive else None,
            signing_key_arn=config.signing_key_arn)
    except InvalidParameterError as exc:
        return str(exc)


def _contractors(session: boto3.Session, config: CheckConfig) -> list[str]:
    s3 = session.client("s3")
    found: set[str] = set()
    for role, prefix in (("raw", "raw/"), ("features", "features/")):
        bucket = config.bucket(role)
        if bucket is None:
            continue
        for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket.name, Prefix=prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                cid = common["Prefix"][len(prefix):].rstrip("/")
                if CONTRACTOR_ID.fullmatch(cid):
                    found.add(cid)
    return sorted(found)


def access_review(session: boto3.Session, config: CheckConfig, *,
                  ctx: CheckContext | None = None) -> AccessReview:
    """Build the review for the account behind ``session`` (see the module docstring).

    Wraps IAM ListRoles/ListUsers/GetRole
    (https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetRole.html, for
    ``RoleLastUsed``) and the policy reads of :func:`securepipe.access.credentials.role_principal` /
    :func:`securepipe.access.credentials.user_principal`, and S3 ListObjectsV2 for the contractor
    prefixes.
    """
    ctx = ctx or CheckContext(session, config)
    raw = config.bucket("raw")
    if raw is None:
        raise SecurePipeError("no raw bucket is known: the review evaluates its prefixes")
    notes: list[str] = []
    contractors = _contractors(session, config)
    prefixes_ids = list(contractors)
    if len(prefixes_ids) < 2:
        probes = [p for p in _PROBES if p not in prefixes_ids][: 2 - len(prefixes_ids)]
        prefixes_ids += probes
        notes.append(f"fewer than two contractor prefixes found; probe prefixes {probes} "
                     "stand in for other contractors")
    prefixes = [f"raw/{c}/" for c in prefixes_ids]

    caller = ctx.caller_arn
    if caller is None:
        caller = str(session.client("sts").get_caller_identity()["Arn"])
    caller_role = _ASSUMED.fullmatch(caller)
    caller_name = (f"role/{caller_role.group(1)}" if caller_role
                   else f"user/{caller.rsplit('/', 1)[-1]}" if ":user/" in caller else caller)

    kinds: dict[str, str] = {}
    exempt: dict[str, str] = {}
    principals: list[Principal] = []
    croles = contractor_roles(ctx)
    data_key = raw.key_arn
    for role in sorted(all_roles(ctx), key=lambda r: r["RoleName"]):
        name = role["RoleName"]
        base = role_principal(session, name)
        label = f"role/{name}"
        principals.append(dataclasses.replace(base, name=label))
        kinds[label] = "contractor role" if name in croles else "role"
        kit, why_not = kit_role(ctx, name) if name not in croles else (None, None)
        if why_not:
            notes.append(why_not)
        if kit is not None:
            kinds[label] = f"kit {kit} role"
            exempt[label] = _KIT_EXEMPTION[kit]
        elif name in croles and not kit_contractor_role(ctx, name):
            notes.append(f"{label} is a contractor role the kit did not create: how its "
                         "sessions are narrowed cannot be seen, so the role is reviewed as is")
        elif name in croles:
            exempt[label] = ("the kit's contractor role on its own: every session "
                             "vend_contractor_credentials makes is narrowed to one contractor "
                             "(see its session rows); keep its trust policy to the vending "
                             "service")
            if data_key is None:
                notes.append(f"no data key known: sessions of {name} not modelled")
                continue
            for cid in contractors:
                policy = contractor_session_policy(cid, bucket=raw.name, key_arn=data_key)
                label_s = f"session/{cid} ({name})"
                principals.append(session_principal(base, label_s, policy))
                kinds[label_s] = "contractor session"
    for user in sorted(all_users(ctx), key=lambda u: u["UserName"]):
        label = f"user/{user['UserName']}"
        principals.append(dataclasses.replace(user_principal(session, user["UserName"]),
                                              name=label))
        kinds[label] = "user"
    if caller_name in kinds:
        # Reviewed like any other principal: an exemption would hide the most powerful one.
        kinds[caller_name] += " (runs this review)"
    for name in config.review_exempt:
        exempt.setdefault(name, "exempt by configuration")

    matrix = access_matrix(principals, bucket=raw.name, prefixes=prefixes)
    signers = (tuple(key_users(principals, config.signing_key_arn))
               if config.signing_key_arn else ())
    broad = tuple(g for g in broad_grants(matrix) if g.principal not in exempt)

    iam = session.client("iam")
    now = ctx.now()
    unused: list[UnusedGrant] = []
    last_used: dict[str, str] = {}
    new: dict[str, str] = {}
    for label in matrix.principals:
        kind = kinds.get(label, "")
        if kind not in ("role", "contractor role") and not (
                kind.startswith("kit ") and kind.endswith(" role")):
            continue  # users, sessions, and the identity running the review
        if not any(matrix.allowed_prefixes(label, a) for a in matrix.actions):
            continue  # no access to the data: not this review's business
        role = iam.get_role(RoleName=label.split("/", 1)[1])["Role"]
        if "RoleLastUsed" not in role:
            last_used[label] = "unknown"
            continue
        when = role["RoleLastUsed"].get("LastUsedDate")
        last_used[label] = f"{when:%Y-%m-%d %H:%M}" if when else "never"
        created = role.get("CreateDate")
        if when is None and isinstance(created, dt.datetime) and (
                now - _aware(created) <= config.unused_after):
            # A role made within the review window has not had the chance to be used: it is
            # new, not an unused grant (flagged once it stays unused past the window).
            due = _aware(created) + config.unused_after
            new[label] = (f"new: created {_aware(created):%Y-%m-%d}, not used yet; flagged if "
                          f"still unused after {due:%Y-%m-%d}")
            last_used[label] = "never (new)"
        elif when is None:
            unused.append(UnusedGrant(label, None, "never used (in IAM's 400-day tracking "
                                      "window), yet it can reach contractor data"))
        elif now - when > config.unused_after:
            unused.append(UnusedGrant(label, when, f"last used {(now - when).days} days ago "
                                      f"(> {config.unused_after.days} days)"))
    return AccessReview(bucket=raw.name, contractors=tuple(contractors), matrix=matrix,
                        kinds=kinds, broad=broad, exempt=exempt, unused=tuple(unused),
                        last_used=last_used, notes=tuple(notes), signers=signers, new=new)


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def review_of(ctx: CheckContext) -> AccessReview:
    """The run's review, computed once (both review checks and the scorecard share it)."""
    return ctx.memo("access_review", lambda: access_review(ctx.session, ctx.config, ctx=ctx))


def _broad(ctx: CheckContext) -> list[ResourceResult]:
    review = review_of(ctx)
    results: list[ResourceResult] = []
    by_principal: dict[str, list[BroadGrant]] = {}
    for grant in review.broad:
        by_principal.setdefault(grant.principal, []).append(grant)
    for name, grants in sorted(by_principal.items()):
        prefixes = sorted({p for g in grants for p in g.prefixes})
        results.append(ResourceResult(name, "fail", f"{review.kinds.get(name, '')} may "
                                      f"{'/'.join(g.action for g in grants)} on "
                                      f"{len(prefixes)} contractor prefixes "
                                      f"({', '.join(prefixes[:4])}"
                                      + (", ...)" if len(prefixes) > 4 else ")")))
    sessions = [n for n, k in review.kinds.items() if k == "contractor session"]
    summary = (f"{len(review.matrix.principals)} principals x {len(review.matrix.prefixes)} "
               f"contractor prefixes reviewed; {len(sessions)} contractor session(s) each "
               "reach only their own prefix" if sessions else
               f"{len(review.matrix.principals)} principals x {len(review.matrix.prefixes)} "
               "contractor prefixes reviewed")
    exempt = "; ".join(f"{n}: exempt ({why.split(':')[0]})" for n, why in review.exempt.items()
                       if n in review.matrix.principals)
    results.append(ResourceResult("account", "pass",
                                  summary + (f"; {exempt}" if exempt else "")))
    return results


def _unused(ctx: CheckContext) -> list[ResourceResult]:
    review = review_of(ctx)
    results = [ResourceResult(u.principal, "fail", u.reason) for u in review.unused]
    for name, when in sorted(review.last_used.items()):
        if when == "unknown":
            results.append(ResourceResult(name, "unverifiable", "GetRole returns no "
                                          "RoleLastUsed here: last use cannot be observed"))
        elif name in review.new:
            results.append(ResourceResult(name, "pass", review.new[name]))
        elif not any(u.principal == name for u in review.unused):
            results.append(ResourceResult(name, "pass", f"last used {when}"))
    if not results:
        results.append(ResourceResult("account", "pass", "no role can reach contractor data"))
    return results


def audit_writer_role(ctx: CheckContext, label: str) -> bool:
    """Is ``role/<name>`` tagged ``securepipe=audit-writer`` (the role that ships trails)?"""
    if not label.startswith("role/"):
        return False
    name = label.split("/", 1)[1]
    tags = ctx.memo(("role_tags", name), lambda: ctx.client("iam").list_role_tags(
        RoleName=name).get("Tags", []))
    return any(t.get("Key") == "securepipe" and t.get("Value") == "audit-writer" for t in tags)


def _signing_key(ctx: CheckContext) -> list[ResourceResult]:
    """KMS DescribeKey on the signing key, and who may kms:Sign with it (the review's
    principals; https://docs.aws.amazon.com/kms/latest/APIReference/API_DescribeKey.html)."""
    key = ctx.config.signing_key_arn
    if key is None:
        raise SecurePipeError("no audit signing key is known (alias/securepipe-signing)")
    label = ctx.config.label(key)
    meta = ctx.client("kms").describe_key(KeyId=key)["KeyMetadata"]
    results: list[ResourceResult] = []
    if key in ctx.config.key_arns or meta.get("KeyUsage") != "SIGN_VERIFY":
        results.append(ResourceResult(label, "fail", "the trail's signing key is a data key "
                                      "(or not a SIGN_VERIFY key): whoever may decrypt data "
                                      "could sign the record of their own reads"))
    review = review_of(ctx)
    for name in review.signers:
        if name in review.exempt and review.kinds.get(name) != "contractor role":
            continue  # the identity running the review (reviewed separately)
        if audit_writer_role(ctx, name):
            continue
        results.append(ResourceResult(name, "fail", f"{review.kinds.get(name, 'principal')} may "
                                      "kms:Sign with the audit signing key: it could forge the "
                                      "trail; only a role tagged securepipe=audit-writer may"))
    if not results:
        writers = [n for n in review.signers if n not in review.exempt]
        results.append(ResourceResult(label, "pass", f"{meta.get('KeySpec', '')} SIGN_VERIFY "
                                      "key, not a data key; no contractor or other role may "
                                      "sign with it" + (f" but the audit writer(s) "
                                                        f"{', '.join(writers)}" if writers
                                                        else "")))
    return results


CHECKS: list[Check] = [
    Check(
        id="access_review_broad_grants", title="Access review: nobody reaches more than one "
        "contractor's recordings", severity="high", step=6, checklist_item=8,
        rationale="Contractors are the widest part of the attack surface: each must reach only "
        "its own prefix, and no other user or role should quietly reach everyone's. Evaluated "
        "with the kit's policy evaluator over policies read back through IAM.",
        remediation="remove the grant (or scope it to one prefix); give contractors sessions "
        "from securepipe.access.credentials.vend_contractor_credentials", evaluate=_broad),
    Check(
        id="access_review_unused_grants", title="Access review: no unused role can reach "
        "contractor data", severity="medium", step=6, checklist_item=8,
        rationale="Access nobody uses is pure risk: a forgotten vendor role is a door nobody "
        "watches. Flags roles with data access whose RoleLastUsed is empty or old.",
        remediation="delete the role (IAM DeleteRole) or its data grants; re-create it when "
        "the work starts", evaluate=_unused),
    Check(
        id="audit_signing_key_separation", title="The audit trail's signing key is not the "
        "data key, and no contractor or training role may sign with it", severity="high",
        step=6, checklist_item=8,
        rationale="A trail proves only what its signer could not fake: if the key that signs "
        "the trail is the data key, or a contractor or training role may kms:Sign with it, the "
        "reader of the data can rewrite the record of its own reads. Evaluated over the "
        "review's principals with the kit's policy evaluator (key policies and grants are not "
        "modelled).",
        remediation="sign trails with a SIGN_VERIFY key (securepipe.encryption.signing."
        "create_signing_key) used only by a role tagged securepipe=audit-writer; remove "
        "kms:Sign from every other policy", evaluate=_signing_key),
]


def review_rows(review: AccessReview, *, prefixes: Sequence[str] | None = None
                ) -> list[dict[str, str]]:
    """The matrix as rows (principal x prefix) with the Get/Put/List/Delete decisions."""
    chosen = list(prefixes) if prefixes is not None else list(review.matrix.prefixes)
    out = []
    for name in review.matrix.principals:
        row = {"principal": name}
        for prefix in chosen:
            row[prefix] = "".join(a[0] if review.matrix.decision(name, prefix, a).allowed
                                  else "." for a in review.matrix.actions)
        out.append(row)
    return out
