//! Locations, products and the device: uniqueness by field, lookups, bulk import, edits as
//! mergeable automerge changes, and what needs `init_device`.

use crate::{Node, invalid_fields, new_device, open, q, receipt};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use stocksync_model::{
    NewLocation, NewProduct, ProductDoc, ProductFields, ProductId, ProductPatch, ProductStatus, Uom,
};
use stocksync_store::{StoreError, StoreOptions};

fn widget(sku: &str, barcode: Option<&str>) -> NewProduct {
    NewProduct {
        barcode: barcode.map(str::to_owned),
        description: Some("A widget".into()),
        category: Some("tools".into()),
        price: Some("9.99 EUR".parse().unwrap()),
        ..NewProduct::new(sku, format!("Widget {sku}"))
    }
}

fn product_count(node: &Node) -> usize {
    node.store.products().unwrap().len()
}

#[test]
fn add_location_refuses_a_used_code() {
    let node = Node::fresh();
    let added = node.location("A-01");
    assert_eq!(added.name, "Location A-01");
    let first = node.store.location("A-01").unwrap();
    assert_eq!((&first.id, &first.code), (&added.id, &added.code));
    let outbox = node.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].kind, "location_create");
    assert_eq!(outbox[0].body["location_id"], first.id.as_str());
    assert_eq!(outbox[0].body["code"], "A-01");

    let again = node.store.add_location(&NewLocation {
        code: "A-01".into(),
        name: "Another name".into(),
    });
    assert_eq!(invalid_fields(again), ["code"]);
    let bad = node.store.add_location(&NewLocation {
        code: "A 01".into(),
        name: String::new(),
    });
    assert_eq!(invalid_fields(bad), ["code", "name"]);

    assert_eq!(
        node.store.locations().unwrap(),
        std::slice::from_ref(&first)
    );
    assert_eq!(node.outbox().len(), 1);
    assert_eq!(node.store.location("A-01").unwrap(), first);
    assert_eq!(node.store.location(first.id.as_str()).unwrap(), first);
    assert!(matches!(
        node.store.location("Z-99"),
        Err(StoreError::NotFound {
            entity: "location",
            ..
        })
    ));
}

#[test]
fn add_product_refuses_a_used_sku_or_barcode_by_field() {
    let node = Node::fresh();
    let first = node.store.add_product(&widget("W-1", Some("111"))).unwrap();
    assert_eq!(first.version, 0);
    assert_eq!(first.status, ProductStatus::Active);
    let ops = node.outbox().len();

    let sku = node.store.add_product(&widget("W-1", Some("222")));
    assert_eq!(invalid_fields(sku), ["sku"]);
    let barcode = node.store.add_product(&widget("W-2", Some("111")));
    assert_eq!(invalid_fields(barcode), ["barcode"]);
    let both = node.store.add_product(&widget("W-1", Some("111")));
    assert_eq!(invalid_fields(both), ["barcode", "sku"]);

    assert_eq!(product_count(&node), 1);
    assert_eq!(node.outbox().len(), ops);
    // No barcode is not a duplicate of another product's missing barcode.
    node.store.add_product(&widget("W-2", None)).unwrap();
    node.store.add_product(&widget("W-3", None)).unwrap();
    assert_eq!(product_count(&node), 3);
}

#[test]
fn add_product_stores_its_document_and_create_op() {
    let node = Node::fresh();
    let product = node
        .store
        .add_product(&widget("W-1", Some("4006381333931")))
        .unwrap();
    let op = node.outbox().pop().unwrap();
    assert_eq!(op.kind, "product_create");
    assert_eq!(op.body["product_id"], product.id.as_str());
    assert_eq!(op.body["sku"], "W-1");
    assert_eq!(op.body["name"], "Widget W-1");
    assert_eq!(op.body["uom"], "EACH");
    let carried =
        ProductDoc::load(&BASE64.decode(op.body["doc"].as_str().unwrap()).unwrap()).unwrap();
    let expected = ProductFields::from(&widget("W-1", Some("4006381333931")));
    assert_eq!(carried.fields().unwrap(), expected);
    assert_eq!(
        node.store
            .product_doc(&product.id)
            .unwrap()
            .fields()
            .unwrap(),
        expected
    );
}

