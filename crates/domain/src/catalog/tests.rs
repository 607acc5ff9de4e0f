use super::*;

fn details() -> ProductDetails {
    ProductDetails {
        product_id: ProductId::parse("tee").unwrap(),
        name: "Tee".into(),
        description: Some("Soft".into()),
        images: vec!["https://img/1.png".into()],
        price: Money::new(1500, "USD").unwrap(),
        active: true,
        metadata: BTreeMap::from([("color".into(), "blue".into())]),
        stores: BTreeSet::from([StoreId::parse("s1").unwrap()]),
        revision: 2,
        updated_at: Timestamp(0),
    }
}

fn stripe_product(d: &ProductDetails) -> StripeProduct {
    StripeProduct {
        id: d.product_id.clone(),
        name: d.name.clone(),
        description: d.description.clone(),
        images: d.images.clone(),
        active: d.active,
        metadata: d.metadata.clone(),
        updated: 1,
        default_price: None,
    }
}

fn price(id: &str, amount: u64, active: bool) -> StripePrice {
    StripePrice {
        id: PriceId::parse(id).unwrap(),
        product: ProductId::parse("tee").unwrap(),
        amount: Some(amount),
        currency: "usd".into(),
        active,
    }
}

#[test]
fn money_lowercases_and_refuses_a_bad_currency() {
    assert_eq!(Money::new(1, " EUR").unwrap().currency, "eur");
    assert!(matches!(
        Money::new(1, "dollars"),
        Err(DetailsError::Invalid {
            field: "currency",
            ..
        })
    ));
}

#[test]
fn validation_names_the_field() {
    let mut d = details();
    d.images = vec!["ftp://x".into()];
    assert!(matches!(
        d.validate(),
        Err(DetailsError::Invalid {
            field: "images",
            ..
        })
    ));
    let mut d = details();
    d.stores.clear();
    assert!(matches!(
        d.validate(),
        Err(DetailsError::Invalid {
            field: "stores",
            ..
        })
    ));
    let mut d = details();
    d.name = " ".into();
    assert!(d.validate().is_err());
    assert_eq!(details().validate(), Ok(()));
}

#[test]
fn agreeing_sides_have_no_diffs_and_a_rename_is_one() {
    let d = details();
    let fields = product_fields(&d, &StripeMapping::default());
    let mut s = stripe_product(&d);
    assert!(product_diffs(&fields, &s).is_empty());
    s.name = "Dashboard edit".into();
    s.metadata.insert("tax_note".into(), "theirs".into());
    let diffs = product_diffs(&fields, &s);
    assert_eq!(diffs.len(), 1);
    assert_eq!(diffs[0].field, "name");
    assert_eq!(diffs[0].found, "Dashboard edit");
    assert_eq!(diffs[0].expected, "Tee");
    // Metadata the catalog does not define belongs to Stripe: recorded, not a diff.
    assert_eq!(
        stripe_owned_metadata(&fields, &s),
        BTreeMap::from([("tax_note".into(), "theirs".into())])
    );
}

#[test]
fn a_key_the_catalog_dropped_is_removed_and_others_are_left() {
    let mut d = details();
    d.metadata.clear();
    let mapping = StripeMapping {
        metadata_keys: BTreeSet::from(["color".into()]),
        ..StripeMapping::default()
    };
    let fields = product_fields(&d, &mapping);
    assert_eq!(fields.metadata_removed, BTreeSet::from(["color".into()]));
    let s = stripe_product(&details());
    let diffs = product_diffs(&fields, &s);
    assert_eq!(diffs.len(), 1);
    assert_eq!(diffs[0].field, "metadata.color");
    assert!(stripe_owned_metadata(&fields, &s).is_empty());
}

#[test]
fn an_empty_description_at_stripe_equals_none() {
    let mut d = details();
    d.description = None;
    let fields = product_fields(&d, &StripeMapping::default());
    let mut s = stripe_product(&d);
    s.description = Some(String::new());
    assert!(product_diffs(&fields, &s).is_empty());
}

#[test]
fn drift_is_a_difference_after_the_revision_was_synced() {
    let d = details();
    let mut m = StripeMapping {
        synced_revision: 1,
        ..StripeMapping::default()
    };
    assert!(!is_drift(&d, &m));
    m.synced_revision = 2;
    assert!(is_drift(&d, &m));
}

#[test]
fn the_price_is_kept_adopted_or_created() {
    let d = details();
    let mapped = price("price_a", 1500, true);
    let m = StripeMapping {
        price_id: Some(mapped.id.clone()),
        ..StripeMapping::default()
    };
    assert_eq!(
        choose_price(&d, &m, Some(&mapped), &[]),
        PriceChoice::Keep(mapped.id.clone())
    );
    // Archived by someone: an active one with the amount is adopted, else a new one.
    let archived = price("price_a", 1500, false);
    let other = price("price_b", 1500, true);
    assert_eq!(
        choose_price(&d, &m, Some(&archived), std::slice::from_ref(&other)),
        PriceChoice::Adopt(other.id.clone())
    );
    assert_eq!(
        choose_price(&d, &m, Some(&archived), &[price("price_c", 999, true)]),
        PriceChoice::Create
    );
    // A new amount never keeps the old price.
    let mut d2 = details();
    d2.price = Money::new(2000, "usd").unwrap();
    assert_eq!(
        choose_price(&d2, &m, Some(&mapped), &[]),
        PriceChoice::Create
    );
}

#[test]
fn a_link_on_an_old_price_is_replaced() {
    let p = PriceId::parse("price_new").unwrap();
    let link = |price: &str| StripeLink {
        id: PaymentLinkId::parse("plink_1").unwrap(),
        active: true,
        prices: vec![PriceId::parse(price).unwrap()],
        products: vec![],
        store_id: None,
        product_id: None,
    };
    assert_eq!(plan_link(None, &p), LinkPlan::Create);
    assert_eq!(
        plan_link(Some(&link("price_new")), &p),
        LinkPlan::Keep(PaymentLinkId::parse("plink_1").unwrap())
    );
    assert_eq!(
        plan_link(Some(&link("price_old")), &p),
        LinkPlan::Replace(PaymentLinkId::parse("plink_1").unwrap())
    );
}

#[test]
fn keys_are_stable_distinct_and_short_enough() {
    let p = ProductId::parse("tee").unwrap();
    let a = sync_key(&p, "price", 3, "1500 usd");
    assert_eq!(a, sync_key(&p, "price", 3, "1500 usd"));
    assert_ne!(a, sync_key(&p, "price", 4, "1500 usd"));
    assert_ne!(a, sync_key(&p, "price", 3, "1600 usd"));
    let long = ProductId::parse("x".repeat(200)).unwrap();
    assert!(sync_key(&long, "product-update", u64::MAX, "f").len() <= 255);
    let wide = ProductId::parse("é".repeat(150)).unwrap();
    let k = sync_key(&wide, "link-störe", 1, "f");
    assert!(k.len() <= 255 && k.is_ascii(), "{k}");
    assert_ne!(k, sync_key(&wide, "link-störe", 1, "g"));
}
