use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

/// Splits `body` fed in chunks of `chunk` bytes: the items, and the rest decoded.
fn split(body: &[u8], chunk: usize) -> Result<(Vec<Value>, Value), ListSplitError> {
    let mut s = ListSplitter::new(1 << 20);
    let mut items = Vec::new();
    for c in body.chunks(chunk.max(1)) {
        s.feed(c, |item| {
            items.push(serde_json::from_slice::<Value>(item).map_err(|e| e.to_string())?);
            Ok::<_, String>(())
        })
        .map_err(|e| match e {
            FeedError::List(e) => e,
            FeedError::Item(e) => panic!("an item did not decode: {e}"),
        })?;
    }
    let n = s.items();
    let rest = s.finish()?;
    assert_eq!(n, items.len() as u64);
    Ok((items, serde_json::from_slice(&rest).unwrap()))
}

#[test]
fn a_list_splits_into_its_items_and_the_rest() {
    let body = br#"{"kind":"SealedSecretList","apiVersion":"bitnami.com/v1alpha1",
        "metadata":{"resourceVersion":"7","continue":"abc"},
        "items":[ {"metadata":{"name":"a"},"spec":{"x":[1,{"y":"}]"}]}} ,
                  {"metadata":{"name":"b \"items\": [ {"}} ]}"#;
    for chunk in [1, 2, 3, 7, 64, body.len()] {
        let (items, rest) = split(body, chunk).unwrap();
        assert_eq!(items.len(), 2, "chunk {chunk}");
        assert_eq!(items[0]["spec"]["x"][1]["y"], "}]");
        assert_eq!(items[1]["metadata"]["name"], "b \"items\": [ {");
        assert_eq!(rest["metadata"]["continue"], "abc");
        assert_eq!(rest["items"], json!([]));
    }
}

#[test]
fn only_the_top_level_items_key_is_split() {
    // `items` inside metadata, as a value, and in a key ending in `items`: all kept whole.
    let body = br#"{"metadata":{"items":[{"a":1}]},"kind":"items","xitems":[{"b":2}],
        "items":[{"c":3}]}"#;
    let (items, rest) = split(body, 5).unwrap();
    assert_eq!(items, vec![json!({"c": 3})]);
    assert_eq!(rest["metadata"]["items"], json!([{"a": 1}]));
    assert_eq!(rest["xitems"], json!([{"b": 2}]));
    assert_eq!(rest["kind"], "items");
}

#[test]
fn empty_and_missing_items_give_no_item() {
    for body in [
        &br#"{"items":[]}"#[..],
        br#"{"items": null}"#,
        br#"{"metadata":{}}"#,
    ] {
        let (items, _) = split(body, 3).unwrap();
        assert!(items.is_empty());
    }
}

#[test]
fn bad_bodies_are_errors_naming_where() {
    let e = split(br#"{"items":[{"a":1}, 2]}"#, 4).unwrap_err();
    assert_eq!(
        e,
        ListSplitError::NotAnObject {
            index: 1,
            offset: 19
        }
    );
    assert!(e.to_string().contains("element 1"), "{e}");
    assert!(matches!(
        split(br#"{"items":[{"a":1}]}}"#, 4),
        Err(ListSplitError::Unbalanced { offset: 19 })
    ));
    for truncated in [
        &br#"{"items":[{"a":1}"#[..],
        br#"{"items":[{"a":"#,
        br#"{"a":"x"#,
    ] {
        assert!(
            matches!(split(truncated, 2), Err(ListSplitError::Truncated { .. })),
            "{}",
            String::from_utf8_lossy(truncated)
        );
    }
}

#[test]
fn an_item_or_rest_above_the_limit_is_refused() {
    let mut s = ListSplitter::new(16);
    let e = s
        .feed(br#"{"items":[{"a":"0123456789abcdef"}]}"#, |_| {
            Ok::<_, ()>(())
        })
        .unwrap_err();
    assert!(matches!(
        e,
        FeedError::List(ListSplitError::TooLarge {
            index: 0,
            limit: 16
        })
    ));
    let mut s = ListSplitter::new(16);
    let e = s
        .feed(br#"{"metadata":{"continue":"0123456789"}}"#, |_| {
            Ok::<_, ()>(())
        })
        .unwrap_err();
    assert!(matches!(
        e,
        FeedError::List(ListSplitError::RestTooLarge { limit: 16 })
    ));
}

#[test]
fn the_callers_error_stops_the_split() {
    let mut s = ListSplitter::new(1024);
    let mut seen = 0;
    let e = s.feed(br#"{"items":[{"a":1},{"b":2}]}"#, |_| {
        seen += 1;
        Err("stop")
    });
    assert!(matches!(e, Err(FeedError::Item("stop"))));
    assert_eq!(seen, 1);
}

/// JSON values with strings full of the characters the splitter tracks.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[\\[\\]{}\"\\\\:, a-z\u{e9}\u{1F600}]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z\"\\[{]{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// Whatever the items hold and however the body is cut, the split gives back each item
    /// and the rest with `items` emptied.
    #[test]
    fn any_list_splits_back_into_its_items(
        items in prop::collection::vec(
            prop::collection::btree_map("[a-z\"\\[{]{0,6}", value(), 0..4), 0..6),
        meta in value(),
        chunk in 1usize..40,
        pretty in any::<bool>(),
    ) {
        let items: Vec<Value> =
            items.into_iter().map(|m| Value::Object(m.into_iter().collect())).collect();
        let list = json!({"metadata": meta, "items": items, "kind": "List"});
        let body = if pretty {
            serde_json::to_vec_pretty(&list).unwrap()
        } else {
            serde_json::to_vec(&list).unwrap()
        };
        let (got, rest) = split(&body, chunk).unwrap();
        prop_assert_eq!(&got, &items);
        let mut expected = list.clone();
        expected["items"] = json!([]);
        prop_assert_eq!(rest, expected);
    }

    /// Arbitrary bytes give items or an error, never a panic.
    #[test]
    fn any_bytes_split_without_panic(body in prop::collection::vec(any::<u8>(), 0..256),
                                     chunk in 1usize..16) {
        let mut s = ListSplitter::new(64);
        for c in body.chunks(chunk) {
            if s.feed(c, |_| Ok::<_, ()>(())).is_err() {
                return Ok(());
            }
        }
        let _ = s.finish();
    }
}