#[test]
fn find_product_by_barcode_sku_or_id() {
    let node = Node::fresh();
    let a = node
        .store
        .add_product(&widget("SKU-A", Some("4006381333931")))
        .unwrap();
    let a = node.store.product(&a.id).unwrap();
    // B's SKU is A's barcode: the barcode, scanned, wins.
    let b = node
        .store
        .add_product(&widget("4006381333931", None))
        .unwrap();
    let find = |code: &str| node.store.find_product(code).unwrap().map(|p| p.id);

    assert_eq!(find("4006381333931"), Some(a.id.clone()));
    assert_eq!(find("SKU-A"), Some(a.id.clone()));
    assert_eq!(find(a.id.as_str()), Some(a.id.clone()));
    assert_eq!(find(b.id.as_str()), Some(b.id.clone()));
    assert_eq!(find("nothing-like-it"), None);
    assert_eq!(find(ProductId::new().as_str()), None);
    assert_eq!(find(""), None);
    assert_eq!(node.store.product(&a.id).unwrap(), a);
    assert!(matches!(
        node.store.product(&ProductId::new()),
        Err(StoreError::NotFound {
            entity: "product",
            ..
        })
    ));
}

#[test]
fn import_products_adds_a_thousand_in_one_call() {
    let node = Node::fresh();
    let rows: Vec<NewProduct> = (0..1000)
        .map(|i| {
            let mut p = widget(&format!("IMP-{i:04}"), Some(&format!("200{i:010}")));
            if i % 3 == 0 {
                p.uom = Uom::Kg;
                p.barcode = None;
            }
            p
        })
        .collect();
    assert_eq!(node.store.import_products(&rows).unwrap(), 1000);

    let products = node.store.products().unwrap();
    assert_eq!(products.len(), 1000);
    assert_eq!(products[0].sku, "IMP-0000");
    assert_eq!(products[999].sku, "IMP-0999");
    assert_eq!(products[3].uom, Uom::Kg);
    let outbox = node.outbox();
    assert_eq!(outbox.len(), 1000);
    assert!(outbox.iter().all(|o| o.kind == "product_create"));
    assert_eq!(outbox[999].device_seq, 1000);
    let found = node.store.find_product("2000000000500").unwrap().unwrap();
    assert_eq!(found.sku, "IMP-0500");
    assert_eq!(
        node.store
            .product_doc(&found.id)
            .unwrap()
            .fields()
            .unwrap()
            .barcode
            .as_deref(),
        Some("2000000000500")
    );
    node.assert_consistent();
}

#[test]
fn import_products_is_all_or_nothing_and_names_the_row() {
    let node = Node::fresh();
    node.store
        .add_product(&widget("EXISTING", Some("999")))
        .unwrap();
    let before = (product_count(&node), node.outbox(), node.next_seq());
    let batch = || -> Vec<NewProduct> {
        (0..10)
            .map(|i| widget(&format!("B-{i}"), Some(&format!("50{i}"))))
            .collect()
    };

    // Row 5 repeats row 2's SKU.
    let mut rows = batch();
    rows[5].sku = rows[2].sku.clone();
    assert_eq!(
        invalid_fields(node.store.import_products(&rows)),
        ["rows[5].sku"]
    );
    // Row 7 repeats a barcode already in the catalog.
    let mut rows = batch();
    rows[7].barcode = Some("999".into());
    assert_eq!(
        invalid_fields(node.store.import_products(&rows)),
        ["rows[7].barcode"]
    );
    // Row 1 is invalid in itself.
    let mut rows = batch();
    rows[1].name = String::new();
    rows[1].price = Some("-1 EUR".parse().unwrap());
    assert_eq!(
        invalid_fields(node.store.import_products(&rows)),
        ["rows[1].name", "rows[1].price.amount"]
    );

    let after = (product_count(&node), node.outbox(), node.next_seq());
    assert_eq!(after, before, "a failed import added something");
    assert_eq!(node.store.find_product("B-0").unwrap(), None);

    // The same batch, fixed, goes in whole.
    assert_eq!(node.store.import_products(&batch()).unwrap(), 10);
    assert_eq!(product_count(&node), 11);
}

