//! The aws world's plumbing: SDK clients from [`AwsSettings`], and [`AwsApi`], the per-run
//! handle through which `rds`, `ec2` and `cw` (in `<area>/aws.rs`) call AWS.
//!
//! | file          | what                                                               |
//! |---------------|--------------------------------------------------------------------|
//! | `mod.rs`      | [`Aws`] (clients, built once per world), [`AwsApi::api`]: one AWS API call with godwit's retries, error mapping |
//! | `settings.rs` | [`AwsSettings`]: per-cluster configuration, strict parsing          |
//! | `iam.rs`      | [`iam::IamConnector`]: `pg` over TLS with IAM auth tokens (no password) |
//! | `world.rs`    | the `aws` [`crate::world::World`] and the areas it has no backend for |
//!
//! ```text
//!  rds::describe_cluster ─► prim::call (transcript: rds::describe_cluster) ─► impl Rds for AwsApi
//!        ─► AwsApi::api(cx, "DescribeDBClusters") ─► Call::traced per attempt (transcript:
//!           aws::rds.DescribeDBClusters #{ attempt }) ─► backoff through Call::sleep ─► retry
//! ```
//!
//! Retries are godwit's, not the SDK's (its retry config is disabled): each attempt is a
//! transcript event, so an operator sees every throttled or failed call and how often it was
//! retried. Long waits are the `wait_until_*` primitives polling `describe_*` through the run's
//! clock; the SDK's waiters (a fixed 30-minute budget) are never used.

pub mod iam;
pub mod settings;
pub mod world;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_rds::error::{ProvideErrorMetadata, SdkError};
use godwit_engine::{Call, ErrorKind, PrimitiveError};
use serde::Serialize;

pub use settings::{AwsSettings, RetryPolicy, TlsMode};

/// The SDK clients of one world, with the settings they were built from.
#[derive(Clone)]
pub struct Aws {
    pub sdk: aws_config::SdkConfig,
    pub rds: aws_sdk_rds::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub cw: aws_sdk_cloudwatch::Client,
    /// Read only for a created cluster's master-user secret ([`iam::IamConnector`]).
    pub secrets: aws_sdk_secretsmanager::Client,
    pub settings: AwsSettings,
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for Aws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aws")
            .field("region", &self.sdk.region())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Aws {
    /// Clients from `settings` and the SDK's standard chains (environment, profile files,
    /// container and instance credentials). `credentials` replaces the credential chain (tests
    /// use static ones). Errors: no region found, or settings that do not validate.
    pub fn connect(
        settings: AwsSettings,
        credentials: Option<aws_sdk_rds::config::Credentials>,
    ) -> Result<Aws, String> {
        settings.validate_complete("aws settings")?;
        let retry = settings.retry_policy("aws settings")?;
        let s = settings.clone();
        // Loading the SDK config is async (profile files, region chain). Worlds are built from
        // synchronous code that may or may not run inside a runtime, so the load runs on its
        // own thread with a throwaway runtime; the clients it returns are runtime-agnostic and
        // do their I/O on the run's runtime (Call::block_on).
        let sdk = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start a runtime to load the AWS config: {e}"))?;
            rt.block_on(async move {
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    // godwit retries (visibly, see AwsApi::api); SDK retries would hide them.
                    .retry_config(aws_sdk_rds::config::retry::RetryConfig::disabled())
                    .timeout_config(
                        aws_sdk_rds::config::timeout::TimeoutConfig::builder()
                            .connect_timeout(Duration::from_secs(5))
                            .operation_attempt_timeout(retry.call_timeout)
                            .build(),
                    );
                if let Some(r) = s.region.clone() {
                    loader = loader.region(aws_config::Region::new(r));
                }
                if let Some(p) = s.profile.clone() {
                    loader = loader.profile_name(p);
                }
                if let Some(u) = s.endpoint_url.clone() {
                    loader = loader.endpoint_url(u);
                }
                if let Some(c) = credentials {
                    loader = loader.credentials_provider(c);
                }
                Ok::<_, String>(loader.load().await)
            })
        })
        .join()
        .map_err(|_| "loading the AWS config panicked".to_string())??;
        if sdk.region().is_none() {
            return Err(
                "no AWS region: set `region` in the [aws] table of --config, or AWS_REGION, or \
                 a region in the AWS profile"
                    .into(),
            );
        }
        Ok(Aws {
            rds: aws_sdk_rds::Client::new(&sdk),
            ec2: aws_sdk_ec2::Client::new(&sdk),
            cw: aws_sdk_cloudwatch::Client::new(&sdk),
            secrets: aws_sdk_secretsmanager::Client::new(&sdk),
            sdk,
            settings,
            retry,
        })
    }

    /// The region the clients talk to.
    pub fn region(&self) -> String {
        self.sdk.region().map(|r| r.to_string()).unwrap_or_default()
    }
}

