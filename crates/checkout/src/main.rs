//! The `checkout` Lambda behind a Function URL: `POST /checkout` with
//! `{store_id, items: [{product_id, quantity}], customer_email?}` and an `Idempotency-Key`
//! header. Holds every line (all or none) for `CHECKOUT_HOLD_SECONDS`, then creates a
//! PaymentIntent with `capture_method=manual` for the catalog's prices; answers
//! `{client_secret, hold_id, expires_at, amount, currency}`. 400 names the bad field, 409 says
//! what is available, 503 means retry with the same key. CORS for `CHECKOUT_ALLOWED_ORIGINS`.
//! All logic lives in `stockbridge-app` (`holds`); this crate is the HTTP edge.

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use aws_lambda_events::http::{HeaderMap, HeaderValue};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};
use stockbridge_app::holds::caps::client_key;
use stockbridge_app::holds::{
    CheckoutReply, RequestError, idempotency_key, parse_request, shortfall_body,
};
use stockbridge_app::message::rfc3339;
use stockbridge_bootstrap::{CheckoutSettings, Config, LiveInventory};

struct Function {
    inventory: LiveInventory,
    settings: CheckoutSettings,
}

fn response(status: i64, body: &Value, cors: &HeaderMap) -> LambdaFunctionUrlResponse {
    let mut r = LambdaFunctionUrlResponse::default();
    r.status_code = status;
    r.headers = cors.clone();
    r.headers
        .insert("content-type", HeaderValue::from_static("application/json"));
    r.headers
        .insert("cache-control", HeaderValue::from_static("no-store"));
    r.body = Some(body.to_string());
    r
}

fn invalid(e: &RequestError) -> Value {
    json!({"error": "invalid_request", "field": e.field, "message": e.message})
}

impl Function {
    /// CORS headers for an allowed `Origin` (`None`: the origin is not allowed).
    fn cors(&self, headers: &HeaderMap) -> Option<HeaderMap> {
        let mut out = HeaderMap::new();
        let Some(origin) = headers.get("origin").and_then(|o| o.to_str().ok()) else {
            return Some(out); // not a browser cross-origin call
        };
        let allowed = &self.settings.allowed_origins;
        if !allowed.iter().any(|a| a == "*" || a == origin) {
            return None;
        }
        out.insert(
            "access-control-allow-origin",
            HeaderValue::from_str(origin).ok()?,
        );
        out.insert("vary", HeaderValue::from_static("Origin"));
        out.insert(
            "access-control-expose-headers",
            HeaderValue::from_static("retry-after"),
        );
        Some(out)
    }

