//! The checkout's HTTP edge, without the use case: CORS, routing, the request's checks in the
//! order a client can fix them (origin, path, method, body encoding and size, content type,
//! `Idempotency-Key`, body), and the answer for each outcome. Internals (AWS and Stripe
//! messages, names) never reach an answer: they stay in the log with the request id.

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use aws_lambda_events::http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use stockbridge_app::message::rfc3339;
use stockbridge_app::reservations::caps::client_key;
use stockbridge_app::reservations::{
    RequestError, ReservationReply, ReservationRequest, idempotency_key, parse_request,
    shortfall_body,
};
use stockbridge_bootstrap::CheckoutSettings;
use stockbridge_domain::StoreId;

/// A JSON answer with the CORS headers, never cached.
pub fn response(status: i64, body: &Value, cors: &HeaderMap) -> LambdaFunctionUrlResponse {
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

/// [`response`] with a `Retry-After` of `seconds` (429 and 503 answers).
pub fn retry_later(
    status: i64,
    body: &Value,
    cors: &HeaderMap,
    seconds: u32,
) -> LambdaFunctionUrlResponse {
    let mut r = response(status, body, cors);
    r.headers.insert("retry-after", HeaderValue::from(seconds));
    r
}

/// [`response`], boxed: an answer given before the use case runs.
fn early(status: i64, body: &Value, cors: &HeaderMap) -> Box<LambdaFunctionUrlResponse> {
    Box::new(response(status, body, cors))
}

pub(crate) fn invalid(e: &RequestError) -> Value {
    json!({"error": "invalid_request", "field": e.field, "message": e.message})
}

/// CORS headers for the request's `Origin`: empty without one (not a browser's cross-origin
/// call), `None` when the origin is not in `allowed` (`*` allows any).
pub fn cors(allowed: &[String], headers: &HeaderMap) -> Option<HeaderMap> {
    let mut out = HeaderMap::new();
    let Some(origin) = headers.get("origin").and_then(|o| o.to_str().ok()) else {
        return Some(out);
    };
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

/// The checks every JSON `POST` of a browser's goes through, in the order a client can fix
/// them: origin, path (`on_path`: the route matched), the `OPTIONS` preflight, method, body
/// encoding and size, content type. The CORS headers and the body, or the answer.
pub fn json_post<'r>(
    req: &'r LambdaFunctionUrlRequest,
    settings: &CheckoutSettings,
    on_path: bool,
) -> Result<(HeaderMap, &'r [u8]), Box<LambdaFunctionUrlResponse>> {
    let method = req.request_context.http.method.as_deref();
    let Some(mut cors) = cors(&settings.allowed_origins, &req.headers) else {
        return Err(early(
            403,
            &json!({"error": "origin_not_allowed", "message": "this origin may not call the checkout API (CHECKOUT_ALLOWED_ORIGINS)"}),
            &HeaderMap::new(),
        ));
    };
    if !on_path {
        return Err(early(
            404,
            &json!({"error": "not_found", "message": "POST /checkout, POST /waitlist"}),
            &cors,
        ));
    }
    if method == Some("OPTIONS") {
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
        return Err(Box::new(r));
    }
    if method != Some("POST") {
        return Err(early(
            405,
            &json!({"error": "method_not_allowed", "message": "use POST"}),
            &cors,
        ));
    }
    let body = match (req.body.as_deref(), req.is_base64_encoded) {
        (None, _) => &b""[..],
        (Some(b), false) => b.as_bytes(),
        // Function URLs base64-encode non-text bodies; JSON is text, so refuse it.
        (Some(_), true) => {
            return Err(early(
                415,
                &json!({"error": "unsupported_media_type", "message": "send application/json"}),
                &cors,
            ));
        }
    };
    if body.len() > settings.max_body_bytes {
        return Err(early(
            413,
            &json!({"error": "too_large", "message": format!("the body is limited to {} bytes", settings.max_body_bytes)}),
            &cors,
        ));
    }
    let json_type = req
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !json_type {
        return Err(early(
            415,
            &json!({"error": "unsupported_media_type", "field": "Content-Type", "message": "send application/json"}),
            &cors,
        ));
    }
    Ok((cors, body))
}

/// A request that passed every check: what the use case needs, and the CORS headers for its
/// answer.
#[derive(Debug)]
pub struct Accepted {
    /// The CORS headers.
    pub cors: HeaderMap,
    /// The `Idempotency-Key`.
    pub key: String,
    /// The cart, with the TCP peer as the client.
    pub request: ReservationRequest,
}

/// Routes and checks a request: [`Accepted`], or the answer to give at once.
pub fn accept(
    req: &LambdaFunctionUrlRequest,
    settings: &CheckoutSettings,
) -> Result<Accepted, Box<LambdaFunctionUrlResponse>> {
    let path = req.raw_path.as_deref().unwrap_or_default();
    let (cors, body) = json_post(req, settings, path.trim_end_matches('/') == "/checkout")?;
    let header = req
        .headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok());
    let key = idempotency_key(header).map_err(|e| early(400, &invalid(&e), &cors))?;
    let mut request =
        parse_request(body, &settings.limits).map_err(|e| early(400, &invalid(&e), &cors))?;
    // The TCP peer as Lambda saw it: no header a client could forge (docs/checkout.md).
    request.client = req
        .request_context
        .http
        .source_ip
        .as_deref()
        .and_then(client_key);
    Ok(Accepted { cors, key, request })
}

