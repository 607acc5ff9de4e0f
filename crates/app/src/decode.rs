//! Decoding what comes in, tolerantly, into the few fields the use cases need: Stripe events in
//! their EventBridge envelopes ([`stripe_event`]; refunds and disputes in [`after_sale`]) and the checkout API's request body
//! ([`checkout_request`], `POST /checkout`), the catalog-sync queue's messages
//! ([`sync_message`]), and thin events ([`thin_event`]).

pub mod after_sale;
pub mod checkout_request;
pub mod stripe_event;
pub mod sync_message;
pub mod thin_event;

pub use after_sale::{AfterSaleEvent, CHARGE_REFUNDED, DISPUTE_CLOSED};
pub use stripe_event::*;
