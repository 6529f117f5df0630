//! Generic mapping between JSON values and DynamoDB items.
//!
//! Domain types are stored with the attribute names of their serde field names: a struct becomes
//! an item (`M` at the top level), nested objects `M`, arrays `L`, strings `S`, numbers `N`, bools
//! `BOOL` and `null` `NULL`. Numbers keep their kind: `N "5"` reads back as the integer `5` and
//! `N "5.5"` as the float `5.5`, so integer fields round-trip exactly.

use std::collections::HashMap;
use std::str::FromStr;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};

/// A DynamoDB item: attribute name → value.
pub type Item = HashMap<String, AttributeValue>;

/// Why a value cannot be turned into an item or an item into a value.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    /// The value does not serialize to JSON (e.g. a map with non-string keys).
    #[error("value does not serialize: {0}")]
    Serialize(#[source] serde_json::Error),
    /// Only JSON objects can be stored as items.
    #[error("an item must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// An attribute type this mapping does not read (binary, sets).
    #[error("attribute {path} has an unsupported type {kind}")]
    Unsupported {
        /// Where in the item, e.g. `$.steps[0]`.
        path: String,
        /// The DynamoDB type, e.g. `SS`.
        kind: &'static str,
    },
    /// An `N` attribute that is not a finite number.
    #[error("attribute {path} holds {raw:?}, not a number")]
    BadNumber {
        /// Where in the item, e.g. `$.created_at`.
        path: String,
        /// The attribute's text.
        raw: String,
    },
    /// The item's JSON does not deserialize into the target type.
    #[error("item does not decode: {0}")]
    Deserialize(#[source] serde_json::Error),
}

/// Converts a JSON value into an attribute value.
pub fn to_attribute(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(items) => AttributeValue::L(items.iter().map(to_attribute).collect()),
        Value::Object(map) => AttributeValue::M(
            map.iter()
                .map(|(k, v)| (k.clone(), to_attribute(v)))
                .collect(),
        ),
    }
}

/// Converts an attribute value into a JSON value. Binary values and sets are refused.
pub fn from_attribute(value: &AttributeValue) -> Result<Value, ItemError> {
    attribute_to_json(value, "$")
}