    async fn handle(
        &self,
        event: LambdaEvent<LambdaFunctionUrlRequest>,
    ) -> Result<LambdaFunctionUrlResponse, Error> {
        let req = event.payload;
        let method = req
            .request_context
            .http
            .method
            .as_ref()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default();
        let path = req.raw_path.clone().unwrap_or_default();
        let Some(mut cors) = self.cors(&req.headers) else {
            return Ok(response(
                403,
                &json!({"error": "origin_not_allowed", "message": "this origin may not call the checkout API (CHECKOUT_ALLOWED_ORIGINS)"}),
                &HeaderMap::new(),
            ));
        };
        if path.trim_end_matches('/') != "/checkout" {
            return Ok(response(
                404,
                &json!({"error": "not_found", "message": "POST /checkout"}),
                &cors,
            ));
        }
        if method == "OPTIONS" {
            cors.insert(
                "access-control-allow-methods",
                HeaderValue::from_static("POST, OPTIONS"),
            );
            cors.insert(
                "access-control-allow-headers",
                HeaderValue::from_static("content-type, idempotency-key"),
            );
            cors.insert("access-control-max-age", HeaderValue::from_static("600"));
            let mut r = response(204, &json!({}), &cors);
            r.body = None;
            return Ok(r);
        }
        if method != "POST" {
            return Ok(response(
                405,
                &json!({"error": "method_not_allowed", "message": "use POST"}),
                &cors,
            ));
        }
        let body = match (req.body.as_deref(), req.is_base64_encoded) {
            (None, _) => Vec::new(),
            (Some(b), false) => b.as_bytes().to_vec(),
            // Function URLs base64-encode non-text bodies; JSON is text, so refuse it.
            (Some(_), true) => {
                return Ok(response(
                    415,
                    &json!({"error": "unsupported_media_type", "message": "send application/json"}),
                    &cors,
                ));
            }
        };
        if body.len() > self.settings.max_body_bytes {
            return Ok(response(
                413,
                &json!({"error": "too_large", "message": format!("the body is limited to {} bytes", self.settings.max_body_bytes)}),
                &cors,
            ));
        }
        let json_type = req
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        if !json_type {
            return Ok(response(
                415,
                &json!({"error": "unsupported_media_type", "field": "Content-Type", "message": "send application/json"}),
                &cors,
            ));
        }
        let key = match idempotency_key(
            req.headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok()),
        ) {
            Ok(k) => k,
            Err(e) => return Ok(response(400, &invalid(&e), &cors)),
        };
        let mut request = match parse_request(&body, &self.settings.limits) {
            Ok(r) => r,
            Err(e) => return Ok(response(400, &invalid(&e), &cors)),
        };
        // The TCP peer as Lambda saw it: no header a client could forge (docs/checkout.md).
        request.client = req
            .request_context
            .http
            .source_ip
            .as_deref()
            .and_then(client_key);
        let request_id = event.context.request_id.clone();
        let time = time_for_holding(event.context.deadline);
        Ok(
            match self
                .inventory
                .checkout(&request, &key, &self.settings.limits, time)
                .await
            {
                Ok(CheckoutReply::Held {
                    client_secret,
                    hold_id,
                    expires_at,
                    amount,
                    currency,
                }) => response(
                    200,
                    &json!({
                        "client_secret": client_secret.0,
                        "hold_id": hold_id.as_str(),
                        "expires_at": rfc3339(expires_at),
                        "amount": amount,
                        "currency": currency,
                    }),
                    &cors,
                ),
                Ok(CheckoutReply::Short(s)) => response(409, &shortfall_body(&s), &cors),
                Ok(CheckoutReply::Released(hold)) => response(
                    410,
                    &json!({"error": "hold_released", "hold_id": hold.as_str(), "message": "this checkout's hold is settled (released, paid or cancelled): start a new checkout with a new Idempotency-Key"}),
                    &cors,
                ),
                Ok(CheckoutReply::Invalid(e)) => response(400, &invalid(&e), &cors),
                Ok(CheckoutReply::Limited {
                    retry_after,
                    reason,
                }) => {
                    let mut r = response(
                        429,
                        &json!({"error": "too_many_checkouts", "message": reason, "retry_after": retry_after}),
                        &cors,
                    );
                    r.headers
                        .insert("retry-after", HeaderValue::from(retry_after));
                    r
                }
                // Stripe's reason is in the log (with the request id), never in the answer.
                Ok(CheckoutReply::Refused(hold)) => response(
                    402,
                    &json!({"error": "payment_refused", "hold_id": hold.as_str(), "request_id": request_id, "message": "the payment for this cart could not be set up; nothing is held. Check the e-mail address and the cart, then start a new checkout with a new Idempotency-Key"}),
                    &cors,
                ),
                Err(e) => {
                    // Internals (AWS and Stripe messages, names) stay in the log.
                    tracing::error!(error = %e, %request_id, "checkout failed");
                    let mut r = response(
                        503,
                        &json!({"error": "unavailable", "request_id": request_id, "message": "the checkout is busy or unavailable; retry with the same Idempotency-Key"}),
                        &cors,
                    );
                    r.headers
                        .insert("retry-after", HeaderValue::from_static("1"));
                    r
                }
            },
        )
    }
}

/// How long the hold may retry conflicts: what is left of the invocation, less time for the
/// Stripe call and the answer. `deadline` is the Lambda's, in ms since the epoch.
fn time_for_holding(deadline: u64) -> std::time::Duration {
    /// Kept for creating the PaymentIntent (the Stripe client's own timeout) and answering.
    const RESERVE_MS: u64 = 6_000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    std::time::Duration::from_millis(deadline.saturating_sub(now).saturating_sub(RESERVE_MS))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let settings = CheckoutSettings::from_env()?;
    if std::env::var("CHECKOUT_STRIPE_KEY_SHARED").is_ok_and(|v| v == "true") {
        // Least privilege: a public function should hold a key that can only make
        // PaymentIntents and switch links (docs/checkout.md, "Its own Stripe key").
        tracing::warn!(
            "the checkout runs on the main Stripe key: set CheckoutStripeSecretArn to a restricted key (PaymentIntents: Write, Payment Links: Write)"
        );
    }
    let function = Function {
        inventory: stockbridge_bootstrap::inventory(&config).await?,
        settings,
    };
    let function = &function;
    lambda_runtime::run(service_fn(move |event| function.handle(event))).await
}