/// The answer for the use case's outcome. An error's text goes to the log with `request_id`,
/// never into the answer.
/// With `waitlist` (the cart's store, when the shop has a waitlist), a 409 names the sold-out
/// products a buyer can wait for: `waitlist: {method, path, store_id, product_ids}`.
pub fn answer<E: std::fmt::Display>(
    outcome: Result<ReservationReply, E>,
    cors: &HeaderMap,
    request_id: &str,
    waitlist: Option<&StoreId>,
) -> LambdaFunctionUrlResponse {
    match outcome {
        Ok(ReservationReply::Held {
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
            cors,
        ),
        Ok(ReservationReply::Short(s)) => {
            let mut body = shortfall_body(&s);
            let sold_out: Vec<&str> = s
                .iter()
                .filter(|s| s.available == 0)
                .map(|s| s.product_id.as_str())
                .collect();
            if let Some(store) = waitlist.filter(|_| !sold_out.is_empty()) {
                body["waitlist"] = json!({"method": "POST", "path": "/waitlist", "store_id": store.as_str(), "product_ids": sold_out});
            }
            response(409, &body, cors)
        }
        Ok(ReservationReply::Released(hold)) => response(
            410,
            &json!({"error": "hold_released", "hold_id": hold.as_str(), "message": "this checkout's hold is settled (released, paid or cancelled): start a new checkout with a new Idempotency-Key"}),
            cors,
        ),
        Ok(ReservationReply::Invalid(e)) => response(400, &invalid(&e), cors),
        Ok(ReservationReply::Limited {
            retry_after,
            reason,
        }) => retry_later(
            429,
            &json!({"error": "too_many_checkouts", "message": reason, "retry_after": retry_after}),
            cors,
            retry_after,
        ),
        // Stripe's reason is in the log (with the request id), never in the answer.
        Ok(ReservationReply::Refused(hold)) => response(
            402,
            &json!({"error": "payment_refused", "hold_id": hold.as_str(), "request_id": request_id, "message": "the payment for this cart could not be set up; nothing is held. Check the e-mail address and the cart, then start a new checkout with a new Idempotency-Key"}),
            cors,
        ),
        Err(e) => {
            tracing::error!(error = %e, %request_id, "checkout failed");
            retry_later(
                503,
                &json!({"error": "unavailable", "request_id": request_id, "message": "the checkout is busy or unavailable; retry with the same Idempotency-Key"}),
                cors,
                1,
            )
        }
    }
}

#[cfg(test)]
mod tests;
