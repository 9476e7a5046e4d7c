"""Solution: the kit's session policy, built as data from a validated id."""
from securepipe.access import contractor_session_policy

answer = contractor_session_policy(
    "c01",
    bucket="securepipe-raw-123456789012-eu-west-1",
    key_arn="arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555",
)
