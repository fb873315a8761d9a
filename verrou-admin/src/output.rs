//! What the commands print: aligned text for people, or with `--json` one JSON object per
//! line for tools. Times are RFC 3339 in UTC; ids are printed exactly as the commands accept
//! them (in text, with invisible and control characters escaped, so a crafted id cannot
//! disguise itself on a terminal).

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use verrou::store::AuditEntry;
use verrou::{AuditEvent, AuditValue, Timestamp};

/// How records are printed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Format {
    Text,
    Json,
}

/// `at` as RFC 3339 UTC (`2026-11-28T06:00:00Z`).
pub(crate) fn rfc3339(at: Timestamp) -> String {
    i64::try_from(at.unix_seconds())
        .ok()
        .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
        .and_then(|at| at.format(&Rfc3339).ok())
        // Beyond year 9999: no RFC 3339 form; the seconds are still exact.
        .unwrap_or_else(|| at.unix_seconds().to_string())
}

/// An audit event as one JSON object: `at`, `user`, `client`, `kind`, then the kind's fields.
pub(crate) fn event_json(event: &AuditEvent) -> Value {
    let mut object = Map::new();
    object.insert("at".into(), json!(rfc3339(event.at)));
    object.insert("user".into(), json!(event.user.as_str()));
    object.insert("client".into(), json!(event.client.map(|c| c.to_string())));
    object.insert("kind".into(), json!(event.kind.name()));
    for (name, value) in event.kind.fields() {
        object.insert(name.into(), value_json(&value));
    }
    Value::Object(object)
}

fn value_json(value: &AuditValue) -> Value {
    match value {
        AuditValue::Text(text) => json!(text),
        AuditValue::Count(n) | AuditValue::Seconds(n) => json!(n),
        AuditValue::Number(n) => json!(n),
        AuditValue::Flag(flag) => json!(flag),
        AuditValue::Time(at) => json!(at.map(rfc3339)),
        // A value kind added to the library later: its name only, never a Debug form.
        _ => Value::Null,
    }
}

fn value_text(value: &AuditValue) -> String {
    match value {
        AuditValue::Text(text) => text.escape_debug().to_string(),
        AuditValue::Count(n) => n.to_string(),
        AuditValue::Seconds(n) => format!("{n}s"),
        AuditValue::Number(n) => n.to_string(),
        AuditValue::Flag(flag) => flag.to_string(),
        AuditValue::Time(Some(at)) => rfc3339(*at),
        AuditValue::Time(None) => "never".into(),
        _ => "?".into(),
    }
}

/// Prints audit events: a table with aligned columns, or one JSON object per line.
pub(crate) fn print_events(entries: &[AuditEntry], format: Format) {
    let events = entries.iter().map(|entry| &entry.event);
    if let Format::Json = format {
        for event in events {
            println!("{}", event_json(event));
        }
        return;
    }
    let rows: Vec<[String; 5]> = events
        .map(|event| {
            let fields: Vec<String> = event
                .kind
                .fields()
                .iter()
                .map(|(name, value)| format!("{name}={}", value_text(value)))
                .collect();
            [
                rfc3339(event.at),
                event.user.as_str().escape_debug().to_string(),
                event
                    .client
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                event.kind.name().to_owned(),
                fields.join(" "),
            ]
        })
        .collect();
    print_table(&["TIME", "USER", "CLIENT", "EVENT", "DETAILS"], &rows);
}

/// Prints `rows` under `header`, each column as wide as its widest cell (the last one free).
pub(crate) fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(|title| title.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Prints the result of an action: `text` for people, or `record` as one JSON object.
pub(crate) fn print_result(format: Format, text: &str, record: Value) {
    match format {
        Format::Text => println!("{text}"),
        Format::Json => println!("{record}"),
    }
}
