//! The reconciler's session check stays within the orders the table keeps.

use stockbridge_bootstrap::within_retention;
use stockbridge_dynamodb::Retention;

#[test]
fn the_session_check_never_reaches_past_the_orders_the_table_keeps() {
    let forty_days = Retention::days(40).unwrap();
    assert_eq!(within_retention(24, forty_days), 24);
    assert_eq!(within_retention(35 * 24, forty_days), 35 * 24);
    assert_eq!(
        within_retention(36 * 24, forty_days),
        35 * 24,
        "five days of margin"
    );
    assert_eq!(
        within_retention(10_000, None),
        10_000,
        "kept for good: any window"
    );
}
