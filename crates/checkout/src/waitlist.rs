//! The waitlist's HTTP edge (docs/waitlist.md), beside the checkout's:
//!
//! - `POST /waitlist` `{store_id, product_id, email}`: the checks of every browser `POST`
//!   ([`crate::http::json_post`]), then the use case; `202` whatever the list held (no one
//!   learns whether an address is on it), `400` naming the field, `429` with `retry_after`.
//! - `GET /waitlist/confirm?token=…`, `GET /waitlist/unsubscribe?token=…`: a small page with
//!   one button that `POST`s the same URL. A mail scanner that follows every link in a message
//!   (many do) must not confirm or unsubscribe anyone; a person presses the button. `POST`
//!   to the unsubscribe URL is also the one-click unsubscribe of RFC 8058.
//! - `GET /waitlist/entries?token=…[&after=…]`: one page of a restock's confirmed entries, as
//!   JSON, for the merchant's mailer.
//!
//! The links carry their own authority (a signed token), so they need no `Origin`.

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use aws_lambda_events::http::{HeaderMap, HeaderValue};
use serde_json::json;
use stockbridge_app::ports::{Counters, DynMerchantEvents, InventoryStore, Waitlist};
use stockbridge_app::reservations::caps::client_key;
use stockbridge_app::waitlist::{
    JoinReply, LinkReply, TokenError, WaitlistError, WaitlistLimits, WaitlistLinks, confirm,
    entries, join, parse_join, unsubscribe,
};
use stockbridge_bootstrap::CheckoutSettings;
use stockbridge_domain::Timestamp;

use crate::http::{invalid, json_post, response, retry_later};

/// The waitlist's ports and settings, as the checkout serves it.
#[derive(Clone, Copy)]
pub struct WaitlistEdge<'a> {
    /// Its links (an empty base: the host the request came to).
    pub links: &'a WaitlistLinks,
    /// Its caps.
    pub limits: WaitlistLimits,
    /// Where its confirmation requests go.
    pub events: &'a dyn DynMerchantEvents,
}

/// Whether `path` is the waitlist's.
pub fn is_waitlist(path: &str) -> bool {
    path == "/waitlist" || path.starts_with("/waitlist/")
}

/// Answers a request to one of the waitlist's paths.
pub async fn serve<S>(
    store: &S,
    edge: Option<WaitlistEdge<'_>>,
    settings: &CheckoutSettings,
    req: &LambdaFunctionUrlRequest,
    request_id: &str,
    now: Timestamp,
) -> LambdaFunctionUrlResponse
where
    S: InventoryStore + Waitlist + Counters,
{
    let path = req
        .raw_path
        .as_deref()
        .unwrap_or_default()
        .trim_end_matches('/');
    let Some(edge) = edge else {
        return response(
            404,
            &json!({"error": "not_found", "message": "this shop has no waitlist"}),
            &HeaderMap::new(),
        );
    };
    let mut links = edge.links.clone();
    if links.base.is_empty() {
        // Links lead back to the Function URL's own domain (Lambda sets it from the URL the
        // request came to); anything but a host name is refused rather than put in a link.
        let host = req
            .request_context
            .domain_name
            .as_deref()
            .unwrap_or_default();
        let plain = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':');
        if !plain {
            return response(
                400,
                &json!({"error": "invalid_request", "message": "no usable host name in this request"}),
                &HeaderMap::new(),
            );
        }
        links.base = format!("https://{host}");
    }
    let token = req
        .query_string_parameters
        .get("token")
        .map_or("", String::as_str);
    let method = req
        .request_context
        .http
        .method
        .as_deref()
        .unwrap_or_default();
    let outcome = match (path, method) {
        ("/waitlist", _) => {
            return join_request(store, edge, &links, settings, req, request_id, now).await;
        }
        ("/waitlist/confirm" | "/waitlist/unsubscribe", "GET") => return button_page(path),
        ("/waitlist/confirm", "POST") => confirm(store, &links, token, now)
            .await
            .map(Step::Confirmed),
        ("/waitlist/unsubscribe", "POST") => {
            unsubscribe(store, &links, token, now).await.map(Step::Left)
        }
        ("/waitlist/entries", "GET") => {
            let after = req.query_string_parameters.get("after").map(String::as_str);
            entries(store, &links, token, after, now)
                .await
                .map(Step::Entries)
        }
        ("/waitlist/confirm" | "/waitlist/unsubscribe" | "/waitlist/entries", _) => {
            return response(
                405,
                &json!({"error": "method_not_allowed", "message": "GET shows the page; its button POSTs"}),
                &HeaderMap::new(),
            );
        }
        _ => {
            return response(
                404,
                &json!({"error": "not_found", "message": "POST /waitlist"}),
                &HeaderMap::new(),
            );
        }
    };
    match outcome {
        Ok(step) => step.answer(),
        Err(e) => unavailable(&e, request_id, &HeaderMap::new()),
    }
}

