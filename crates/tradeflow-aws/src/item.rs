//! Mapping between domain types and DynamoDB items, through `serde_dynamo`.
//!
//! Domain types are stored with the attribute names of their serde field names: a struct becomes
//! an item (`M` at the top level), nested structs and maps `M`, sequences `L`, strings and unit
//! enum variants `S`, numbers `N`, bools `BOOL` and `None` `NULL` (docs/data-model.md). Numbers
//! keep their kind on the way back: `N "5"` reads into an integer field, and into a float field
//! too (DynamoDB may return `101.0` as `"101"`).
//!
//! # Why `serde_dynamo`, and what it changed
//!
//! It replaced a hand-written bridge that went value → `serde_json::Value` → attribute values and
//! back; nothing measured argued for keeping it. Side by side on an execution record with five
//! steps (release build, this 2-core machine under load, 20 000 rounds, 2026-12-01): encode 13.5–15
//! µs with the bridge, 14.4–14.7 µs with `serde_dynamo`; decode 13.9 µs with the bridge, 9–12 µs
//! with `serde_dynamo` (14.7–17 µs including a 5.4 µs clone of the item, which the adapters do
//! not need: they own the items they read). Both are noise next to one DynamoDB round trip
//! (milliseconds). The `item_mapping_cost` test in `tests/item_layout.rs` repeats the
//! measurement for `serde_dynamo`. Every stored item
//! keeps its attribute names, types and nesting (pinned attribute by attribute by the golden items
//! in `tests/item_layout.rs`). Two things differ, neither in what DynamoDB stores:
//! - A float's `N` text is Rust's shortest round-trip form without exponent: `100.0` is written
//!   `"100"` (the bridge wrote `"100.0"`), `1e-7` `"0.0000001"` (was `"1e-7"`). Same number:
//!   DynamoDB stores `N` as a decimal with leading and trailing zeros trimmed, so on AWS the item
//!   is the same; the emulator (moto) keeps the text as sent.
//! - Free-form JSON inside an item (a signal's metadata values) reads a whole float back as a JSON
//!   integer (`150` for `150.0`), as the bridge already did on AWS, where `"150.0"` comes back as
//!   `"150"`.
//!
//! Non-finite floats (`NaN`, `inf`) are refused here with the attribute's path: DynamoDB rejects
//! them (the bridge silently turned them into `NULL`, the emulator would store them).
//!
//! Pipelines, executions and orders are mapped here. Leases and cursors are not mapped types:
//! their few attributes are written one by one in conditional expressions and read back with
//! [`get_s`], [`get_i64`] and [`get_bool`].

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A DynamoDB item: attribute name → value.
pub type Item = HashMap<String, AttributeValue>;

/// Why a value cannot be turned into an item or an item into a value.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    /// The value does not serialize into an item (not a struct or string-keyed map, or a map
    /// with keys that are not strings).
    #[error("value does not serialize into an item: {0}")]
    Serialize(#[source] serde_dynamo::Error),
    /// A float that DynamoDB cannot store.
    #[error("attribute {path} holds {raw:?}, not a finite number")]
    NotFinite {
        /// Where in the item, e.g. `$.steps[0].outputs.atr`.
        path: String,
        /// The number's text.
        raw: String,
    },
    /// The item does not deserialize into the target type.
    #[error("item does not decode: {0}")]
    Deserialize(#[source] serde_dynamo::Error),
}

/// Serializes `value` (a struct or a string-keyed map) into an item.
pub fn to_item<T: Serialize + ?Sized>(value: &T) -> Result<Item, ItemError> {
    let item: Item =
        serde_dynamo::aws_sdk_dynamodb_1::to_item(value).map_err(ItemError::Serialize)?;
    for (name, attribute) in &item {
        if let Some((path, raw)) = non_finite(attribute) {
            return Err(ItemError::NotFinite {
                path: format!("$.{name}{path}"),
                raw,
            });
        }
    }
    Ok(item)
}

/// The first number in `value` that is not finite, as (path below `value`, text). `f64` is
/// written without exponent, so a letter in the text can only be `NaN` or `inf`.
fn non_finite(value: &AttributeValue) -> Option<(String, String)> {
    match value {
        AttributeValue::N(raw) if raw.bytes().any(|b| b.is_ascii_alphabetic()) => {
            Some((String::new(), raw.clone()))
        }
        AttributeValue::L(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| non_finite(v).map(|(path, raw)| (format!("[{i}]{path}"), raw))),
        AttributeValue::M(map) => map
            .iter()
            .find_map(|(k, v)| non_finite(v).map(|(path, raw)| (format!(".{k}{path}"), raw))),
        _ => None,
    }
}

/// Deserializes an item into `T`. Attributes `T` does not know are ignored unless `T` denies them.
pub fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, ItemError> {
    serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(ItemError::Deserialize)
}

/// Reads a string attribute (`S`), if present with that type.
pub fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// Reads an integer number attribute (`N`), if present with that type and integral.
pub fn get_i64(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.trim().parse::<i64>().ok())
}