/// The world's door to AWS: its clients; every call goes through the calling primitive's
/// [`Call`] (deadline, cancellation, transcript). `impl Rds/Ec2/Cw for AwsApi` live in the
/// areas' `aws.rs`.
#[derive(Clone)]
pub struct AwsApi {
    pub aws: Arc<Aws>,
}

/// The answer of one attempt, as the transcript shows it: SDK output types are not
/// serialisable, and the primitive's own event carries the mapped result.
struct Answered<T>(T);

impl<T> Serialize for Answered<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("ok")
    }
}

impl AwsApi {
    /// One AWS API call (`service.Operation`, e.g. `rds.DescribeDBClusters`) for primitive
    /// `area::op`. Throttling, 5xx answers, timeouts and connection failures are retried up to
    /// the policy's attempts with exponential backoff through the run's clock; each attempt is
    /// a transcript event `aws::<api>` with its number. Other errors map to a
    /// [`PrimitiveError`] at once (see [`classify`]).
    pub fn api<T, E, F, Fut>(
        &self,
        cx: &Call<'_>,
        area: &str,
        op: &str,
        api: &str,
        mut call: F,
    ) -> Result<T, PrimitiveError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let policy = self.aws.retry;
        let mut attempt = 1u32;
        loop {
            let args = serde_json::json!({ "for": format!("{area}::{op}"), "attempt": attempt });
            let fut = call();
            let out = cx.traced(
                "aws",
                api,
                &args,
                // The SDK's attempt timeout fires first; this bounds a hung connection setup.
                policy.call_timeout + Duration::from_secs(5),
                async move {
                    fut.await
                        .map(Answered)
                        .map_err(|e| classify(area, op, api, &e))
                },
            );
            match out {
                Ok(Answered(v)) => return Ok(v),
                Err(e) if transient(&e) && attempt < policy.max_attempts => {
                    let delay = backoff(policy, attempt);
                    cx.sleep(delay)?;
                    attempt += 1;
                }
                Err(mut e) => {
                    if attempt > 1 {
                        e.message = format!("{} (after {attempt} attempts)", e.message);
                    }
                    return Err(e);
                }
            }
        }
    }
}

/// Worth another attempt within the call: throttling, 5xx, timeouts and connection failures.
/// A resource in the wrong state is retryable too, but by the step (minutes later), not here:
/// half a second will not move a `modifying` instance on.
fn transient(e: &PrimitiveError) -> bool {
    let cancelled = e.message == "cancelled by the operator";
    e.retryable
        && !cancelled
        && matches!(
            e.kind,
            ErrorKind::Throttled | ErrorKind::Timeout | ErrorKind::Internal
        )
}

