//! Caps on the public checkout, so one client cannot take a shop offline, hoard its stock or
//! test cards through it. Each is enforced by stockbridge itself, in the table (so every
//! instance of the function sees the same counts):
//!
//! - units per hold ([`HoldLimits::max_units`], checked with the request);
//! - the share of an item's on-hand stock pending holds may take while the item has Payment
//!   Links ([`HoldLimits::hold_share_percent`], in [`stockbridge_domain::decide_hold`]):
//!   the rest stays for link buyers, so a hold alone never switches a link off;
//! - holds per e-mail and per client address in a window of the hold's length, and failed
//!   authorisations per e-mail and per address in an hour ([`crate::ports::Counters`]).
//!
//! A client is its source address as Lambda reports it (`requestContext.http.sourceIp`, the TCP
//! peer: no header a client can forge), an IPv6 address by its /64 (one subscriber's network).
//! Keys are hashed: the table never stores an address or an e-mail in a counter's key.
//! Hundreds of honest buyers can share one address (a conference's NAT), so the per-address
//! ceiling is a high backstop; the per-e-mail and per-item caps do the fine work.

pub use crate::keys::{client_key, email_key};

/// Failed authorisations are counted in windows of this length.
pub const FAILURE_WINDOW_SECONDS: u32 = 3600;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_its_64_and_keys_are_hashed() {
        let a = client_key("2001:db8:1:2:aaaa::1").unwrap();
        assert_eq!(a, client_key("2001:db8:1:2:bbbb:cccc:dddd:eeee").unwrap());
        assert_ne!(a, client_key("2001:db8:1:3::1").unwrap());
        assert_eq!(
            client_key("::ffff:192.0.2.7"),
            client_key("192.0.2.7"),
            "an IPv4-mapped address is its IPv4"
        );
        assert_ne!(client_key("192.0.2.7"), client_key("192.0.2.8"));
        assert!(!a.contains("2001") && a.starts_with("client:"));
        assert_eq!(client_key("not an address"), None);
        assert_eq!(email_key("A@B.co"), email_key(" a@b.co"));
    }

    #[test]
    fn a_window_contains_now_and_says_when_it_ends() {
        use crate::ports::Window;
        use stockbridge_domain::Timestamp;
        let w = Window::containing("k".into(), Timestamp(905_500), 900);
        assert_eq!(w.start, Timestamp(900_000));
        assert_eq!(w.retry_after(Timestamp(905_500)), 895);
        assert_eq!(w.retry_after(Timestamp(1_799_999)), 1);
    }
}
