//! Placeholders for DynamoDB expressions. Every attribute name goes through a `#name` placeholder
//! (several of ours, `status` and `ttl` among them, are reserved words) and every value through a
//! `:value` placeholder.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::item::Item;

/// Collects `ExpressionAttributeNames` and `ExpressionAttributeValues`.
#[derive(Debug, Default)]
pub(crate) struct Expr {
    names: HashMap<String, String>,
    values: Item,
}

impl Expr {
    /// The placeholder for attribute `attr`: `#attr` when `attr` is a plain word, else `#a<n>`.
    pub(crate) fn name(&mut self, attr: &str) -> String {
        if let Some((placeholder, _)) = self.names.iter().find(|(_, a)| a.as_str() == attr) {
            return placeholder.clone();
        }
        let plain = !attr.is_empty() && attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let placeholder = if plain && !self.names.contains_key(&format!("#{attr}")) {
            format!("#{attr}")
        } else {
            let mut n = self.names.len();
            while self.names.contains_key(&format!("#a{n}")) {
                n += 1;
            }
            format!("#a{n}")
        };
        self.names.insert(placeholder.clone(), attr.to_owned());
        placeholder
    }

    /// Binds `value` to `:key` and returns the placeholder.
    pub(crate) fn value(&mut self, key: &str, value: AttributeValue) -> String {
        let placeholder = format!(":{key}");
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    /// `(names, values)`, each `None` when empty (DynamoDB refuses empty maps).
    pub(crate) fn into_parts(self) -> (Option<HashMap<String, String>>, Option<Item>) {
        let names = (!self.names.is_empty()).then_some(self.names);
        let values = (!self.values.is_empty()).then_some(self.values);
        (names, values)
    }
}

/// Builds `SET a = :a, ... REMOVE b, ...` from an item: attributes holding `NULL` are removed,
/// the others set. `extra_set` clauses are appended to the SET list as they are.
pub(crate) fn update_from_item(expr: &mut Expr, item: Item, extra_set: &[String]) -> String {
    let mut attrs: Vec<(String, AttributeValue)> = item.into_iter().collect();
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut sets = Vec::new();
    let mut removes = Vec::new();
    for (i, (attr, value)) in attrs.into_iter().enumerate() {
        let name = expr.name(&attr);
        if matches!(value, AttributeValue::Null(_)) {
            removes.push(name);
        } else {
            let placeholder = expr.value(&format!("v{i}"), value);
            sets.push(format!("{name} = {placeholder}"));
        }
    }
    sets.extend(extra_set.iter().cloned());
    let mut update = String::new();
    if !sets.is_empty() {
        update.push_str("SET ");
        update.push_str(&sets.join(", "));
    }
    if !removes.is_empty() {
        if !update.is_empty() {
            update.push(' ');
        }
        update.push_str("REMOVE ");
        update.push_str(&removes.join(", "));
    }
    update
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_placeholders_and_reused() {
        let mut e = Expr::default();
        assert_eq!(e.name("status"), "#status");
        assert_eq!(e.name("status"), "#status");
        assert_eq!(e.name("odd-name"), "#a1");
        let (names, values) = e.into_parts();
        assert_eq!(names.unwrap().len(), 2);
        assert!(values.is_none());
    }

    #[test]
    fn update_sets_values_and_removes_nulls() {
        let mut e = Expr::default();
        let item = Item::from([
            ("b".to_string(), AttributeValue::Null(true)),
            ("a".to_string(), AttributeValue::N("1".into())),
        ]);
        let update = update_from_item(&mut e, item, &["#c = :c".to_string()]);
        assert_eq!(update, "SET #a = :v0, #c = :c REMOVE #b");
    }
}
