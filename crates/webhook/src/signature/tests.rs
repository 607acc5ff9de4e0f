use super::*;

const NOW: i64 = 1_700_000_000;
const BODY: &[u8] = br#"{"id":"evt_1"}"#;

fn secrets(text: &str) -> Secrets {
    Secrets::parse(text).unwrap()
}

fn header(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", sign(secret, t, body).unwrap())
}

#[test]
fn the_signature_is_stripes_hmac_of_the_timestamp_and_the_raw_body() {
    // The same computation in Python's hmac module:
    // hmac.new(b'whsec_test_secret', b'1700000000.{"id":"evt_1"}', sha256).hexdigest()
    assert_eq!(
        sign("whsec_test_secret", NOW, BODY).unwrap(),
        "248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a"
    );
}

#[test]
fn a_delivery_signed_with_the_endpoint_secret_passes() {
    let h = header("whsec_a", NOW - 10, BODY);
    assert_eq!(verify(BODY, Some(&h), &secrets("whsec_a"), NOW), Ok(()));
}

#[test]
fn a_wrong_secret_a_changed_byte_or_a_missing_header_fails() {
    let h = header("whsec_other", NOW, BODY);
    let s = secrets("whsec_a");
    assert_eq!(
        verify(BODY, Some(&h), &s, NOW),
        Err(SignatureError::Mismatch)
    );
    let good = header("whsec_a", NOW, BODY);
    let mut altered = BODY.to_vec();
    altered[8] ^= 1;
    assert_eq!(
        verify(&altered, Some(&good), &s, NOW),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(verify(BODY, None, &s, NOW), Err(SignatureError::Missing));
}

#[test]
fn a_timestamp_outside_five_minutes_either_way_fails_even_when_signed() {
    let s = secrets("whsec_a");
    let old = header("whsec_a", NOW - 301, BODY);
    assert_eq!(
        verify(BODY, Some(&old), &s, NOW),
        Err(SignatureError::Stale { age_secs: 301 })
    );
    let future = header("whsec_a", NOW + 301, BODY);
    assert_eq!(
        verify(BODY, Some(&future), &s, NOW),
        Err(SignatureError::Stale { age_secs: -301 })
    );
    let edge = header("whsec_a", NOW - 300, BODY);
    assert_eq!(verify(BODY, Some(&edge), &s, NOW), Ok(()));
}

#[test]
fn the_timestamp_is_signed_so_moving_it_into_the_window_fails() {
    // A replay of a captured delivery with a fresh `t` and the old signature.
    let captured = sign("whsec_a", NOW - 3600, BODY).unwrap();
    let forged = format!("t={NOW},v1={captured}");
    assert_eq!(
        verify(BODY, Some(&forged), &secrets("whsec_a"), NOW),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn any_of_several_v1_signatures_and_any_configured_secret_may_match() {
    // Stripe rolling its secret: two v1 signatures, only the second with our secret.
    let h = format!(
        "t={NOW},v1={},v1={},v0=ignored",
        sign("whsec_old", NOW, BODY).unwrap(),
        sign("whsec_new", NOW, BODY).unwrap()
    );
    assert_eq!(verify(BODY, Some(&h), &secrets("whsec_new"), NOW), Ok(()));
    // Us rolling ours: the delivery is signed with the previous secret, still configured.
    let h = header("whsec_previous", NOW, BODY);
    assert_eq!(
        verify(
            BODY,
            Some(&h),
            &secrets("whsec_current, whsec_previous"),
            NOW
        ),
        Ok(())
    );
}

#[test]
fn only_v1_counts_and_a_header_without_its_parts_fails() {
    let s = secrets("whsec_a");
    let v0_only = format!("t={NOW},v0={}", sign("whsec_a", NOW, BODY).unwrap());
    assert_eq!(
        verify(BODY, Some(&v0_only), &s, NOW),
        Err(SignatureError::NoSignature)
    );
    assert_eq!(
        verify(BODY, Some("v1=abc"), &s, NOW),
        Err(SignatureError::NoTimestamp)
    );
    assert_eq!(
        verify(BODY, Some("t=soon,v1=abc"), &s, NOW),
        Err(SignatureError::NoTimestamp)
    );
    assert_eq!(
        verify(BODY, Some("garbage"), &s, NOW),
        Err(SignatureError::NoTimestamp)
    );
}

#[test]
fn secrets_must_be_signing_secrets_and_are_never_printed() {
    assert!(Secrets::parse("").is_err());
    assert!(Secrets::parse("sk_live_123").is_err());
    assert!(Secrets::parse("whsec_a,sk_test_1").is_err());
    let s = secrets("whsec_a\nwhsec_b");
    assert_eq!(format!("{s:?}"), "Secrets(2 redacted)");
}
