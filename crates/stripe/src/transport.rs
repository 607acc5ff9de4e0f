//! The HTTP transport under async-stripe's typed requests.
//!
//! async-stripe 1.0.0-rc.10's own hyper client keeps no idle connections
//! (`pool_max_idle_per_host(0)`: a TCP+TLS handshake per call) and drops response headers, so
//! `Retry-After` cannot be honoured through it. Its request types are generic over
//! [`StripeClient`], so this module implements that trait over the same hyper / rustls stack:
//! - one pooled connection set per process (warm Lambdas reuse it);
//! - exactly one HTTP attempt per `execute` (retries are the adapter's, with backoff and
//!   `Retry-After`), sending the request strategy's idempotency key;
//! - a token bucket shared by every call of the process, so a function never exceeds its share
//!   of Stripe's rate limit;
//! - errors that keep the status, Stripe's error code and message, `Retry-After` and
//!   `Stripe-Should-Retry`.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use stripe_client_core::{CustomizedStripeRequest, StripeClient, StripeClientErr, StripeMethod};

/// Why one Stripe HTTP attempt failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// Stripe answered with an error status.
    #[error("HTTP {status}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// Stripe's error code (`rate_limit`, `resource_missing`, ...).
        code: Option<String>,
        /// Stripe's error type (`invalid_request_error`, `idempotency_error`, `card_error`, ...).
        kind: Option<String>,
        /// Stripe's message.
        message: String,
        /// `Retry-After`, if sent.
        retry_after: Option<Duration>,
        /// `Stripe-Should-Retry`, if sent.
        should_retry: Option<bool>,
    },
    /// The connection failed.
    #[error("connection failed: {0}")]
    Connection(String),
    /// No answer within the timeout.
    #[error("timed out")]
    Timeout,
    /// The answer could not be decoded.
    #[error("unusable answer: {0}")]
    Decode(String),
}

impl StripeClientErr for TransportError {
    fn deserialize_err(msg: impl std::fmt::Display) -> Self {
        Self::Decode(msg.to_string())
    }
}

/// A token bucket: `rate` requests per second on average, bursts up to `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// A bucket that starts full.
    pub fn new(rate_per_second: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: rate_per_second.max(0.001),
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes one token, waiting until one is available.
    pub async fn acquire(&self) {
        if let Some(wait) = self.reserve(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes a token now (possibly going into debt) and says how long to wait before using it.
    /// Debt keeps waiters in arrival order without a queue.
    fn reserve(&self, now: Instant) -> Option<Duration> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = *s;
        let refilled = (tokens + now.saturating_duration_since(last).as_secs_f64() * self.rate)
            .min(self.burst);
        let left = refilled - 1.0;
        *s = (left, now);
        (left < 0.0).then(|| Duration::from_secs_f64(-left / self.rate))
    }
}

/// The pooled, rate-limited transport. Clones share the pool and the bucket.
#[derive(Clone)]
pub struct Transport {
    client: HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    api_base: String,
    auth: HeaderValue,
    timeout: Duration,
    limiter: std::sync::Arc<RateLimiter>,
    /// The deployment's shared budget (`budget.rs`), when configured.
    budget: Option<crate::budget::Budget>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A transport for `api_base` (`https://api.stripe.com/`), authenticating with `api_key`.
    ///
    /// # Errors
    /// A message (never containing the key) when the key cannot be a header.
    pub fn new(
        api_key: &str,
        api_base: &str,
        timeout: Duration,
        limiter: RateLimiter,
    ) -> Result<Self, String> {
        let mut auth = HeaderValue::from_str(&format!("Bearer {api_key}"))
            .map_err(|_| "the API key contains characters a header cannot carry".to_owned())?;
        auth.set_sensitive(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        Ok(Self {
            client: HyperClient::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(60))
                .build(connector),
            api_base: format!("{}/", api_base.trim_end_matches('/')),
            auth,
            timeout,
            limiter: std::sync::Arc::new(limiter),
            budget: None,
        })
    }

    /// The same transport, taking a slot of the deployment's shared budget before each attempt.
    #[must_use]
    pub fn with_budget(mut self, budget: Option<crate::budget::Budget>) -> Self {
        self.budget = budget;
        self
    }

    async fn attempt(&self, req: CustomizedStripeRequest) -> Result<Bytes, TransportError> {
        let (req, config) = req.into_pieces();
        // This process's own pace first, then the deployment's slot: a slot taken and then
        // waited on here would be spent in a later quarter second than it was counted in.
        self.limiter.acquire().await;
        if let Some(budget) = &self.budget {
            budget.admit(&req.method, &req.path).await?;
        }
        let endpoint = crate::budget::endpoint(&req.method, &req.path);
        let mut path = format!("v1{}", req.path);
        if let Some(q) = req.query.filter(|q| !q.is_empty()) {
            path.push('?');
            path.push_str(&q);
        }
        let key = config
            .request_strategy
            .as_ref()
            .and_then(|s| s.get_key())
            .map(|k| k.as_str().to_owned());
        let timeout = config.timeout.unwrap_or(self.timeout);
        self.exchange(
            &req.method,
            &path,
            key.as_deref(),
            req.body,
            timeout,
            &endpoint,
        )
        .await
    }

    /// One request outside async-stripe's typed requests, for what it has no types for:
    /// Stripe's v2 API (`v2/core/event_destinations`) and the preflight's permission probes.
    /// An exception to the typed-client rule, kept to these reads and parameterless probes.
    /// `path` is relative to the API base and starts with the version (`v2/...`, `v1/...`).
    ///
    /// # Errors
    /// [`TransportError`] as for any call (the status and Stripe's message included).
    pub async fn raw(&self, method: StripeMethod, path: &str) -> Result<Bytes, TransportError> {
        let endpoint = crate::budget::endpoint(&method, path.trim_start_matches("v1"));
        self.limiter.acquire().await;
        self.exchange(&method, path, None, None, self.timeout, &endpoint)
            .await
    }

    async fn exchange(
        &self,
        method: &StripeMethod,
        path: &str,
        idempotency_key: Option<&str>,
        body: Option<String>,
        timeout: Duration,
        endpoint: &str,
    ) -> Result<Bytes, TransportError> {
        let method = match method {
            StripeMethod::Get => hyper::Method::GET,
            StripeMethod::Post => hyper::Method::POST,
            StripeMethod::Delete => hyper::Method::DELETE,
        };
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.api_base))
            .header(AUTHORIZATION, self.auth.clone())
            // The API version async-stripe's typed requests are generated for.
            .header("stripe-version", stripe_shared::version::VERSION.as_str())
            .header(
                "user-agent",
                concat!("stockbridge/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(key) = idempotency_key {
            builder = builder.header("idempotency-key", key);
        }
        let body = match body {
            Some(b) => {
                builder = builder.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
                Bytes::from(b)
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(Full::new(body))
            .map_err(|e| TransportError::Connection(e.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| TransportError::Connection(e.to_string()))?;
            let status = response.status();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let retry_after = header("retry-after")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Duration::from_secs_f64(s.min(60.0)));
            let should_retry = header("stripe-should-retry").and_then(|v| v.parse().ok());
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| TransportError::Connection(e.to_string()))?
                .to_bytes();
            Ok::<_, TransportError>((status, retry_after, should_retry, bytes))
        };
        let (status, retry_after, should_retry, bytes) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| TransportError::Timeout)??;
        if status.is_success() {
            return Ok(bytes);
        }
        if status.as_u16() == 429 {
            rate_limited_metric(endpoint);
        }
        let error: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let field = |name: &str| {
            error
                .pointer(&format!("/error/{name}"))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        Err(TransportError::Api {
            status: status.as_u16(),
            code: field("code"),
            kind: field("type"),
            message: field("message").unwrap_or_else(|| format!("HTTP {status}")),
            retry_after,
            should_retry,
        })
    }
}

