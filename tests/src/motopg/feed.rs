//! CloudWatch fed by the real servers: every second the lab's sampler
//! (`godwit_lab::metrics::sample_as`, logged in as `rdsadmin` like RDS's own monitoring) takes
//! its sample, and each metric goes to moto's CloudWatch with `PutMetricData` in namespace
//! `AWS/RDS`, its dimension and its second — through the SDK, so through the launcher's CBOR
//! support, as RDS publishes. The datapoints are high-resolution (`StorageResolution` 1): the
//! harness, like the lab, measures per second (runbook parameter `metric_period = 1`); RDS
//! publishes these metrics per minute.
//!
//! A datapoint is put only once its period has ended: a sample taken at 12:00:00.3 is stamped
//! 12:00:00 (the start of its one-second period) and put at 12:00:01. RDS sends its metrics in
//! one-minute periods (<https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/monitoring-cloudwatch.html>),
//! a minute's datapoint after that minute, so on AWS a period in progress has no datapoint; moto answers
//! whatever has been put, the period in progress included (`GetMetricData` filters datapoints
//! by `StartTime <= t < EndTime` only), so a feed putting at once would let a reader see a
//! period before it ends — kinder than AWS (docs/moto.md).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};

use super::front::Shared;

/// Sample and publish every second until the runtime ends.
pub async fn run(shared: Arc<Shared>, cw: aws_sdk_cloudwatch::Client) {
    let mut last_lsn = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let Ok(st) = godwit_lab::LabState::load(&shared.lab_dir) else {
            continue;
        };
        let sample = godwit_lab::metrics::sample_as(&st, &mut last_lsn, &shared.admin).await;
        if sample.m.is_empty() {
            continue;
        }
        // Not before the sample's period has ended (see the module's docs).
        let ends = std::time::UNIX_EPOCH + Duration::from_secs(sample.t as u64 + 1);
        if let Ok(wait) = ends.duration_since(std::time::SystemTime::now()) {
            tokio::time::sleep(wait).await;
        }
        let mut req = cw.put_metric_data().namespace(godwit_stdlib::cw::NAMESPACE);
        for (key, v) in &sample.m {
            // "DBInstanceIdentifier=orders-db/OldestReplicationSlotLag"
            let Some((dim, metric)) = key.split_once('/') else {
                continue;
            };
            let Some((name, id)) = dim.split_once('=') else {
                continue;
            };
            req = req.metric_data(
                MetricDatum::builder()
                    .metric_name(metric)
                    .dimensions(Dimension::builder().name(name).value(id).build())
                    .timestamp(DateTime::from_secs(sample.t))
                    .value(*v)
                    .storage_resolution(1)
                    .build(),
            );
        }
        if let Err(e) = req.send().await {
            shared.log(format!(
                "PutMetricData: {}",
                aws_sdk_cloudwatch::error::DisplayErrorContext(e)
            ));
        }
    }
}
