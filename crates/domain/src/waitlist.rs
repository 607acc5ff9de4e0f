//! The back-in-stock waitlist: who waits for which restock.
//!
//! Contract:
//! - A buyer joins a product's list with an e-mail address ([`parse_email`] says which are
//!   accepted) and counts only once they confirm it (double opt-in: stockbridge publishes the
//!   confirmation request, the merchant's mailer sends it).
//! - A confirmed entry waits for the *next* restock: it records the item's version when it was
//!   confirmed (`after_version`). A restock is the merchant raising the available level from 0
//!   ([`crate::Restock`], decided by [`crate::decide_stock_change`]); it serves the entries
//!   confirmed since the restock announced before it ([`serves`]), so a buyer hears of one
//!   restock, once, and joins again for the next. Units back from a lapsed hold, a failed
//!   payment or a refund's return are not a restock: they flicker around 0 during a rush, and a
//!   unit or two would send the whole list after them.
//! - Announcements go out in version order; a restock older than one already announced serves
//!   no one (the later one took its entries).

/// The longest address accepted (RFC 5321's path limit less the angle brackets).
pub const MAX_EMAIL_LEN: usize = 254;

/// Checks an e-mail address as a mailer can use it: one `@`, a local part of 1–64 characters,
/// a domain with a dot and no empty label, no spaces, quotes, angle brackets, commas or control
/// characters (no quoted local parts: a waitlist has no need of them). Answers it trimmed.
///
/// # Errors
/// What is wrong, in words a buyer can act on.
pub fn parse_email(raw: &str) -> Result<String, &'static str> {
    let email = raw.trim();
    if email.is_empty() {
        return Err("enter an e-mail address");
    }
    if email.len() > MAX_EMAIL_LEN {
        return Err("this e-mail address is too long");
    }
    if email.chars().any(|c| {
        c.is_whitespace() || c.is_control() || is_invisible(c) || "\"<>(),;:[]\\".contains(c)
    }) {
        return Err("an e-mail address has no spaces, quotes, brackets or commas");
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err("an e-mail address has an @");
    };
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return Err("this is not an e-mail address (name@example.com)");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|l| l.is_empty() || l.starts_with('-')) {
        return Err("the part after @ is not a domain (name@example.com)");
    }
    Ok(email.to_owned())
}

/// Invisible formatting characters (zero-width, bidirectional controls, soft hyphen, BOM): an
/// address with one looks like another one in a mail client.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Whether an entry confirmed at item version `after_version` is served by the restock that
/// wrote version `restock`, when the restock announced before it wrote `previous` (0: none).
/// An entry confirmed in the same instant as a restock (it read the version before the restock
/// wrote it) goes with that restock.
pub fn serves(after_version: u64, previous: u64, restock: u64) -> bool {
    after_version >= previous && after_version < restock
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_a_mailer_can_use_are_accepted_trimmed() {
        assert_eq!(
            parse_email("  Ana@Example.com ").unwrap(),
            "Ana@Example.com"
        );
        assert_eq!(
            parse_email("a.b+tag@mail.example.co.uk").unwrap(),
            "a.b+tag@mail.example.co.uk"
        );
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "ana@@example.com",
            "ana@example..com",
            "ana@-example.com",
            "ana smith@example.com",
            "\"ana\"@example.com",
            "ana@example.com, bob@example.com",
            "<ana@example.com>",
            "ana@exa\u{0}mple.com",
            "ana\u{200b}@example.com",
            "ana@exa\u{202e}elpm.com",
        ] {
            assert!(parse_email(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(parse_email(&long).is_err());
        let longer = format!("a@{}.com", "b".repeat(260));
        assert_eq!(parse_email(&longer), Err("this e-mail address is too long"));
    }

    #[test]
    fn a_restock_serves_the_entries_confirmed_since_the_one_before() {
        // Restocks at versions 10 and 25.
        assert!(serves(0, 0, 10));
        assert!(serves(9, 0, 10));
        assert!(
            !serves(10, 0, 10),
            "confirmed after the restock: waits for the next"
        );
        assert!(serves(10, 10, 25));
        assert!(serves(24, 10, 25));
        assert!(!serves(9, 10, 25), "served by the restock at 10 already");
        // Every entry is served by exactly one restock of a sequence.
        let restocks = [0u64, 10, 25, 40];
        for v in 0..40 {
            let n = restocks
                .windows(2)
                .filter(|w| serves(v, w[0], w[1]))
                .count();
            assert_eq!(n, 1, "version {v}");
        }
    }
}