/// Backoff before attempt `attempt + 1`: `backoff × 2^(attempt-1)`, capped, with up to 25 %
/// jitter so many runs throttled together do not retry in lockstep.
fn backoff(p: RetryPolicy, attempt: u32) -> Duration {
    let base = p
        .backoff
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(p.backoff_max);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    base + base.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

/// Error codes AWS uses for throttling, across RDS (query), EC2 and CloudWatch.
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Codes that mean "no such thing".
const NOT_FOUND: &[&str] = &[
    "DBInstanceNotFound",
    "DBInstanceNotFoundFault",
    "DBClusterNotFoundFault",
    "DBParameterGroupNotFound",
    "DBParameterGroupNotFoundFault",
    "DBClusterParameterGroupNotFound",
    "DBClusterParameterGroupNotFoundFault",
    "DBSnapshotNotFound",
    "DBSnapshotNotFoundFault",
    "DBSubnetGroupNotFoundFault",
    "InvalidGroup.NotFound",
    "InvalidVpcID.NotFound",
    "ResourceNotFound",
    "ResourceNotFoundException",
];

/// Codes that mean "the resource is in a state that does not allow this now": retryable,
/// because the state usually moves on (a `modifying` instance becomes `available`).
const WRONG_STATE: &[&str] = &[
    "InvalidDBInstanceState",
    "InvalidDBInstanceStateFault",
    "InvalidDBClusterStateFault",
    "InvalidDBSnapshotState",
    "InvalidDBSnapshotStateFault",
    "InvalidDBParameterGroupState",
    "InvalidDBParameterGroupStateFault",
];

/// The [`PrimitiveError`] for an SDK error of `api` called for `area::op`.
///
/// | SDK error                                   | kind        | retryable |
/// |---------------------------------------------|-------------|-----------|
/// | throttling code (`Throttling`, `RequestLimitExceeded`, ...) or HTTP 429 | `Throttled` | yes |
/// | HTTP 5xx                                    | `Internal`  | yes       |
/// | timeout, connection failure                 | `Timeout`   | yes       |
/// | `*NotFound*` codes, HTTP 404 without a code | `NotFound`  | no        |
/// | `*AlreadyExists*`, `*Duplicate*`            | `Conflict`  | no        |
/// | wrong state (`InvalidDBInstanceState`, ...) | `Conflict`  | yes       |
/// | `InvalidParameter*`, `ValidationError`, other 4xx | `Invalid` | no     |
/// | credentials / signature / access denied     | `Invalid`   | no        |
pub fn classify<E>(area: &str, op: &str, api: &str, e: &SdkError<E>) -> PrimitiveError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().unwrap_or("").to_string();
    let text = e.message().unwrap_or("").to_string();
    let said = |what: &str| {
        let mut m = format!("{api} {what}");
        if !code.is_empty() {
            m.push_str(&format!(" ({code}"));
            if !text.is_empty() {
                m.push_str(&format!(": {text}"));
            }
            m.push(')');
        } else if let Some(s) = status {
            m.push_str(&format!(" (HTTP {s})"));
        }
        m
    };
    let new = |kind, what: &str, hint: &str| PrimitiveError::new(area, op, kind, said(what), hint);
    match e {
        SdkError::TimeoutError(_) => {
            return new(
                ErrorKind::Timeout,
                "timed out",
                "AWS did not answer in time; godwit retries (max_attempts, call_timeout)",
            );
        }
        SdkError::DispatchFailure(d) => {
            let why = error_chain(e);
            if d.is_user() {
                return PrimitiveError::new(
                    area,
                    op,
                    ErrorKind::Invalid,
                    format!("{api} could not be sent: {why}"),
                    "check the credentials (AWS_PROFILE, profile = ...) and endpoint_url",
                );
            }
            return PrimitiveError::new(
                area,
                op,
                ErrorKind::Timeout,
                format!("{api} could not reach AWS: {why}"),
                "check network access to the endpoint (VPC endpoint, proxy, endpoint_url)",
            );
        }
        SdkError::ConstructionFailure(_) => {
            let why = error_chain(e);
            return PrimitiveError::new(
                area,
                op,
                ErrorKind::Invalid,
                format!("{api} request could not be built: {why}"),
                "an argument is malformed; see the primitive's reference",
            );
        }
        _ => {}
    }
    if THROTTLING.contains(&code.as_str()) || status == Some(429) {
        return new(
            ErrorKind::Throttled,
            "was throttled",
            "AWS rate-limits the account; godwit backs off and retries (max_attempts, retry_backoff)",
        );
    }
    if status.is_some_and(|s| s >= 500) {
        return new(
            ErrorKind::Internal,
            "failed on the AWS side",
            "a server error on AWS's side; godwit retries",
        )
        .with_retryable(true);
    }
    if NOT_FOUND.contains(&code.as_str())
        || code.ends_with("NotFound")
        || code.ends_with("NotFoundFault")
        || (code.is_empty() && status == Some(404))
    {
        return new(
            ErrorKind::NotFound,
            "found nothing",
            "check the identifier and the region",
        );
    }
    if code.contains("AlreadyExists") || code.contains("Duplicate") {
        return new(
            ErrorKind::Conflict,
            "conflicts with an existing resource",
            "choose another identifier, or delete the existing resource",
        );
    }
    if WRONG_STATE.contains(&code.as_str()) {
        return new(
            ErrorKind::Conflict,
            "is not possible in the resource's current state",
            "wait until it is available (the wait_until_* primitives), then retry",
        )
        .with_retryable(true);
    }
    if code.contains("AccessDenied")
        || code.contains("UnauthorizedOperation")
        || code.contains("SignatureDoesNotMatch")
        || code.contains("InvalidClientTokenId")
        || code.contains("ExpiredToken")
        || code.contains("AuthFailure")
    {
        return new(
            ErrorKind::Invalid,
            "was refused",
            "the credentials lack a permission or are expired; docs/aws.md lists the IAM actions godwit needs",
        );
    }
    if status.is_some_and(|s| (400..500).contains(&s)) || !code.is_empty() {
        return new(
            ErrorKind::Invalid,
            "was rejected",
            "AWS rejected the request as given; the message says which argument",
        );
    }
    let why = error_chain(e);
    PrimitiveError::new(
        area,
        op,
        ErrorKind::Internal,
        format!("{api} failed: {why}"),
        "an unexpected answer from AWS; retry, and report it if it persists",
    )
}

