//! Hashed keys of a client's address and of an e-mail address: what the table stores instead of
//! either (the checkout's caps, the waitlist's records). A client is its source address as
//! Lambda reports it, an IPv6 address by its /64 (one subscriber's network).

use std::net::IpAddr;

use sha2::{Digest, Sha256};

/// The hashed key of a client address: IPv4 whole, IPv6 by its /64. `None` for anything that
/// is not an address.
pub fn client_key(source_ip: &str) -> Option<String> {
    let prefix = match source_ip.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = a.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    };
    Some(hashed("client", &prefix))
}

/// The hashed key of an e-mail address (case-insensitive).
pub fn email_key(email: &str) -> String {
    hashed("email", &email.trim().to_ascii_lowercase())
}

fn hashed(kind: &str, value: &str) -> String {
    let digest = Sha256::new()
        .chain_update(kind.as_bytes())
        .chain_update(b"\n")
        .chain_update(value.as_bytes())
        .finalize();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("{kind}:{hex}")
}
