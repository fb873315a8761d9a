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

/// An audit event as one JSON object: `at`, `user`, `client`, `org`, `kind`, then the kind's
/// fields.
pub(crate) fn event_json(event: &AuditEvent) -> Value {
    let mut object = Map::new();
    object.insert("at".into(), json!(rfc3339(event.at)));
    object.insert("user".into(), json!(event.user.as_str()));
    object.insert("client".into(), json!(event.client.map(|c| c.to_string())));
    object.insert(
        "org".into(),
        json!(event.org.as_ref().map(|org| org.as_str())),
    );
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
    EventPrinter::new(format).print(entries);
}

/// Prints audit events batch after batch (`audit --follow`): in text, one table whose header
/// is printed once, above the first batch.
pub(crate) struct EventPrinter {
    format: Format,
    table: Table<6>,
}

impl EventPrinter {
    pub(crate) fn new(format: Format) -> Self {
        Self {
            format,
            table: Table::new(["TIME", "USER", "CLIENT", "ORG", "EVENT", "DETAILS"]),
        }
    }

    pub(crate) fn print(&mut self, entries: &[AuditEntry]) {
        let events = entries.iter().map(|entry| &entry.event);
        if let Format::Json = self.format {
            for event in events {
                println!("{}", event_json(event));
            }
            return;
        }
        let shown = |text: Option<String>| text.unwrap_or_else(|| "-".into());
        let rows: Vec<[String; 6]> = events
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
                    shown(event.client.map(|c| c.to_string())),
                    shown(
                        event
                            .org
                            .as_ref()
                            .map(|org| org.as_str().escape_debug().to_string()),
                    ),
                    event.kind.name().to_owned(),
                    fields.join(" "),
                ]
            })
            .collect();
        self.table.print(&rows);
    }
}

/// Prints `rows` under `header`, each column as wide as its widest cell (the last one free).
pub(crate) fn print_table<const N: usize>(header: [&'static str; N], rows: &[[String; N]]) {
    Table::new(header).print(rows);
}

/// A text table printed in batches: the header above the first one; each column as wide as
/// its widest cell so far (the last one free), so later batches stay aligned with earlier
/// ones unless a wider cell comes.
pub(crate) struct Table<const N: usize> {
    header: [&'static str; N],
    widths: [usize; N],
    started: bool,
}

impl<const N: usize> Table<N> {
    pub(crate) fn new(header: [&'static str; N]) -> Self {
        Self {
            header,
            widths: header.map(|title| title.chars().count()),
            started: false,
        }
    }

    pub(crate) fn print(&mut self, rows: &[[String; N]]) {
        for row in rows {
            for (width, cell) in self.widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        if !self.started {
            self.started = true;
            self.line(self.header.iter().copied());
        }
        for row in rows {
            self.line(row.iter().map(String::as_str));
        }
    }

    fn line<'a>(&self, cells: impl Iterator<Item = &'a str>) {
        let mut out = String::new();
        for (i, (cell, width)) in cells.zip(self.widths).enumerate() {
            if i + 1 == N {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        println!("{}", out.trim_end());
    }
}

/// Prints the result of an action: `text` for people, or `record` as one JSON object.
pub(crate) fn print_result(format: Format, text: &str, record: Value) {
    match format {
        Format::Text => println!("{text}"),
        Format::Json => println!("{record}"),
    }
}
