//! The back-in-stock waitlist ([`stockbridge_domain::waitlist`] has the rule; docs/waitlist.md
//! the whole story).
//!
//! - [`join`] (`POST /waitlist` on the checkout function): a buyer leaves an address for a
//!   product. Capped per client address and per e-mail address; the entry is recorded
//!   unconfirmed and `stockbridge.waitlist_confirmation_requested` is published with a signed
//!   confirm link and an unsubscribe link: stockbridge sends no mail, the merchant's mailer does.
//!   The answer is the same whether or not the address was on the list (no one learns who is).
//! - [`confirm`], [`unsubscribe`]: what the links do.
//! - [`announce_restock`] (the broadcaster, from the restock record a merchant's restock wrote
//!   with the stock): `stockbridge.back_in_stock` with the count of confirmed entries it serves
//!   and a signed link to fetch them ([`entries`]); then the restock is recorded announced. A
//!   publish that failed leaves it pending, and it is announced again (at least once: a crash
//!   after the publish repeats it, with the same `restock` number for a consumer to drop).

pub mod token;

use serde::Deserialize;
use serde_json::{Value, json};
use stockbridge_domain::waitlist::parse_email;
use stockbridge_domain::{ProductId, StoreId, Timestamp};
pub use token::{Signer, Token, TokenError};

use crate::decode::checkout_request::{RequestError, bad};
use crate::keys::email_key;
use crate::message::rfc3339;
use crate::ports::{
    Confirmed, Counters, DynMerchantEvents, InventoryStore, NotifyError, StoreError, Waitlist,
    WaitlistEntry, Window,
};

/// The `detail-type` of a confirmation request.
pub const CONFIRMATION_REQUESTED: &str = "stockbridge.waitlist_confirmation_requested";
/// The `detail-type` of a restock announcement.
pub const BACK_IN_STOCK: &str = "stockbridge.back_in_stock";
/// How long an unconfirmed entry and its confirm link last.
pub const CONFIRM_SECONDS: i64 = 48 * 3600;
/// How long a confirmed entry lasts without a restock (then the table's TTL removes it).
pub const ENTRY_SECONDS: i64 = 180 * 86_400;
/// How long a restock's link to its entries works.
pub const ENTRIES_LINK_SECONDS: i64 = 7 * 86_400;
/// Entries per page of that link.
pub const PAGE: usize = 500;
/// Caps are counted in windows of an hour.
const CAP_WINDOW_SECONDS: u32 = 3600;

/// Where the links point and how they are signed.
#[derive(Debug, Clone)]
pub struct WaitlistLinks {
    /// Signs and checks them.
    pub signer: Signer,
    /// The public base URL of the checkout function (`https://…`, no trailing `/`).
    pub base: String,
}

impl WaitlistLinks {
    fn url(&self, path: &str, token: &Token) -> String {
        format!(
            "{}/waitlist/{path}?token={}",
            self.base.trim_end_matches('/'),
            self.signer.sign(token)
        )
    }

    fn unsubscribe_url(&self, e: &WaitlistEntry) -> String {
        let t = Token::Unsubscribe {
            store: e.store_id.to_string(),
            product: e.product_id.to_string(),
            email: e.email_key(),
        };
        self.url("unsubscribe", &t)
    }
}

/// Caps on joining, per hour (`WAITLIST_JOINS_PER_CLIENT`, `WAITLIST_JOINS_PER_EMAIL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitlistLimits {
    /// Joins per client address (a conference's NAT shares one: a backstop).
    pub per_client: u32,
    /// Confirmation requests per e-mail address: nobody can have a stranger's inbox flooded.
    pub per_email: u32,
}

impl Default for WaitlistLimits {
    fn default() -> Self {
        Self {
            per_client: 60,
            per_email: 5,
        }
    }
}

/// A checked `POST /waitlist`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// The store.
    pub store_id: StoreId,
    /// The product.
    pub product_id: ProductId,
    /// The address.
    pub email: String,
    /// The client's hashed address (`keys::client_key`).
    pub client: Option<String>,
}

