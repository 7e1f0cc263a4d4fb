//! `--output table`: JSON answers as aligned text for people. An object prints its scalar
//! fields as `name  value` lines, then each list of objects in it (members, log entries) as a
//! table with a header; a list of objects alone is one table. Nested values print inline.

use serde_json::{Map, Value};

/// `value` as text.
#[must_use]
pub fn render(value: &Value) -> String {
    match value {
        Value::Object(map) => object(map),
        Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
            grid(items)
        }
        other => inline(other),
    }
}

/// `value` on one line: scalars as they are, objects as `name=value` pairs.
#[must_use]
pub fn inline(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(text) => text.clone(),
        Value::Array(items) if items.is_empty() => "-".to_string(),
        Value::Array(items)
            if items
                .iter()
                .all(|item| !item.is_object() && !item.is_array()) =>
        {
            items.iter().map(inline).collect::<Vec<_>>().join(", ")
        }
        Value::Object(map) => map
            .iter()
            .map(|(name, value)| format!("{name}={}", nested(value)))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// A value inside an inline object: scalars bare, anything larger as compact JSON.
fn nested(value: &Value) -> String {
    match value {
        Value::Object(_) | Value::Array(_) => value.to_string(),
        other => inline(other),
    }
}

fn is_table(value: &Value) -> bool {
    matches!(value, Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object))
}

fn object(map: &Map<String, Value>) -> String {
    let width = map
        .iter()
        .filter(|(_, value)| !is_table(value))
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (name, value) in map.iter().filter(|(_, value)| !is_table(value)) {
        out.push_str(&format!("{name:<width$}  {}\n", inline(value)));
    }
    for (name, value) in map.iter().filter(|(_, value)| is_table(value)) {
        if let Value::Array(items) = value {
            out.push_str(&format!("\n{name}:\n{}", grid(items)));
        }
    }
    out
}

/// Objects as rows under a header of every field any of them has.
fn grid(items: &[Value]) -> String {
    let mut columns: Vec<&str> = Vec::new();
    for item in items {
        for name in item.as_object().into_iter().flat_map(Map::keys) {
            if !columns.contains(&name.as_str()) {
                columns.push(name);
            }
        }
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|column| item.get(*column).map_or_else(|| "-".to_string(), nested))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            rows.iter()
                .map(|row| row[i].chars().count())
                .chain([column.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(columns.clone());
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_print_as_a_table_under_the_scalars() {
        let members = json!({
            "id": 1,
            "leader": 2,
            "members": [
                {"id": 1, "http_addr": "127.0.0.1:8000", "raft_addr": "127.0.0.1:9000", "voter": true, "leader": false},
                {"id": 2, "http_addr": null, "raft_addr": null, "voter": false, "leader": true},
            ],
        });
        assert_eq!(
            render(&members),
            "id      1\n\
             leader  2\n\
             \n\
             members:\n\
             http_addr       id  leader  raft_addr       voter\n\
             127.0.0.1:8000  1   false   127.0.0.1:9000  true\n\
             -               2   true    -               false\n"
        );
    }

    #[test]
    fn nested_values_print_inline() {
        let status = json!({"role": "LEADER", "voters": [1, 2, 3], "learners": [], "fsync": {"count": 2, "p99": null}});
        assert_eq!(
            render(&status),
            "fsync     count=2 p99=-\nlearners  -\nrole      LEADER\nvoters    1, 2, 3\n"
        );
        assert_eq!(inline(&json!({"a": [[1, 2]], "b": "x"})), "a=[[1,2]] b=x");
        assert_eq!(render(&json!("text")), "text");
    }
}
