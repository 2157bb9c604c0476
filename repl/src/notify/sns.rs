//! SNS targets: the JSON body published to the topic (`Subject`: its summary), with the run's
//! aws world settings (profile, endpoint) and the region of the topic's ARN. The SDK's own
//! retries are off: the outbox retries (visibly, with the error on the row).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sns::error::ProvideErrorMetadata;
use godwit_pgstore::notify::Target;
use godwit_stdlib::aws::settings::AwsSettings;
use serde_json::Value;

use super::deliver::REQUEST_TIMEOUT;

/// SNS clients by region, endpoint and profile, on the deliverer's own small runtime.
#[derive(Default)]
pub struct Clients {
    rt: Option<tokio::runtime::Runtime>,
    by: HashMap<String, aws_sdk_sns::Client>,
}

/// Error codes that sending again cannot fix.
const REFUSED: &[&str] = &[
    "NotFound",
    "AuthorizationError",
    "InvalidParameter",
    "InvalidClientTokenId",
    "AccessDenied",
    "AccessDeniedException",
];

impl Clients {
    /// Publish `body` to `t`'s topic; `Err((refused, why))`.
    pub fn publish(&mut self, t: &Target, body: &Value) -> Result<(), (bool, String)> {
        let arn = &t.address;
        let region = arn.split(':').nth(3).unwrap_or_default().to_string();
        let settings = match &t.aws {
            Some(v) => AwsSettings::from_json(v.clone(), "the run's aws settings")
                .map_err(|e| (true, e))?,
            None => AwsSettings::default(),
        };
        if self.rt.is_none() {
            self.rt = Some(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| (false, format!("cannot start a runtime for SNS: {e}")))?,
            );
        }
        let Some(rt) = &self.rt else {
            return Err((false, "no runtime".into()));
        };
        let key = format!(
            "{region}|{}|{}",
            settings.endpoint_url.as_deref().unwrap_or_default(),
            settings.profile.as_deref().unwrap_or_default()
        );
        let client = match self.by.get(&key) {
            Some(c) => c.clone(),
            None => {
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(aws_config::Region::new(region.clone()))
                    .retry_config(aws_sdk_sns::config::retry::RetryConfig::disabled())
                    .timeout_config(
                        aws_sdk_sns::config::timeout::TimeoutConfig::builder()
                            .connect_timeout(Duration::from_secs(5))
                            .operation_attempt_timeout(REQUEST_TIMEOUT)
                            .build(),
                    );
                if let Some(p) = &settings.profile {
                    loader = loader.profile_name(p);
                }
                if let Some(u) = &settings.endpoint_url {
                    loader = loader.endpoint_url(u);
                }
                let sdk = rt.block_on(loader.load());
                let c = aws_sdk_sns::Client::new(&sdk);
                self.by.insert(key, c.clone());
                c
            }
        };
        let subject: String = body["summary"]
            .as_str()
            .unwrap_or("godwit")
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .take(99)
            .collect();
        let req = client
            .publish()
            .topic_arn(arn)
            .subject(subject)
            .message(body.to_string());
        let sent = rt.block_on(async {
            tokio::time::timeout(REQUEST_TIMEOUT + Duration::from_secs(5), req.send()).await
        });
        match sent {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                let code = e.code().unwrap_or_default().to_string();
                let msg = format!(
                    "SNS Publish to {arn}: {}",
                    e.message()
                        .map_or_else(|| format!("{e}"), |m| format!("{code}: {m}"))
                );
                Err((REFUSED.contains(&code.as_str()), msg))
            }
            Err(_) => Err((false, format!("SNS Publish to {arn}: timed out"))),
        }
    }
}