/// Parses a `POST /waitlist` body: `{store_id, product_id, email}`.
///
/// # Errors
/// [`RequestError`] naming the field.
pub fn parse_join(body: &[u8]) -> Result<JoinRequest, RequestError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        store_id: String,
        product_id: String,
        email: String,
    }
    let raw: Raw = serde_json::from_slice(body).map_err(|e| {
        let m = e.to_string();
        let field = ["store_id", "product_id", "email"]
            .into_iter()
            .find(|f| m.starts_with(&format!("missing field `{f}`")))
            .unwrap_or("body");
        bad(field, m)
    })?;
    Ok(JoinRequest {
        store_id: StoreId::parse(raw.store_id).map_err(|e| bad("store_id", e.to_string()))?,
        product_id: ProductId::parse(raw.product_id)
            .map_err(|e| bad("product_id", e.to_string()))?,
        email: parse_email(&raw.email).map_err(|m| bad("email", m))?,
        client: None,
    })
}

/// What became of a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinReply {
    /// Recorded and a confirmation requested — or nothing to do: the same answer.
    Requested,
    /// A field is wrong.
    Invalid(RequestError),
    /// Over a cap: retry after this many seconds.
    Limited {
        /// Seconds.
        retry_after: u32,
        /// Which cap, in words.
        reason: &'static str,
    },
}