#[test]
fn edit_product_appends_one_mergeable_change() {
    let node = Node::fresh();
    let product = node.store.add_product(&widget("W-1", Some("111"))).unwrap();
    let product = node.store.product(&product.id).unwrap();
    let original_op = node.outbox().pop().unwrap();
    let patch = ProductPatch {
        name: Some("Widget, renamed".into()),
        barcode: Some(Some("222".into())),
        category: Some(None),
        price: Some(Some("12.50 EUR".parse().unwrap())),
        // Unchanged: not part of the change.
        status: Some(ProductStatus::Active),
        ..ProductPatch::default()
    };
    let ops_before = node.outbox().len();

    let edited = node.store.edit_product(&product.id, &patch).unwrap();
    assert_eq!(edited.name, "Widget, renamed");
    assert_eq!(edited.barcode.as_deref(), Some("222"));
    assert_eq!(edited.category, None);
    assert_eq!(edited.price, Some("12.5 EUR".parse().unwrap()));
    assert_eq!(edited.sku, "W-1");
    assert_eq!(edited.description.as_deref(), Some("A widget"));
    assert!(edited.updated_at >= product.updated_at);
    assert_eq!(edited.created_at, product.created_at);
    assert_eq!(node.store.product(&product.id).unwrap(), edited);
    assert_eq!(
        node.store.find_product("222").unwrap(),
        Some(edited.clone())
    );
    assert_eq!(node.store.find_product("111").unwrap(), None);

    let outbox = node.outbox();
    assert_eq!(outbox.len(), ops_before + 1);
    let op = outbox.last().unwrap();
    assert_eq!(op.kind, "product_change");
    assert_eq!(op.body["product_id"], product.id.as_str());
    assert_eq!(op.body["base_version"], 0);
    let mut fields: Vec<&str> = op.body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["barcode", "category", "name", "price"]);

    // The change, applied to a copy of the document the create op carried, gives the edit.
    let mut doc = ProductDoc::load(
        &BASE64
            .decode(original_op.body["doc"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let changes = BASE64.decode(op.body["changes"].as_str().unwrap()).unwrap();
    doc.apply_changes(&changes).unwrap();
    let merged = doc.fields().unwrap();
    let expected = ProductFields {
        sku: "W-1".into(),
        barcode: Some("222".into()),
        name: "Widget, renamed".into(),
        description: Some("A widget".into()),
        category: None,
        status: ProductStatus::Active,
        uom: Uom::Each,
        price: Some("12.50 EUR".parse().unwrap()),
    };
    assert_eq!(merged, expected);
    assert_eq!(
        node.store
            .product_doc(&product.id)
            .unwrap()
            .fields()
            .unwrap(),
        expected
    );
    assert!(doc.conflicts().unwrap().is_empty());
}

#[test]
fn an_edit_that_changes_nothing_appends_nothing() {
    let node = Node::fresh();
    let product = node.store.add_product(&widget("W-1", Some("111"))).unwrap();
    let product = node.store.product(&product.id).unwrap();
    let before = (node.outbox(), node.next_seq());
    let same = ProductPatch {
        name: Some(product.name.clone()),
        barcode: Some(Some("111".into())),
        price: Some(Some("9.990 EUR".parse().unwrap())),
        ..ProductPatch::default()
    };
    let after_edit = node.store.edit_product(&product.id, &same).unwrap();
    assert_eq!(after_edit, product, "a no-op edit changed the product");
    assert_eq!((node.outbox(), node.next_seq()), before);

    // An empty patch is refused as input.
    assert_eq!(
        invalid_fields(
            node.store
                .edit_product(&product.id, &ProductPatch::default())
        ),
        ["fields"]
    );
    assert!(matches!(
        node.store.edit_product(&ProductId::new(), &same),
        Err(StoreError::NotFound {
            entity: "product",
            ..
        })
    ));
    assert_eq!((node.outbox(), node.next_seq()), before);
}

#[test]
fn an_edit_to_a_used_barcode_or_sku_is_refused() {
    let node = Node::fresh();
    let a = node.store.add_product(&widget("W-1", Some("111"))).unwrap();
    let b = node.store.add_product(&widget("W-2", Some("222"))).unwrap();
    let before = (node.store.products().unwrap(), node.outbox());
    let doc_before = node.store.product_doc(&b.id).unwrap().fields().unwrap();

    let barcode = ProductPatch {
        barcode: Some(Some("111".into())),
        ..ProductPatch::default()
    };
    assert_eq!(
        invalid_fields(node.store.edit_product(&b.id, &barcode)),
        ["barcode"]
    );
    let sku = ProductPatch {
        sku: Some("W-1".into()),
        name: Some("Other".into()),
        ..ProductPatch::default()
    };
    assert_eq!(
        invalid_fields(node.store.edit_product(&b.id, &sku)),
        ["sku"]
    );

    assert_eq!((node.store.products().unwrap(), node.outbox()), before);
    assert_eq!(
        node.store.product_doc(&b.id).unwrap().fields().unwrap(),
        doc_before
    );
    // A product may keep its own barcode, and take one nobody uses.
    let own = ProductPatch {
        barcode: Some(Some("111".into())),
        name: Some("Widget one".into()),
        ..ProductPatch::default()
    };
    assert_eq!(
        node.store.edit_product(&a.id, &own).unwrap().name,
        "Widget one"
    );
}

#[test]
fn writes_before_init_device_are_refused_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blank.db");
    let store = open(&path);

    assert!(matches!(store.device(), Err(StoreError::NotInitialised)));
    let location = store.add_location(&NewLocation {
        code: "A-01".into(),
        name: "Aisle".into(),
    });
    assert!(
        matches!(location, Err(StoreError::NotInitialised)),
        "{location:?}"
    );
    let product = store.add_product(&widget("W-1", None));
    assert!(
        matches!(product, Err(StoreError::NotInitialised)),
        "{product:?}"
    );
    let import = store.import_products(&[widget("W-1", None), widget("W-2", None)]);
    assert!(
        matches!(import, Err(StoreError::NotInitialised)),
        "{import:?}"
    );
    let edit = store.edit_product(
        &ProductId::new(),
        &ProductPatch {
            name: Some("x".into()),
            ..ProductPatch::default()
        },
    );
    assert!(matches!(edit, Err(StoreError::NotInitialised)), "{edit:?}");

    // Nothing half-written: the location row went back with its failed op.
    assert!(store.locations().unwrap().is_empty());
    assert!(store.products().unwrap().is_empty());
    assert!(store.outbox().unwrap().is_empty());

    // Then init makes it work.
    let device = store.init_device(&new_device()).unwrap();
    assert_eq!(store.device().unwrap(), device);
    let loc = store
        .add_location(&NewLocation {
            code: "A-01".into(),
            name: "Aisle".into(),
        })
        .unwrap();
    let p = store.add_product(&widget("W-1", None)).unwrap();
    store
        .record_movement(&receipt(&p.id, &loc.id, q("1", Uom::Each)))
        .unwrap();
    assert_eq!(store.outbox().unwrap().len(), 3);
}

#[test]
fn init_device_once_only() {
    let node = Node::fresh();
    let device = &node.device;
    assert!(device.device_id.as_str().starts_with("dev_"));
    assert_eq!(device.org_id, "org_test");
    assert_eq!(device.name, "Test scanner");

    match node.store.init_device(&new_device()) {
        Err(StoreError::AlreadyInitialised(id)) => assert_eq!(id, device.device_id.as_str()),
        other => panic!("expected AlreadyInitialised, got {other:?}"),
    }
    // Also from another handle on the file, and after a re-open.
    let other = stocksync_store::Store::open(&node.path, &StoreOptions::default()).unwrap();
    assert!(matches!(
        other.init_device(&new_device()),
        Err(StoreError::AlreadyInitialised(_))
    ));
    assert_eq!(other.device().unwrap(), *device);
    assert_eq!(node.store.device().unwrap(), *device);

    // Bad input is named by field, before anything else.
    let fresh = tempfile::tempdir().unwrap();
    let store = open(&fresh.path().join("x.db"));
    let mut bad = new_device();
    bad.name = "  ".into();
    bad.org_id = String::new();
    assert_eq!(invalid_fields(store.init_device(&bad)), ["name", "org"]);
    assert!(matches!(store.device(), Err(StoreError::NotInitialised)));
}

/// What `add_*` returns is what every later read gives (times at the stored millisecond
/// precision), and an edit never returns an `updated_at` before the one `add_product` returned.
#[test]
fn what_add_returns_is_what_is_stored() {
    let node = Node::fresh();
    let location = node.location("A-01");
    let product = node.store.add_product(&widget("W-1", Some("111"))).unwrap();
    assert_eq!(node.store.location("A-01").unwrap(), location);
    assert_eq!(node.store.product(&product.id).unwrap(), product);
}