/// An error and its causes in words, `outer: cause: root cause`. Not the SDK's
/// `DisplayErrorContext`, which appends the whole error's `Debug` form
/// (`DispatchFailure(DispatchFailure { source: ConnectorError …`) to what operators read.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        // Wrappers often repeat their cause's text: say each thing once.
        if !text.is_empty() && !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// Last path segment of an ARN (`arn:aws:rds:r:a:cluster:orders-aurora` → `orders-aurora`), or
/// the input when it is an identifier already.
pub fn arn_id(s: &str) -> String {
    if s.starts_with("arn:") {
        s.rsplit(':').next().unwrap_or(s).to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_bounded_jitter() {
        let p = RetryPolicy {
            max_attempts: 5,
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_millis(350),
            call_timeout: Duration::from_secs(1),
        };
        for (attempt, base) in [(1, 100), (2, 200), (3, 350), (9, 350)] {
            let d = backoff(p, attempt).as_millis();
            assert!(
                (base..=base + base / 4).contains(&d),
                "attempt {attempt}: {d}"
            );
        }
    }

    /// Issue 18: Rust `Debug` text reached operators (`DispatchFailure(DispatchFailure { source:
    /// ConnectorError …`) through the SDK's DisplayErrorContext.
    #[test]
    fn a_connection_failure_is_told_in_words_not_debug_output() {
        use aws_sdk_rds::error::ConnectorError;
        use aws_sdk_rds::operation::describe_db_instances::DescribeDBInstancesError;
        let refused =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let e: SdkError<DescribeDBInstancesError, aws_sdk_rds::config::http::HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io(Box::new(refused)));
        let p = classify("rds", "describe_instance", "rds.DescribeDBInstances", &e);
        assert!(p.message.contains("connection refused"), "{}", p.message);
        for debug in ["DispatchFailure(", "ConnectorError {", "source:", "{ "] {
            assert!(!p.message.contains(debug), "{}", p.message);
        }
    }

    #[test]
    fn arns_become_ids() {
        assert_eq!(
            arn_id("arn:aws:rds:eu-west-1:1:cluster:orders-aurora"),
            "orders-aurora"
        );
        assert_eq!(arn_id("orders-aurora"), "orders-aurora");
    }
}
