//! What the checks need from a PromQL expression, on the AST of `promql-parser`: its series
//! selectors, the values an alert compares with its thresholds, and Grafana's variables replaced
//! by representative values before parsing.

use std::collections::HashMap;
use std::sync::LazyLock;

use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr, VectorSelector};
use regex::{Captures, Regex};

/// Grafana's built-in variables, replaced by representative values before a query is checked.
const GRAFANA_VARS: &[(&str, &str)] = &[
    ("__rate_interval", "5m"),
    ("__interval", "1m"),
    ("__range", "1h"),
    ("__range_s", "3600"),
    ("__range_ms", "3600000"),
    ("__interval_ms", "60000"),
];

#[allow(clippy::expect_used)] // a constant pattern
static VARIABLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)").expect("valid variable pattern"));

/// `expr` with Grafana's built-in variables and the dashboard's own `variables` replaced;
/// unknown variables are left as they are (and then fail to parse).
pub fn substitute(expr: &str, variables: &HashMap<String, String>) -> String {
    VARIABLE
        .replace_all(expr, |c: &Captures<'_>| {
            let name = c.get(1).or_else(|| c.get(2)).map_or("", |m| m.as_str());
            GRAFANA_VARS
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
                .or_else(|| variables.get(name).cloned())
                .unwrap_or_else(|| c[0].to_owned())
        })
        .into_owned()
}

pub fn parse(expr: &str) -> Result<Expr, String> {
    parser::parse(expr)
}

/// A series selector with the range it is used over (`sel[5m]`), if any.
#[derive(Debug, Clone)]
pub struct Selector<'a> {
    pub vs: &'a VectorSelector,
    pub range: Option<String>,
}

impl Selector<'_> {
    /// The metric name: the selector's name or its `__name__="…"` matcher.
    pub fn metric_name(&self) -> Option<&str> {
        self.vs.name.as_deref().or_else(|| {
            self.vs
                .matchers
                .matchers
                .iter()
                .find(|m| m.name == "__name__" && matches!(m.op, MatchOp::Equal))
                .map(|m| m.value.as_str())
        })
    }

    /// The selector as PromQL, without its range.
    pub fn text(&self) -> String {
        VectorSelector {
            offset: None,
            at: None,
            ..self.vs.clone()
        }
        .to_string()
    }

    /// A query that has data when the selector does, over the range it is used with:
    /// `count_over_time(sel[range])`, or `sel` when used as an instant vector.
    pub fn query(&self) -> String {
        match &self.range {
            Some(range) => format!("count_over_time({}[{range}])", self.text()),
            None => self.text(),
        }
    }
}

/// Every series selector of `expr`, in the order they are written.
pub fn selectors(expr: &Expr) -> Vec<Selector<'_>> {
    let mut out = Vec::new();
    walk(expr, &mut out);
    out
}

fn walk<'a>(expr: &'a Expr, out: &mut Vec<Selector<'a>>) {
    match expr {
        Expr::Aggregate(a) => {
            if let Some(param) = &a.param {
                walk(param, out);
            }
            walk(&a.expr, out);
        }
        Expr::Unary(u) => walk(&u.expr, out),
        Expr::Binary(b) => {
            walk(&b.lhs, out);
            walk(&b.rhs, out);
        }
        Expr::Paren(p) => walk(&p.expr, out),
        Expr::Subquery(s) => walk(&s.expr, out),
        Expr::VectorSelector(vs) => out.push(Selector { vs, range: None }),
        Expr::MatrixSelector(ms) => out.push(Selector {
            vs: &ms.vs,
            range: Some(promql_parser::util::duration::display_duration(&ms.range)),
        }),
        Expr::Call(c) => {
            for arg in &c.args.args {
                walk(arg, out);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// A constant: a number, or arithmetic on numbers.
pub fn is_literal(expr: &Expr) -> bool {
    match expr {
        Expr::NumberLiteral(_) => true,
        Expr::Paren(p) => is_literal(&p.expr),
        Expr::Unary(u) => is_literal(&u.expr),
        Expr::Binary(b) if !b.op.is_set_operator() => is_literal(&b.lhs) && is_literal(&b.rhs),
        _ => false,
    }
}

fn is_bool(b: &promql_parser::parser::BinaryExpr) -> bool {
    b.modifier.as_ref().is_some_and(|m| m.return_bool)
}

/// The sub-expressions whose values an alert compares with its thresholds: `X > 0.1` → `X`,
/// both sides of `and`/`or`/`unless` and of a comparison of two non-constants, `absent*()`
/// left out.
pub fn value_exprs(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::Paren(p) => value_exprs(&p.expr),
        Expr::Binary(b) if b.op.is_comparison_operator() && !is_bool(b) => {
            if is_literal(&b.rhs) {
                value_exprs(&b.lhs)
            } else if is_literal(&b.lhs) {
                value_exprs(&b.rhs)
            } else {
                let mut v = value_exprs(&b.lhs);
                v.extend(value_exprs(&b.rhs));
                v
            }
        }
        Expr::Binary(b) if b.op.is_set_operator() => {
            let mut v = value_exprs(&b.lhs);
            v.extend(value_exprs(&b.rhs));
            v
        }
        Expr::Call(c) if matches!(c.func.name, "absent" | "absent_over_time") => Vec::new(),
        e if is_literal(e) => Vec::new(),
        e => vec![e],
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn grafana_variables_are_replaced_before_parsing() {
        let vars = HashMap::from([("job".to_owned(), ".+".to_owned())]);
        let expr = r#"sum(rate(faas_invocations_total{job=~"$job"}[$__rate_interval])) * ${__range_s} / increase(x[${__range}])"#;
        let out = substitute(expr, &vars);
        assert_eq!(
            out,
            r#"sum(rate(faas_invocations_total{job=~".+"}[5m])) * 3600 / increase(x[1h])"#
        );
        assert!(parse(&out).is_ok());
        assert!(
            parse(expr).is_err(),
            "the parser does not know Grafana's variables"
        );
        assert_eq!(substitute("$unknown", &vars), "$unknown");
    }

    #[test]
    fn selectors_come_with_their_range_and_name() {
        let e = parse(r#"sum by (job) (rate(a_total{status="failed"}[5m])) / sum(b) > 0.1 and {__name__="c"}"#)
            .unwrap();
        let s = selectors(&e);
        let q: Vec<_> = s.iter().map(Selector::query).collect();
        assert_eq!(
            q,
            [
                r#"count_over_time(a_total{status="failed"}[5m])"#,
                "b",
                r#"{__name__="c"}"#
            ]
        );
        assert_eq!(s[2].metric_name(), Some("c"));
    }

    #[test]
    fn thresholds_come_off_alert_expressions() {
        let e = parse("(sum(rate(a[5m])) / sum(rate(b[5m]))) > 0.10 and sum(c) > 2 * 3 or absent(d) unless 1 < e").unwrap();
        let v: Vec<String> = value_exprs(&e).iter().map(|e| e.to_string()).collect();
        assert_eq!(v, ["sum(rate(a[5m])) / sum(rate(b[5m]))", "sum(c)", "e"]);
        let e = parse("a > bool 1").unwrap();
        assert_eq!(value_exprs(&e).len(), 1);
        let e = parse("a > b").unwrap();
        assert_eq!(value_exprs(&e).len(), 2);
    }
}