/// Reads a bool attribute (`BOOL`), if present with that type.
pub fn get_bool(item: &Item, name: &str) -> Option<bool> {
    item.get(name).and_then(|v| v.as_bool().ok()).copied()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    //! The assertions of the JSON bridge's tests that still apply to the mapping, plus what
    //! changed (number text, non-finite floats). The layouts of the stored types are pinned in
    //! `tests/item_layout.rs`.

    use super::*;
    use serde::Deserialize;
    use serde_json::{Value, json};

    fn n(raw: &str) -> AttributeValue {
        AttributeValue::N(raw.into())
    }

    fn read(attribute: AttributeValue) -> Value {
        let item = HashMap::from([("v".to_string(), attribute)]);
        from_item::<HashMap<String, Value>>(item).unwrap()["v"].clone()
    }

    #[test]
    fn json_round_trips_through_items() {
        let value = json!({
            "s": "text", "empty": "", "i": 5, "neg": -42, "big": u64::MAX, "f": 5.5,
            "t": true, "nothing": null,
            "list": [1, "two", [3.25], {"four": false}],
            "nested": {"a": {"b": []}, "c": {}}
        });
        let item = to_item(&value).unwrap();
        assert_eq!(from_item::<Value>(item).unwrap(), value);
    }

    #[test]
    fn numbers_keep_their_kind() {
        assert_eq!(read(n("5")), json!(5));
        assert!(read(n("5")).is_i64());
        assert_eq!(read(n("5.5")), json!(5.5));
        assert_eq!(read(n("1E+3")), json!(1000.0));
        assert_eq!(read(n(".5")), json!(0.5));
        assert_eq!(read(n("18446744073709551615")), json!(u64::MAX));
        for bad in ["", "abc"] {
            let item = HashMap::from([("v".to_string(), n(bad))]);
            assert!(
                matches!(
                    from_item::<HashMap<String, Value>>(item),
                    Err(ItemError::Deserialize(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn each_kind_maps_to_its_attribute_type() {
        let item = to_item(&json!({
            "null": null, "bool": true, "int": 7, "float": 2.5, "whole_float": 100.0,
            "string": "x", "list": ["x"], "map": {"k": 1}
        }))
        .unwrap();
        assert_eq!(item["null"], AttributeValue::Null(true));
        assert_eq!(item["bool"], AttributeValue::Bool(true));
        assert_eq!(item["int"], n("7"));
        assert_eq!(item["float"], n("2.5"));
        // The bridge wrote "100.0"; DynamoDB stores both as the number 100.
        assert_eq!(item["whole_float"], n("100"));
        assert_eq!(item["string"], AttributeValue::S("x".into()));
        assert_eq!(
            item["list"],
            AttributeValue::L(vec![AttributeValue::S("x".into())])
        );
        assert_eq!(
            item["map"],
            AttributeValue::M(HashMap::from([("k".to_string(), n("1"))]))
        );
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        id: String,
        count: u32,
        price: f64,
        maybe: Option<i64>,
        tags: Vec<String>,
        inner: Inner,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Inner {
        flag: bool,
    }

    fn sample() -> Sample {
        Sample {
            id: "a".into(),
            count: 3,
            price: 101.0,
            maybe: None,
            tags: vec!["x".into(), "y".into()],
            inner: Inner { flag: true },
        }
    }

    #[test]
    fn structs_round_trip_through_items() {
        let item = to_item(&sample()).unwrap();
        assert_eq!(item["id"], AttributeValue::S("a".into()));
        assert_eq!(item["count"], n("3"));
        assert_eq!(item["maybe"], AttributeValue::Null(true));
        assert_eq!(from_item::<Sample>(item.clone()).unwrap(), sample());
        // DynamoDB normalises "101.0" to "101"; a float field reads either.
        let mut normalised = item.clone();
        normalised.insert("price".into(), n("101.0"));
        normalised.insert("ttl".into(), n("99"));
        normalised.remove("maybe");
        assert_eq!(from_item::<Sample>(normalised).unwrap(), sample());
    }

    #[test]
    fn refuses_what_it_cannot_represent() {
        assert!(matches!(to_item(&5), Err(ItemError::Serialize(_))));
        assert!(matches!(
            to_item(&HashMap::from([((1, 2), 3)])),
            Err(ItemError::Serialize(_))
        ));
        let item = HashMap::from([("id".to_string(), n("1"))]);
        assert!(matches!(
            from_item::<Sample>(item),
            Err(ItemError::Deserialize(_))
        ));
    }

    #[test]
    fn non_finite_floats_are_refused_with_their_path() {
        #[derive(Serialize)]
        struct Record {
            steps: Vec<Step>,
        }
        #[derive(Serialize)]
        struct Step {
            outputs: std::collections::BTreeMap<String, f64>,
        }
        for (bad, raw) in [
            (f64::NAN, "NaN"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            let value = Record {
                steps: vec![
                    Step {
                        outputs: [("ok".to_owned(), 1.0)].into(),
                    },
                    Step {
                        outputs: [("atr".to_owned(), bad)].into(),
                    },
                ],
            };
            match to_item(&value) {
                Err(ItemError::NotFinite { path, raw: got }) => {
                    assert_eq!(path, "$.steps[1].outputs.atr");
                    assert_eq!(got, raw);
                }
                other => panic!("{raw}: expected NotFinite, got {other:?}"),
            }
        }
        // Exponent-free text of ordinary floats is never mistaken for one.
        let fine = to_item(&json!({"tiny": 1e-7, "huge": 1e21, "neg": -0.5})).unwrap();
        assert_eq!(fine["tiny"], n("0.0000001"));
        assert_eq!(fine["huge"], n("1000000000000000000000"));
    }

    #[test]
    fn typed_getters_read_only_their_type() {
        let item = to_item(&json!({"s": "x", "n": 12, "f": 1.5, "b": false})).unwrap();
        assert_eq!(get_s(&item, "s"), Some("x"));
        assert_eq!(get_s(&item, "n"), None);
        assert_eq!(get_i64(&item, "n"), Some(12));
        assert_eq!(get_i64(&item, "f"), None);
        assert_eq!(get_bool(&item, "b"), Some(false));
        assert_eq!(get_bool(&item, "missing"), None);
    }
}