/// A Stripe 429, as one CloudWatch embedded-metric-format line (namespace `stockbridge`, metric
/// `StripeRateLimited`, no dimension, so every function adds to one metric the template alarms
/// on). Printed only inside Lambda, where stdout is the log: the CLI's output stays clean.
fn rate_limited_metric(endpoint: &str) {
    let Ok(function) = std::env::var("AWS_LAMBDA_FUNCTION_NAME") else {
        return;
    };
    println!(
        "{}",
        rate_limited_line(&function, endpoint, std::time::SystemTime::now())
    );
}

fn rate_limited_line(function: &str, endpoint: &str, now: std::time::SystemTime) -> String {
    stockbridge_app::metrics::count_line(
        "StripeRateLimited",
        1,
        now,
        serde_json::json!({
            "level": "WARN",
            "message": "Stripe answered 429",
            "function": function,
            "endpoint": endpoint,
        }),
    )
}

impl StripeClient for Transport {
    type Err = TransportError;

    fn execute(
        &self,
        req: CustomizedStripeRequest,
    ) -> impl Future<Output = Result<Bytes, Self::Err>> + Send {
        self.attempt(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_is_one_count_of_one_metric_for_every_function() {
        let line = rate_limited_line("inventory", "POST /refunds", std::time::UNIX_EPOCH);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let m = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(m["Namespace"], "stockbridge");
        assert_eq!(m["Dimensions"], serde_json::json!([[]]));
        assert_eq!(m["Metrics"][0]["Name"], "StripeRateLimited");
        assert_eq!(v["StripeRateLimited"], 1);
        assert_eq!(v["level"], "WARN");
    }

    #[test]
    fn the_bucket_allows_a_burst_then_spaces_calls_at_the_rate() {
        let limiter = RateLimiter::new(10.0, 2);
        let t0 = Instant::now();
        assert_eq!(limiter.reserve(t0), None);
        assert_eq!(limiter.reserve(t0), None);
        // Empty: the third waits one interval, the fourth two.
        let w3 = limiter.reserve(t0).unwrap();
        let w4 = limiter.reserve(t0).unwrap();
        assert!((w3.as_secs_f64() - 0.1).abs() < 1e-9, "{w3:?}");
        assert!((w4.as_secs_f64() - 0.2).abs() < 1e-9, "{w4:?}");
        // After a long pause it is full again, never fuller than the burst.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(limiter.reserve(later), None);
        assert_eq!(limiter.reserve(later), None);
        assert!(limiter.reserve(later).is_some());
    }

    #[test]
    fn over_a_second_no_more_than_rate_plus_burst_go_through() {
        let limiter = RateLimiter::new(25.0, 5);
        let t0 = Instant::now();
        let within_a_second = (0..100)
            .filter(|_| {
                limiter
                    .reserve(t0)
                    .is_none_or(|w| w <= Duration::from_secs(1))
            })
            .count();
        assert_eq!(within_a_second, 30);
    }
}
