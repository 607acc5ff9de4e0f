//! The webhook function's edge: a Stripe delivery (a Function URL request) in, an HTTP answer
//! out. The checks run before anything reads the body: method, size, then the signature over
//! the raw bytes ([`crate::signature`]); only a genuine delivery is parsed and handed to the use
//! case (`stockbridge_app::inbound`). Answers never carry internals (they stay in the log, with
//! the request id).
//!
//! Why apply before answering and not enqueue first: the handlers are idempotent, fast (one
//! conditional write on the common path, no Stripe call for a Payment Link's order) and the same
//! ones EventBridge feeds, so Stripe's own retries (3 days, live mode) are the durable queue: a
//! failure that may pass answers 500 and Stripe delivers the event again; one that never can is
//! parked with its reason and answered 200, so Stripe stops. A queue in front would add a
//! service, a consumer and a second retry policy to answer perhaps 50 ms sooner. Catalog events
//! are the exception: they go to the catalog sync's queue, as EventBridge's rule sends them.

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use aws_lambda_events::http::HeaderValue;
use base64::Engine;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use stockbridge_app::inbound::Delivered;
use stockbridge_app::orders::{Handled, Services};
use stockbridge_app::ports::{
    CatalogQueue, Clock, InventoryStore, ParkingLot, Payments, ReconciliationLog, StockPublisher,
    StripeObjects,
};

use crate::signature::{Secrets, verify};

/// What the edge needs besides the use case.
pub struct Endpoint<'a, Q> {
    /// The endpoint's signing secrets.
    pub secrets: &'a Secrets,
    /// The catalog sync's queue.
    pub catalog: &'a Q,
    /// A larger body is refused before its signature is checked.
    pub max_body_bytes: usize,
}

/// One delivery.
///
/// # Errors
/// Never: every outcome is an HTTP answer.
pub async fn handle<S, P, Y, C, Q>(
    services: &Services<S, P, Y, C>,
    endpoint: &Endpoint<'_, Q>,
    event: LambdaEvent<LambdaFunctionUrlRequest>,
) -> Result<LambdaFunctionUrlResponse, Diagnostic>
where
    S: InventoryStore + ReconciliationLog + ParkingLot,
    P: StockPublisher,
    Y: Payments + StripeObjects,
    C: Clock,
    Q: CatalogQueue,
{
    let request_id = &event.context.request_id;
    let event = match accept(&event.payload, endpoint, services.clock().now().0 / 1000) {
        Ok(e) => e,
        Err(early) => return Ok(*early),
    };
    let id = event
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    Ok(match services.deliver(&event, endpoint.catalog).await {
        Ok(delivered) => {
            tracing::info!(stripe_event_id = %id, outcome = ?delivered, "webhook event handled");
            answer(200, &json!({"status": status(&delivered)}))
        }
        Err(e) => {
            tracing::error!(stripe_event_id = %id, error = %e, %request_id, "webhook event failed: Stripe will deliver it again");
            answer(
                500,
                &json!({"error": "unavailable", "message": "not handled this time; deliver it again", "request_id": request_id}),
            )
        }
    })
}

/// The request's checks, in order: method, size, signature, JSON. A refused delivery is
/// answered at once.
fn accept<Q>(
    req: &LambdaFunctionUrlRequest,
    endpoint: &Endpoint<'_, Q>,
    now: i64,
) -> Result<Value, Box<LambdaFunctionUrlResponse>> {
    let refuse = |status: i64, error: &str, message: &str| {
        Box::new(answer(status, &json!({"error": error, "message": message})))
    };
    if req.request_context.http.method.as_deref() != Some("POST") {
        return Err(refuse(
            405,
            "method_not_allowed",
            "Stripe delivers with POST",
        ));
    }
    let raw = req.body.as_deref().unwrap_or_default();
    // The encoded size bounds the work before decoding (base64 is 4/3 of the bytes).
    if raw.len() > endpoint.max_body_bytes.saturating_mul(4) / 3 + 4 {
        return Err(refuse(
            413,
            "too_large",
            "the body is larger than a Stripe event",
        ));
    }
    let body = if req.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|_| refuse(400, "bad_body", "the body is not valid base64"))?
    } else {
        raw.as_bytes().to_vec()
    };
    if body.len() > endpoint.max_body_bytes {
        return Err(refuse(
            413,
            "too_large",
            "the body is larger than a Stripe event",
        ));
    }
    let header = req
        .headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    if let Err(e) = verify(&body, header, endpoint.secrets, now) {
        tracing::warn!(reason = %e, "webhook delivery refused: bad signature");
        // Counted and alarmed on: Stripe's own deliveries refused mean a wrong or missing
        // secret (a second destination's, a rotation), and Stripe will give up after 3 days.
        println!(
            "{}",
            refused_line(std::time::SystemTime::now(), &e.to_string())
        );
        return Err(refuse(
            400,
            "bad_signature",
            "the Stripe-Signature header does not verify",
        ));
    }
    serde_json::from_slice(&body).map_err(|_| refuse(400, "bad_body", "the body is not JSON"))
}

/// One refused delivery, as a CloudWatch embedded-metric-format line (namespace `stockbridge`,
/// metric `WebhookSignatureRefused`, no dimension).
fn refused_line(at: std::time::SystemTime, reason: &str) -> String {
    stockbridge_app::metrics::count_line(
        "WebhookSignatureRefused",
        1,
        at,
        json!({"level": "WARN", "message": format!("webhook delivery refused: {reason}")}),
    )
}

/// What the answer says of a handled event (Stripe shows it in the Dashboard).
fn status(d: &Delivered) -> &'static str {
    match d {
        Delivered::Handled(Handled::Applied { .. }) => "applied",
        Delivered::Handled(Handled::Refused) => "refused",
        Delivered::Handled(Handled::Ignored) | Delivered::Ignored(_) => "ignored",
        Delivered::ForCatalog => "queued_for_catalog_sync",
        Delivered::Ping => "healthy",
        Delivered::Recovered(_) => "rechecked",
        Delivered::Parked(_) => "parked",
    }
}

fn answer(status: i64, body: &Value) -> LambdaFunctionUrlResponse {
    let mut r = LambdaFunctionUrlResponse::default();
    r.status_code = status;
    r.headers
        .insert("content-type", HeaderValue::from_static("application/json"));
    r.body = Some(body.to_string());
    r
}

#[cfg(test)]
mod tests;