async fn join_request<S>(
    store: &S,
    edge: WaitlistEdge<'_>,
    links: &WaitlistLinks,
    settings: &CheckoutSettings,
    req: &LambdaFunctionUrlRequest,
    request_id: &str,
    now: Timestamp,
) -> LambdaFunctionUrlResponse
where
    S: InventoryStore + Waitlist + Counters,
{
    let (cors, body) = match json_post(req, settings, true) {
        Ok(checked) => checked,
        Err(early) => return *early,
    };
    let mut request = match parse_join(body) {
        Ok(r) => r,
        Err(e) => return response(400, &invalid(&e), &cors),
    };
    // The TCP peer as Lambda saw it, as for the checkout's caps.
    request.client = req
        .request_context
        .http
        .source_ip
        .as_deref()
        .and_then(client_key);
    match join(store, edge.events, links, edge.limits, &request, now).await {
        Ok(JoinReply::Requested) => response(
            202,
            &json!({"status": "confirmation_requested", "message": "if this address is not on the list yet, a message to confirm it is on its way"}),
            &cors,
        ),
        Ok(JoinReply::Invalid(e)) => response(400, &invalid(&e), &cors),
        Ok(JoinReply::Limited {
            retry_after,
            reason,
        }) => retry_later(
            429,
            &json!({"error": "too_many_requests", "message": reason, "retry_after": retry_after}),
            &cors,
            retry_after,
        ),
        Err(e) => unavailable(&e, request_id, &cors),
    }
}

fn unavailable(e: &WaitlistError, request_id: &str, cors: &HeaderMap) -> LambdaFunctionUrlResponse {
    tracing::error!(error = %e, %request_id, "waitlist failed");
    retry_later(
        503,
        &json!({"error": "unavailable", "request_id": request_id, "message": "the waitlist is busy or unavailable; try again in a moment"}),
        cors,
        1,
    )
}

/// What a link did.
enum Step {
    Confirmed(LinkReply),
    Left(LinkReply),
    Entries(Result<serde_json::Value, TokenError>),
}

impl Step {
    fn answer(self) -> LambdaFunctionUrlResponse {
        match self {
            Self::Confirmed(LinkReply::Done(name)) => page(
                200,
                "You are on the list",
                &format!(
                    "We will let you know when {} is back in stock. Every message has a link to leave the list.",
                    escape(&name)
                ),
            ),
            Self::Left(LinkReply::Done(name)) => page(
                200,
                "You have left the list",
                &format!(
                    "You will not hear about {} from this list again.",
                    escape(&name)
                ),
            ),
            Self::Confirmed(LinkReply::Gone) | Self::Left(LinkReply::Gone) => page(
                410,
                "This sign-up has ended",
                "It expired or was removed. Join the list again from the shop.",
            ),
            Self::Confirmed(LinkReply::Refused(e)) | Self::Left(LinkReply::Refused(e)) => {
                refused_page(e)
            }
            Self::Entries(Ok(body)) => response(200, &body, &HeaderMap::new()),
            Self::Entries(Err(e)) => response(
                403,
                &json!({"error": if e == TokenError::Expired { "expired_link" } else { "invalid_link" }, "message": e.to_string()}),
                &HeaderMap::new(),
            ),
        }
    }
}

fn refused_page(e: TokenError) -> LambdaFunctionUrlResponse {
    match e {
        TokenError::Expired => page(
            410,
            "This link has expired",
            "Join the list again from the shop; the new message has a fresh link.",
        ),
        TokenError::Invalid => page(
            400,
            "This link is not valid",
            "It may have been cut short: open it from the message again, or copy all of it.",
        ),
    }
}

/// The page of a link: one button that `POST`s the same URL (a scanner's `GET` does nothing).
fn button_page(path: &str) -> LambdaFunctionUrlResponse {
    let (title, text, button) = if path.ends_with("/confirm") {
        (
            "Confirm your sign-up",
            "Press the button to be told when the product is back in stock.",
            "Confirm",
        )
    } else {
        (
            "Leave the list",
            "Press the button to stop hearing about this product.",
            "Leave the list",
        )
    };
    // An empty action posts to this very URL, token included.
    let form = format!(
        "<p>{text}</p><form method=\"post\"><button type=\"submit\">{button}</button></form>"
    );
    page(200, title, &form)
}

/// A small HTML page: no script, no outside resources.
fn page(status: i64, title: &str, body_html: &str) -> LambdaFunctionUrlResponse {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title><style>body{{font:1.1rem/1.5 system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}button{{font:inherit;padding:.5rem 1rem}}</style></head><body><main><h1>{title}</h1>{body_html}</main></body></html>"
    );
    let mut r = LambdaFunctionUrlResponse::default();
    r.status_code = status;
    let headers = [
        ("content-type", "text/html; charset=utf-8"),
        ("cache-control", "no-store"),
        (
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
    ];
    for (k, v) in headers {
        r.headers.insert(k, HeaderValue::from_static(v));
    }
    r.body = Some(html);
    r
}

/// `s` safe in HTML text.
fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests;
