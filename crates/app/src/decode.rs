//! Decoding what comes in, tolerantly, into the few fields the use cases need: Stripe events in
//! their EventBridge envelopes ([`stripe_event`]) and the checkout API's request body
//! ([`checkout_request`], `POST /checkout`). The catalog sync's queue messages are decoded in
//! `catalog_sync/message.rs`, beside the use case they feed.

pub mod checkout_request;
pub mod stripe_event;

pub use stripe_event::*;
