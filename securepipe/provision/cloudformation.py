"""The same :class:`~securepipe.provision.AccountLayout` as a CloudFormation template.

:func:`render_cloudformation` returns the template as a dict (``json.dumps`` it, or
``securepipe provision --cloudformation PATH``): the three keys and their aliases, the four
buckets (SSE-KMS, versioning, Block Public Access, ownership enforced, Object Lock on the archive
and audit buckets, lifecycle rules, request metrics) and their policies (the same statements the
API path merges by Sid), the contractor role and the kit's own roles (their generated policies
and tags; who may assume each is a template parameter, by default the account root), the
consent table, the trail with S3 data events, the SNS topic, its SQS subscriber and the
bulk-read alarms. The tests lint it with cfn-lint.

What a template cannot do: account-wide Block Public Access has no CloudFormation resource, so
run :func:`securepipe.provision.provision` (step ``account-public-access``) after the stack, or
``securepipe provision``: it completes whatever the stack left out and changes nothing else.
Resource reference: https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-template-resource-type-ref.html
"""

from __future__ import annotations

import json
from typing import Any

from securepipe.access.credentials import contractor_role_policy, contractor_trust_statement
from securepipe.access.presigned import presign_age_cap_statement
from securepipe.audit.monitoring import data_event_selectors, trail_bucket_policy_statements
from securepipe.encryption.hardening import hardened_bucket_policy
from securepipe.provision.account import (
    AUDIT_RETENTION_DAYS,
    AUDIT_RETENTION_MODE,
    CONTRACTOR_MAX_SESSION_S,
)
from securepipe.provision.layout import BUCKET_ROLES, KIT_ROLES, LOCKED_ROLES, AccountLayout
from securepipe.provision.policies import (
    KIT_ROLE_POLICY_NAME,
    kit_role_policy,
    kit_role_tags,
    kit_trust_statement,
)
from securepipe.retention.lifecycle import lifecycle_rules

__all__ = ["render_cloudformation"]

_PLACEHOLDER_KEY = "arn:aws:kms:{region}:{account}:key/00000000-0000-0000-0000-000000000000"


def _logical(role: str) -> str:
    return role.capitalize()