fn attribute_to_json(value: &AttributeValue, path: &str) -> Result<Value, ItemError> {
    Ok(match value {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(raw) => Value::Number(parse_number(raw, path)?),
        AttributeValue::L(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| attribute_to_json(v, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        AttributeValue::M(map) => Value::Object(map_to_json(map, path)?),
        other => {
            let kind = match other {
                AttributeValue::B(_) => "B",
                AttributeValue::Bs(_) => "BS",
                AttributeValue::Ns(_) => "NS",
                AttributeValue::Ss(_) => "SS",
                _ => "unknown",
            };
            return Err(ItemError::Unsupported {
                path: path.to_owned(),
                kind,
            });
        }
    })
}

fn map_to_json(map: &Item, path: &str) -> Result<Map<String, Value>, ItemError> {
    map.iter()
        .map(|(k, v)| Ok((k.clone(), attribute_to_json(v, &format!("{path}.{k}"))?)))
        .collect()
}

/// Integers stay integers (`i64`, then `u64`); anything else must be a finite float.
fn parse_number(raw: &str, path: &str) -> Result<Number, ItemError> {
    let bad = || ItemError::BadNumber {
        path: path.to_owned(),
        raw: raw.to_owned(),
    };
    let trimmed = raw.trim();
    if let Ok(i) = trimmed.parse::<i64>() {
        return Ok(Number::from(i));
    }
    if let Ok(u) = trimmed.parse::<u64>() {
        return Ok(Number::from(u));
    }
    if let Ok(n) = Number::from_str(trimmed) {
        return Ok(n);
    }
    // DynamoDB may render forms serde_json's grammar refuses ("+5", ".5", "5.").
    trimmed
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .ok_or_else(bad)
}

/// Serializes `value` (which must serialize to a JSON object) into an item.
pub fn to_item<T: Serialize + ?Sized>(value: &T) -> Result<Item, ItemError> {
    match serde_json::to_value(value).map_err(ItemError::Serialize)? {
        Value::Object(map) => Ok(map
            .iter()
            .map(|(k, v)| (k.clone(), to_attribute(v)))
            .collect()),
        other => Err(ItemError::NotAnObject(json_kind(&other))),
    }
}

/// Deserializes an item into `T`. Attributes `T` does not know are ignored unless `T` denies them.
pub fn from_item<T: DeserializeOwned>(item: &Item) -> Result<T, ItemError> {
    let object = map_to_json(item, "$")?;
    serde_json::from_value(Value::Object(object)).map_err(ItemError::Deserialize)
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
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
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[test]
    fn json_round_trips_through_attributes() {
        let value = json!({
            "s": "text", "empty": "", "i": 5, "neg": -42, "big": u64::MAX, "f": 5.5,
            "whole_float": 100.0, "t": true, "nothing": null,
            "list": [1, "two", [3.25], {"four": false}],
            "nested": {"a": {"b": []}, "c": {}}
        });
        let attr = to_attribute(&value);
        assert_eq!(from_attribute(&attr).unwrap(), value);
    }

    #[test]
    fn numbers_keep_their_kind() {
        assert_eq!(
            from_attribute(&AttributeValue::N("5".into())).unwrap(),
            json!(5)
        );
        assert!(
            from_attribute(&AttributeValue::N("5".into()))
                .unwrap()
                .is_i64()
        );
        assert_eq!(
            from_attribute(&AttributeValue::N("5.5".into())).unwrap(),
            json!(5.5)
        );
        assert_eq!(
            from_attribute(&AttributeValue::N("1E+3".into())).unwrap(),
            json!(1000.0)
        );
        assert_eq!(
            from_attribute(&AttributeValue::N(".5".into())).unwrap(),
            json!(0.5)
        );
        assert_eq!(
            from_attribute(&AttributeValue::N("18446744073709551615".into())).unwrap(),
            json!(u64::MAX)
        );
        for bad in ["", "abc", "NaN", "inf", "1e999"] {
            assert!(
                matches!(
                    from_attribute(&AttributeValue::N(bad.into())),
                    Err(ItemError::BadNumber { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn each_json_kind_maps_to_its_attribute_type() {
        assert_eq!(to_attribute(&json!(null)), AttributeValue::Null(true));
        assert_eq!(to_attribute(&json!(true)), AttributeValue::Bool(true));
        assert_eq!(to_attribute(&json!(7)), AttributeValue::N("7".into()));
        assert_eq!(to_attribute(&json!("x")), AttributeValue::S("x".into()));
        assert_eq!(
            to_attribute(&json!(["x"])),
            AttributeValue::L(vec![AttributeValue::S("x".into())])
        );
        assert_eq!(
            to_attribute(&json!({"k": 1})),
            AttributeValue::M(HashMap::from([(
                "k".to_string(),
                AttributeValue::N("1".into())
            )]))
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

    #[test]
    fn structs_round_trip_through_items() {
        let sample = Sample {
            id: "a".into(),
            count: 3,
            price: 101.0,
            maybe: None,
            tags: vec!["x".into(), "y".into()],
            inner: Inner { flag: true },
        };
        let item = to_item(&sample).unwrap();
        assert_eq!(item["id"], AttributeValue::S("a".into()));
        assert_eq!(item["count"], AttributeValue::N("3".into()));
        assert_eq!(item["maybe"], AttributeValue::Null(true));
        assert_eq!(from_item::<Sample>(&item).unwrap(), sample);
        // DynamoDB may normalise "101.0" to "101"; a float field still reads it.
        let mut normalised = item.clone();
        normalised.insert("price".into(), AttributeValue::N("101".into()));
        normalised.insert("ttl".into(), AttributeValue::N("99".into()));
        normalised.remove("maybe");
        assert_eq!(from_item::<Sample>(&normalised).unwrap(), sample);
    }

    #[test]
    fn refuses_what_it_cannot_represent() {
        assert!(matches!(to_item(&5), Err(ItemError::NotAnObject(_))));
        assert!(matches!(
            to_item(&HashMap::from([((1, 2), 3)])),
            Err(ItemError::Serialize(_))
        ));
        let item = HashMap::from([("s".to_string(), AttributeValue::Ss(vec!["a".into()]))]);
        let err = from_item::<serde_json::Value>(&item).unwrap_err();
        assert!(err.to_string().contains("$.s"), "{err}");
        let item = HashMap::from([("id".to_string(), AttributeValue::N("1".into()))]);
        assert!(matches!(
            from_item::<Sample>(&item),
            Err(ItemError::Deserialize(_))
        ));
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
