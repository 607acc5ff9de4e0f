//! The waitlist's edge with in-memory ports: the join's checks and answers, the links' pages
//! (a `GET` changes nothing, the button's `POST` does), the entries as JSON, escaping.

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use serde_json::{Value, json};
use stockbridge_app::memory::{MemoryMerchantEvents, MemoryStore, test_item};
use stockbridge_app::reservations::HoldLimits;
use stockbridge_app::waitlist::{Signer, WaitlistLimits, WaitlistLinks};
use stockbridge_bootstrap::CheckoutSettings;
use stockbridge_domain::{ProductId, StoreId, Timestamp};

use super::*;

const NOW: Timestamp = Timestamp(1_796_000_000_000);

fn request(
    method: &str,
    path_and_query: &str,
    body: &str,
    origin: Option<&str>,
) -> LambdaFunctionUrlRequest {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let params: serde_json::Map<String, Value> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), Value::from(v)))
        .collect();
    let mut headers = json!({"content-type": "application/json"});
    if let Some(o) = origin {
        headers["origin"] = o.into();
    }
    serde_json::from_value(json!({
        "version": "2.0", "rawPath": path, "rawQueryString": query,
        "queryStringParameters": params,
        "headers": headers,
        "requestContext": {"accountId": "anonymous", "apiId": "x", "domainName": "abc.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abc", "requestId": "r1", "routeKey": "$default", "stage": "$default",
            "time": "07/Dec/2026:04:00:00 +0000", "timeEpoch": 1_796_000_000_000_i64,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "192.0.2.7", "userAgent": "test"}},
        "body": body, "isBase64Encoded": false
    }))
    .unwrap()
}

fn settings() -> CheckoutSettings {
    CheckoutSettings {
        limits: HoldLimits::default(),
        allowed_origins: vec!["https://shop.example".into()],
        max_body_bytes: 16_384,
    }
}

struct World {
    store: MemoryStore,
    events: MemoryMerchantEvents,
    links: WaitlistLinks,
}

impl World {
    fn new(name: &str) -> Self {
        let store = MemoryStore::default();
        let (s, p) = (
            StoreId::parse("s1").unwrap(),
            ProductId::parse("tee").unwrap(),
        );
        store.put_item(test_item(&s, &p, name, 0));
        let links = WaitlistLinks {
            signer: Signer::new(&[3u8; 32]).unwrap(),
            base: String::new(),
        };
        Self {
            store,
            events: MemoryMerchantEvents::default(),
            links,
        }
    }

    async fn call(&self, req: &LambdaFunctionUrlRequest) -> LambdaFunctionUrlResponse {
        let edge = WaitlistEdge {
            links: &self.links,
            limits: WaitlistLimits::default(),
            events: &self.events,
        };
        serve(&self.store, Some(edge), &settings(), req, "req-1", NOW).await
    }

    /// The path and query of the last confirmation request's `link` (`confirm_url`, ...).
    fn link(&self, link: &str) -> String {
        let (_, detail) = self.events.published().last().cloned().unwrap();
        let url = detail[link].as_str().unwrap().to_owned();
        url.strip_prefix("https://abc.lambda-url.us-east-1.on.aws")
            .unwrap()
            .to_owned()
    }
}

fn body(r: &LambdaFunctionUrlResponse) -> String {
    r.body.clone().unwrap_or_default()
}

const JOIN: &str = r#"{"store_id": "s1", "product_id": "tee", "email": "ana@example.com"}"#;

#[tokio::test]
async fn a_join_is_checked_like_a_checkout_and_answered_the_same_either_way() {
    let w = World::new("Tee");
    let r = w
        .call(&request(
            "POST",
            "/waitlist",
            JOIN,
            Some("https://shop.example"),
        ))
        .await;
    assert_eq!(r.status_code, 202, "{}", body(&r));
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://shop.example"
    );
    assert_eq!(w.events.published().len(), 1);
    // The links lead back to the host the buyer came to.
    assert!(
        w.link("confirm_url")
            .starts_with("/waitlist/confirm?token=")
    );
    let bad = r#"{"store_id": "s1", "product_id": "tee", "email": "ana"}"#;
    let r = w.call(&request("POST", "/waitlist", bad, None)).await;
    assert_eq!(r.status_code, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&body(&r)).unwrap()["field"],
        "email"
    );
    let r = w
        .call(&request(
            "POST",
            "/waitlist",
            JOIN,
            Some("https://evil.example"),
        ))
        .await;
    assert_eq!(r.status_code, 403);
    let r = w
        .call(&request(
            "OPTIONS",
            "/waitlist",
            "",
            Some("https://shop.example"),
        ))
        .await;
    assert_eq!(r.status_code, 204);
    assert_eq!(w.events.published().len(), 1, "nothing more asked");
    // Without a waitlist: not found, and no internals.
    let r = serve(
        &w.store,
        None,
        &settings(),
        &request("POST", "/waitlist", JOIN, None),
        "r",
        NOW,
    )
    .await;
    assert_eq!(r.status_code, 404);
}

#[tokio::test]
async fn a_link_s_page_changes_nothing_and_its_button_confirms() {
    let w = World::new("Tee <b>&</b>");
    w.call(&request("POST", "/waitlist", JOIN, None)).await;
    let confirm = w.link("confirm_url");
    let page = w.call(&request("GET", &confirm, "", None)).await;
    assert_eq!(page.status_code, 200);
    assert!(body(&page).contains("<form method=\"post\">"));
    assert_eq!(page.headers["referrer-policy"], "no-referrer");
    let entry = || {
        w.store
            .waitlist
            .lock()
            .unwrap()
            .entries
            .values()
            .next()
            .unwrap()
            .0
            .clone()
    };
    assert_eq!(
        entry().confirmed,
        None,
        "a GET (a mail scanner) confirms nothing"
    );
    let done = w.call(&request("POST", &confirm, "", None)).await;
    assert_eq!(done.status_code, 200);
    assert!(
        body(&done).contains("Tee &lt;b&gt;&amp;&lt;/b&gt;"),
        "{}",
        body(&done)
    );
    assert_eq!(entry().confirmed, Some(1));
    // A token cut short, and the unsubscribe button.
    let cut = &confirm[..confirm.len() - 3];
    assert_eq!(
        w.call(&request("POST", cut, "", None)).await.status_code,
        400
    );
    let leave = w.link("unsubscribe_url");
    let left = w
        .call(&request("POST", &leave, "List-Unsubscribe=One-Click", None))
        .await;
    assert_eq!(left.status_code, 200);
    assert!(w.store.waitlist.lock().unwrap().entries.is_empty());
    assert_eq!(
        w.call(&request("POST", &confirm, "", None))
            .await
            .status_code,
        410
    );
    assert_eq!(
        w.call(&request("DELETE", &confirm, "", None))
            .await
            .status_code,
        405
    );
    let r = w
        .call(&request(
            "GET",
            "/waitlist/entries?token=forged.x",
            "",
            None,
        ))
        .await;
    assert_eq!(
        (r.status_code, body(&r).contains("invalid_link")),
        (403, true)
    );
}

#[tokio::test]
async fn a_link_is_never_built_from_a_host_that_is_not_a_host_name() {
    let w = World::new("Tee");
    let mut req = request("POST", "/waitlist", JOIN, None);
    req.request_context.domain_name = Some("evil.example/\"><script>".into());
    let r = w.call(&req).await;
    assert_eq!(r.status_code, 400);
    assert!(
        w.events.published().is_empty(),
        "no confirmation request with such a link"
    );
}
