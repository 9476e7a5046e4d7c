"""A backfill on a Dask LocalCluster ingests like any other executor (optional extra)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from securepipe import clock
from securepipe.data.dataset import load_manifest
from securepipe.encryption.envelope import Envelope, EnvelopeConfig, SampleContext
from securepipe.encryption.hardening import apply_bucket_hardening
from securepipe.encryption.upload import upload_sample
from securepipe.features.backfill import backfill_on_dask
from securepipe.features.ingest import (
    IngestConfig,
    ProfileSessionFactory,
    items_from_manifest,
    raw_left,
)
from securepipe.retention.consent import ConsentRegistry
from securepipe.sandbox.account import Sandbox

pytest.importorskip("distributed")
logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)


def test_a_backfill_on_a_dask_local_cluster(tmp_path: Path) -> None:
    manifest = load_manifest()
    with Sandbox(server=True, tls=True) as sb:
        res = sb.resources
        for role, key in (("raw", res.kms_key_arn), ("features", res.kms_key_arn),
                          ("archive", res.archive_key_arn)):
            apply_bucket_hardening(sb.session, res.bucket(role), key)
        config = IngestConfig(raw_bucket=res.bucket("raw"),
                              features_bucket=res.bucket("features"),
                              archive_bucket=res.bucket("archive"), key_arn=res.kms_key_arn,
                              archive_key_arn=res.archive_key_arn)
        # consent gates every ingest (issue 14): uploads name their speaker and pass the gate
        registry = ConsentRegistry(sb.session)
        registry.load_manifest_consents(manifest, rebase_to=clock.now().date())
        items = items_from_manifest(manifest)[:6]
        envelope = Envelope(sb.session, EnvelopeConfig(key_arns=res.kms_key_arn))
        for item in items:
            upload_sample(sb.session, envelope, manifest.path_of(item.sample_id),
                          bucket=config.raw_bucket, key_arn=config.key_arn,
                          context=SampleContext(item.contractor, item.sample_id,
                                                config.upload_purpose),
                          speaker=item.speaker, consent=registry)
        # picklable, as worker processes on a real cluster need; threads keep the test quick
        factory = ProfileSessionFactory(Sandbox.PROFILE, str(sb.config_file), str(sb.ca_bundle))
        report = backfill_on_dask(items, config, factory, n_workers=1, threads_per_worker=3,
                                  processes=False)
        assert report.summary()["processed"] == 6
        assert raw_left(sb.session, config.raw_bucket) == 0