def _key(description: str, account: str, *, signing: bool = False) -> dict[str, Any]:
    # The key policy is AWS's default one (the account administers the key through IAM,
    # https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html). It is
    # written as a JSON string, which the Json-typed property accepts: moto 5.2 stores a
    # template's KeyPolicy as given and then fails every DescribeKey on a dict (and requires the
    # property). No Tags: moto's CloudFormation KMS handler expects TagKey/TagValue where the
    # resource type uses Key/Value. The aliases name the keys.
    policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "EnableIAMUserPermissions", "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "kms:*",
        "Resource": "*"}]}
    props: dict[str, Any] = {"Description": f"securepipe: {description}",
                             "KeyPolicy": json.dumps(policy)}
    if signing:
        props.update(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    else:
        props["EnableKeyRotation"] = True
    return {"Type": "AWS::KMS::Key", "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain", "Properties": props}


def _lifecycle(role: str) -> list[dict[str, Any]]:
    """:func:`lifecycle_rules` in CloudFormation's property names."""
    out = []
    for rule in lifecycle_rules(role):  # type: ignore[arg-type]  # role is a Role literal
        cfn: dict[str, Any] = {"Id": rule["ID"], "Status": rule["Status"]}
        prefix = rule.get("Filter", {}).get("Prefix")
        if prefix:
            cfn["Prefix"] = prefix
        expiration = rule.get("Expiration", {})
        if "Days" in expiration:
            cfn["ExpirationInDays"] = expiration["Days"]
        if expiration.get("ExpiredObjectDeleteMarker"):
            cfn["ExpiredObjectDeleteMarker"] = True
        if "NoncurrentVersionExpiration" in rule:
            cfn["NoncurrentVersionExpiration"] = {
                "NoncurrentDays": rule["NoncurrentVersionExpiration"]["NoncurrentDays"]}
        if "AbortIncompleteMultipartUpload" in rule:
            cfn["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": rule[
                "AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]}
        if "Transitions" in rule:
            cfn["Transitions"] = [{"StorageClass": t["StorageClass"],
                                   "TransitionInDays": t["Days"]} for t in rule["Transitions"]]
        out.append(cfn)
    return out


def _subst(document: Any, replacements: dict[str, str]) -> Any:
    """Replace placeholder strings (key ARNs not known until the stack exists) with
    ``Fn::GetAtt``/``Ref`` expressions."""
    if isinstance(document, dict):
        return {k: _subst(v, replacements) for k, v in document.items()}
    if isinstance(document, list):
        return [_subst(v, replacements) for v in document]
    if isinstance(document, str) and document in replacements:
        return {"Fn::GetAtt": [replacements[document], "Arn"]}
    return document


def render_cloudformation(layout: AccountLayout) -> dict[str, Any]:
    """The CloudFormation template of ``layout`` (a dict ready for ``json.dumps``)."""
    if not isinstance(layout, AccountLayout):
        from securepipe.errors import InvalidParameterError

        raise InvalidParameterError("layout must be an AccountLayout")
    account, region = layout.account_id, layout.region
    data_ph = _PLACEHOLDER_KEY.format(region=region, account=account)
    archive_ph = data_ph.replace("0000-000000000000", "0000-000000000001")
    keys = {data_ph: "DataKey", archive_ph: "ArchiveKey"}
    res: dict[str, Any] = {
        "DataKey": _key("voice training data", account),
        "ArchiveKey": _key("the cold archive", account),
        "SigningKey": _key("signs audit-trail checkpoints and erasure receipts", account,
                           signing=True),
    }
    for logical, alias in (("DataKey", layout.data_key_alias),
                           ("ArchiveKey", layout.archive_key_alias),
                           ("SigningKey", layout.signing_key_alias)):
        res[f"{logical}Alias"] = {"Type": "AWS::KMS::Alias", "Properties": {
            "AliasName": alias, "TargetKeyId": {"Ref": logical}}}

    monitoring = layout.monitoring_config()
    for role in BUCKET_ROLES:
        name, logical = layout.bucket(role), _logical(role)
        key_logical = "ArchiveKey" if role == "archive" else "DataKey"
        props: dict[str, Any] = {
            "BucketName": name,
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [{
                "ServerSideEncryptionByDefault": {
                    "SSEAlgorithm": "aws:kms",
                    "KMSMasterKeyID": {"Fn::GetAtt": [key_logical, "Arn"]}},
                "BucketKeyEnabled": True}]},
            "VersioningConfiguration": {"Status": "Enabled"},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True, "IgnorePublicAcls": True,
                "BlockPublicPolicy": True, "RestrictPublicBuckets": True},
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            "Tags": [{"Key": "securepipe", "Value": role}],
        }
        if role in LOCKED_ROLES:
            props["ObjectLockEnabled"] = True
        if role == "audit":
            # As provision(): every put into the audit bucket is locked by default
            # (AWS::S3::Bucket ObjectLockConfiguration, DefaultRetention).
            props["ObjectLockConfiguration"] = {"ObjectLockEnabled": "Enabled", "Rule": {
                "DefaultRetention": {"Mode": AUDIT_RETENTION_MODE,
                                     "Days": AUDIT_RETENTION_DAYS}}}
        if role != "audit":
            props["LifecycleConfiguration"] = {"Rules": _lifecycle(role)}
            props["MetricsConfigurations"] = [{"Id": monitoring.filter_id}]
        res[f"{logical}Bucket"] = {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain",
                                   "UpdateReplacePolicy": "Retain", "Properties": props}
        key_ph = archive_ph if role == "archive" else data_ph
        statements = list(hardened_bucket_policy(name, key_ph)["Statement"])
        if role != "audit":
            statements.append(presign_age_cap_statement(name))
        else:
            statements += trail_bucket_policy_statements(
                name, monitoring.trail_prefix, account, region, layout.trail_name)
        res[f"{logical}BucketPolicy"] = {"Type": "AWS::S3::BucketPolicy", "Properties": {
            "Bucket": {"Ref": f"{logical}Bucket"},
            "PolicyDocument": _subst({"Version": "2012-10-17", "Statement": statements}, keys)}}

    root = f"arn:aws:iam::{account}:root"
    # Trust principals are template parameters (default: the account root, as provision()).
    parameters: dict[str, Any] = {"ContractorTrustedPrincipals": {
        "Type": "CommaDelimitedList", "Default": root,
        "Description": "IAM ARNs that may assume the contractor role (the vending service)"}}
    trust = {**contractor_trust_statement([root]),
             "Principal": {"AWS": {"Ref": "ContractorTrustedPrincipals"}}}
    res["ContractorRole"] = {"Type": "AWS::IAM::Role", "Properties": {
        "RoleName": layout.contractor_role,
        "Description": "securepipe: contractor uploads; every session is narrowed to one "
                       "contractor",
        "MaxSessionDuration": CONTRACTOR_MAX_SESSION_S,
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [trust]},
        "Tags": [{"Key": "securepipe", "Value": "contractor-access"}]}}
    # The inline policy as its own resource (not the role's Policies property, which moto 5.2
    # stores as a Python repr instead of JSON); on AWS the two are equivalent.
    res["ContractorRolePolicy"] = {"Type": "AWS::IAM::Policy", "Properties": {
        "PolicyName": "securepipe-contractor-raw-access", "Roles": [{"Ref": "ContractorRole"}],
        "PolicyDocument": _subst(contractor_role_policy(bucket=layout.bucket("raw"),
                                                        key_arn=data_ph), keys)}}
    # The kit's own roles, each with its generated least-privilege policy and its tags (the
    # eraser's securepipe=audit-writer lets it sign trails and receipts).
    signing_ph = data_ph.replace("0000-000000000000", "0000-000000000002")
    keyed = layout.with_keys(data_key_arn=data_ph, archive_key_arn=archive_ph,
                             signing_key_arn=signing_ph)
    role_keys = {**keys, signing_ph: "SigningKey"}
    for role in KIT_ROLES:
        logical = f"{role.capitalize()}Role"
        parameters[f"{logical}TrustedPrincipals"] = {
            "Type": "CommaDelimitedList", "Default": root,
            "Description": f"IAM ARNs that may assume the kit's {role} role"}
        res[logical] = {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": layout.role_name(role),
            "Description": f"securepipe: the kit's {role} role (generated least-privilege "
                           "policy)",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                **kit_trust_statement([root]),
                "Principal": {"AWS": {"Ref": f"{logical}TrustedPrincipals"}}}]},
            "Tags": kit_role_tags(role)}}
        res[f"{logical}Policy"] = {"Type": "AWS::IAM::Policy", "Properties": {
            "PolicyName": KIT_ROLE_POLICY_NAME, "Roles": [{"Ref": logical}],
            "PolicyDocument": _subst(kit_role_policy(role, keyed), role_keys)}}
    res["ConsentTable"] = {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Retain",
                           "UpdateReplacePolicy": "Retain", "Properties": {
        "TableName": layout.consent_table,
        "AttributeDefinitions": [{"AttributeName": "speaker", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "speaker", "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
        "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS",
                             "KMSMasterKeyId": {"Fn::GetAtt": ["DataKey", "Arn"]}},
        "Tags": [{"Key": "securepipe", "Value": "consent"}]}}
    res["Trail"] = {"Type": "AWS::CloudTrail::Trail", "DependsOn": ["AuditBucketPolicy"],
                    "Properties": {
        "TrailName": layout.trail_name, "S3BucketName": {"Ref": "AuditBucket"},
        "S3KeyPrefix": monitoring.trail_prefix, "IsLogging": True, "IsMultiRegionTrail": True,
        "IncludeGlobalServiceEvents": True, "EnableLogFileValidation": True,
        "KMSKeyId": {"Fn::GetAtt": ["DataKey", "Arn"]},
        "AdvancedEventSelectors": data_event_selectors(list(layout.data_buckets))}}
    res["AlertTopic"] = {"Type": "AWS::SNS::Topic", "Properties": {
        "TopicName": layout.topic_name}}
    res["AlertQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {
        "QueueName": layout.queue_name}}
    res["AlertQueuePolicy"] = {"Type": "AWS::SQS::QueuePolicy", "Properties": {
        "Queues": [{"Ref": "AlertQueue"}],
        "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Sid": "AllowAlertTopic", "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
            "Resource": {"Fn::GetAtt": ["AlertQueue", "Arn"]},
            "Condition": {"ArnEquals": {"aws:SourceArn": {"Ref": "AlertTopic"}}}}]}}}
    res["AlertSubscription"] = {"Type": "AWS::SNS::Subscription", "Properties": {
        "TopicArn": {"Ref": "AlertTopic"}, "Protocol": "sqs",
        "Endpoint": {"Fn::GetAtt": ["AlertQueue", "Arn"]}, "RawMessageDelivery": True}}
    for role in ("raw", "features", "archive"):
        bucket = layout.bucket(role)
        for metric, threshold in (("GetRequests", monitoring.get_requests_threshold),
                                  ("BytesDownloaded", monitoring.bytes_downloaded_threshold)):
            res[f"{_logical(role)}{metric}Alarm"] = {
                "Type": "AWS::CloudWatch::Alarm", "Properties": {
                    "AlarmName": f"securepipe-{metric}-{bucket}",
                    "AlarmDescription": f"bulk reads from {bucket}: {metric} above "
                                        f"{threshold:,.0f} per {monitoring.period} s",
                    "Namespace": "AWS/S3", "MetricName": metric, "Statistic": "Sum",
                    "Dimensions": [{"Name": "BucketName", "Value": bucket},
                                   {"Name": "FilterId", "Value": monitoring.filter_id}],
                    "Period": monitoring.period,
                    "EvaluationPeriods": monitoring.evaluation_periods,
                    "Threshold": float(threshold),
                    "ComparisonOperator": "GreaterThanThreshold",
                    "TreatMissingData": "notBreaching",
                    "AlarmActions": [{"Ref": "AlertTopic"}]}}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"securepipe account layout for {account} in {region}. Account-wide "
                       "Block Public Access has no CloudFormation resource: run `securepipe "
                       "provision` after this stack (it completes only what is missing).",
        "Parameters": parameters,
        "Resources": res,
        "Outputs": {
            "DataKeyArn": {"Value": {"Fn::GetAtt": ["DataKey", "Arn"]}},
            "ArchiveKeyArn": {"Value": {"Fn::GetAtt": ["ArchiveKey", "Arn"]}},
            "SigningKeyArn": {"Value": {"Fn::GetAtt": ["SigningKey", "Arn"]}},
            "ContractorRoleArn": {"Value": {"Fn::GetAtt": ["ContractorRole", "Arn"]}},
        },
    }
