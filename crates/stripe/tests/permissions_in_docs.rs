//! docs/deploy.md step 1 lists the restricted key's permissions in a table: exactly the ones
//! `stockbridge preflight` probes (`account::PERMISSIONS`), in order.

use stockbridge_stripe::account::PERMISSIONS;

#[test]
fn the_deploy_guide_lists_the_permissions_the_preflight_checks() {
    let path = format!("{}/../../docs/deploy.md", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let header = "| resource (as named on the restricted-key form) | access | used for |";
    let table = &text[text.find(header).expect("the permissions table") + header.len()..];
    let rows: Vec<(String, String)> = table
        .lines()
        .skip(2) // the rest of the header line, the separator
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].to_owned(), cells[2].to_owned())
        })
        .collect();
    let wanted: Vec<(String, String)> = PERMISSIONS
        .iter()
        .map(|p| (p.resource.to_owned(), p.access.to_owned()))
        .collect();
    assert_eq!(rows, wanted);
}