/// A waitlist step that failed (the caller answers 503, or retries).
#[derive(Debug, thiserror::Error)]
pub enum WaitlistError {
    /// The table.
    #[error("waitlist records: {0}")]
    Store(#[from] StoreError),
    /// Publishing the event.
    #[error("publishing a waitlist event: {0}")]
    Publish(#[from] NotifyError),
}

/// Joins `req`'s address to its product's list and asks for its confirmation.
///
/// # Errors
/// [`WaitlistError`]: nothing was published (the entry may be recorded: joining again is fine).
pub async fn join<S>(
    store: &S,
    events: &dyn DynMerchantEvents,
    links: &WaitlistLinks,
    limits: WaitlistLimits,
    req: &JoinRequest,
    now: Timestamp,
) -> Result<JoinReply, WaitlistError>
where
    S: InventoryStore + Waitlist + Counters,
{
    let client = req.client.as_deref().unwrap_or("client:unknown");
    let window = Window::containing(format!("waitlist:{client}"), now, CAP_WINDOW_SECONDS);
    if !store.take(&window, 1, limits.per_client).await? {
        return Ok(JoinReply::Limited {
            retry_after: window.retry_after(now),
            reason: "too many sign-ups from this network; try again later",
        });
    }
    let Some(item) = store.item(&req.store_id, &req.product_id).await? else {
        return Ok(JoinReply::Invalid(bad(
            "product_id",
            "this product is not in the store's catalog",
        )));
    };
    let email = email_key(&req.email);
    let window = Window::containing(format!("waitlist:{email}"), now, CAP_WINDOW_SECONDS);
    if !store.take(&window, 1, limits.per_email).await? {
        return Ok(JoinReply::Limited {
            retry_after: window.retry_after(now),
            reason: "too many sign-ups for this e-mail address; try again later",
        });
    }
    let entry = WaitlistEntry {
        store_id: req.store_id.clone(),
        product_id: req.product_id.clone(),
        email: req.email.clone(),
        confirmed: None,
        joined: now,
    };
    let expires = Timestamp(now.0 + CONFIRM_SECONDS * 1000);
    if let Some(version) = store.add_entry(&entry, expires).await? {
        // Confirmed and still waiting: nothing to ask. Served by a restock since: asking
        // again puts the address back in line once its owner confirms.
        if version
            >= store
                .announced(&req.store_id, &req.product_id)
                .await?
                .version
        {
            return Ok(JoinReply::Requested);
        }
    }
    let confirm = Token::Confirm {
        store: req.store_id.to_string(),
        product: req.product_id.to_string(),
        email,
        expires: expires.0,
    };
    let detail = json!({
        "store_id": req.store_id.as_str(),
        "product_id": req.product_id.as_str(),
        "name": item.name,
        "email": req.email,
        "confirm_url": links.url("confirm", &confirm),
        "unsubscribe_url": links.unsubscribe_url(&entry),
        "expires_at": rfc3339(expires),
    });
    events
        .publish_boxed(CONFIRMATION_REQUESTED, &detail)
        .await?;
    Ok(JoinReply::Requested)
}

/// What a confirm or unsubscribe link did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkReply {
    /// Done; the product's name.
    Done(String),
    /// The entry is gone (expired, removed or erased): join again.
    Gone,
    /// The link is not valid or has expired.
    Refused(TokenError),
}

/// Confirms the entry a confirm link names: it waits for the next restock.
///
/// # Errors
/// [`WaitlistError`].
pub async fn confirm<S>(
    store: &S,
    links: &WaitlistLinks,
    token: &str,
    now: Timestamp,
) -> Result<LinkReply, WaitlistError>
where
    S: InventoryStore + Waitlist,
{
    let t = match links.signer.verify(token, now) {
        Ok(t) => t,
        Err(e) => return Ok(LinkReply::Refused(e)),
    };
    let (Token::Confirm { email, .. }, Ok((store_id, product_id))) = (&t, t.subject()) else {
        return Ok(LinkReply::Refused(TokenError::Invalid));
    };
    let expires = Timestamp(now.0 + ENTRY_SECONDS * 1000);
    // The item's version as read must still be its version when the entry records it: a
    // restock in between would otherwise have passed the entry by (it serves the versions
    // before its own). Moved: read again.
    let mut attempt = 0;
    loop {
        let Some(item) = store.item(&store_id, &product_id).await? else {
            return Ok(LinkReply::Gone);
        };
        let waiting_since = store.announced(&store_id, &product_id).await?.version;
        let versions = (item.version, waiting_since);
        match store
            .confirm_entry(&store_id, &product_id, email, versions, expires)
            .await
        {
            Ok(Confirmed::Now | Confirmed::AlreadyWaiting) => {
                return Ok(LinkReply::Done(item.name));
            }
            Ok(Confirmed::NoEntry) => return Ok(LinkReply::Gone),
            Err(StoreError::Conflict) if attempt < 5 => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Removes the entry an unsubscribe link names (done also when it was gone already).
///
/// # Errors
/// [`WaitlistError`].
pub async fn unsubscribe<S>(
    store: &S,
    links: &WaitlistLinks,
    token: &str,
    now: Timestamp,
) -> Result<LinkReply, WaitlistError>
where
    S: InventoryStore + Waitlist,
{
    let t = match links.signer.verify(token, now) {
        Ok(t) => t,
        Err(e) => return Ok(LinkReply::Refused(e)),
    };
    let (Token::Unsubscribe { email, .. }, Ok((store_id, product_id))) = (&t, t.subject()) else {
        return Ok(LinkReply::Refused(TokenError::Invalid));
    };
    store.remove_entry(&store_id, &product_id, email).await?;
    let name = name_of(store, &store_id, &product_id).await?;
    Ok(LinkReply::Done(name))
}

/// One page of the entries a restock's link names, as the link answers it:
/// `{store_id, product_id, restock, entries: [{email, unsubscribe_url}], next}` (`next`: the
/// URL of the next page, or null). `Err(TokenError)` for a bad link.
///
/// # Errors
/// [`WaitlistError`].
pub async fn entries<S>(
    store: &S,
    links: &WaitlistLinks,
    token: &str,
    after: Option<&str>,
    now: Timestamp,
) -> Result<Result<Value, TokenError>, WaitlistError>
where
    S: Waitlist,
{
    let t = match links.signer.verify(token, now) {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    let (Token::Entries { from, to, .. }, Ok((store_id, product_id))) = (&t, t.subject()) else {
        return Ok(Err(TokenError::Invalid));
    };
    // A page starts after an address key (`email:` and 24 hex digits), as `next` gives it.
    let cursor_ok = |a: &str| {
        a.strip_prefix("email:")
            .is_some_and(|h| h.len() == 24 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    if after.is_some_and(|a| !cursor_ok(a)) {
        return Ok(Err(TokenError::Invalid));
    }
    let page = store
        .confirmed_entries(&store_id, &product_id, *from..*to, after, PAGE)
        .await?;
    let list: Vec<Value> = page
        .entries
        .iter()
        .map(|e| json!({"email": e.email, "unsubscribe_url": links.unsubscribe_url(e)}))
        .collect();
    let next = page
        .next
        .map(|n| format!("{}&after={n}", links.url("entries", &t),));
    Ok(Ok(json!({
        "store_id": store_id.as_str(),
        "product_id": product_id.as_str(),
        "restock": to,
        "entries": list,
        "next": next,
    })))
}

/// Announces the restock recorded at `version` once: `Ok(Some(count))` when published now,
/// `Ok(None)` when there is nothing to announce (done already, or a later restock served its
/// entries).
///
/// # Errors
/// [`WaitlistError`]: it stays pending and is announced again.
pub async fn announce_restock<S>(
    store: &S,
    events: &dyn DynMerchantEvents,
    links: &WaitlistLinks,
    (store_id, product_id, version): (&StoreId, &ProductId, u64),
    now: Timestamp,
) -> Result<Option<u64>, WaitlistError>
where
    S: InventoryStore + Waitlist,
{
    let Some(restock) = store.pending_restock(store_id, product_id, version).await? else {
        return Ok(None);
    };
    // Claimed before publishing, from the last claim read: two announcers of one product's
    // restocks (a retry and the next restock) never serve the same entries twice.
    let mut attempt = 0;
    let previous = loop {
        let last = store.announced(store_id, product_id).await?;
        if last.version > restock.version {
            // A later restock took its entries.
            store.remove_restock(&restock).await?;
            return Ok(None);
        }
        if last.version == restock.version {
            break last.from; // claimed before: announced again (a retry)
        }
        if store.claim_restock(&restock, &last).await? {
            break last.version;
        }
        attempt += 1;
        if attempt > 5 {
            return Err(StoreError::Conflict.into());
        }
    };
    let mut count = 0u64;
    let versions = previous..restock.version;
    each_confirmed(store, (store_id, product_id), versions, |page| {
        count += page.len() as u64;
    })
    .await?;
    let name = name_of(store, store_id, product_id).await?;
    let fetch = Token::Entries {
        store: store_id.to_string(),
        product: product_id.to_string(),
        from: previous,
        to: restock.version,
        expires: now.0 + ENTRIES_LINK_SECONDS * 1000,
    };
    let detail = json!({
        "store_id": store_id.as_str(),
        "product_id": product_id.as_str(),
        "name": name,
        "available": restock.available,
        "restock": restock.version,
        "restocked_at": rfc3339(restock.at),
        "count": count,
        "entries_url": links.url("entries", &fetch),
        "entries_expire_at": rfc3339(Timestamp(now.0 + ENTRIES_LINK_SECONDS * 1000)),
    });
    events.publish_boxed(BACK_IN_STOCK, &detail).await?;
    store.remove_restock(&restock).await?;
    Ok(Some(count))
}

/// Hands every confirmed entry of a product whose version is in `versions` to `each`, a page
/// at a time (the announcement's count, `stockbridge waitlist list`).
///
/// # Errors
/// [`StoreError`] from reading a page.
pub async fn each_confirmed<S: Waitlist>(
    store: &S,
    (store_id, product_id): (&StoreId, &ProductId),
    versions: std::ops::Range<u64>,
    mut each: impl FnMut(Vec<WaitlistEntry>) + Send,
) -> Result<(), StoreError> {
    let mut after = None::<String>;
    loop {
        let page = store
            .confirmed_entries(
                store_id,
                product_id,
                versions.clone(),
                after.as_deref(),
                PAGE,
            )
            .await?;
        each(page.entries);
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(()),
        }
    }
}

/// The product's name, or its id when it is no longer in the catalog.
async fn name_of<S: InventoryStore>(
    store: &S,
    store_id: &StoreId,
    product_id: &ProductId,
) -> Result<String, StoreError> {
    Ok(store
        .item(store_id, product_id)
        .await?
        .map_or_else(|| product_id.to_string(), |i| i.name))
}
