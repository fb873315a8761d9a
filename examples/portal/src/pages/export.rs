//! The CSV export of the organisation's job-seekers, behind the controls the breach lacked:
//! a second factor within the step-up window, a few exports per session, a cap per export and
//! per organisation per day (kept in the portal's database, so every instance sharing it
//! counts together), an alert in the audit trail at 80 % of the cap, and a refusal with its own
//! audit record beyond it.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use verrou::ActiveSession;
use verrou_axum::{Session, StepUp};

use super::{render, with_status, Message};
use crate::app::Portal;
use crate::data::{ExportGrant, Seeker};
use crate::security::{Checked, PortalError};

#[derive(Debug, Deserialize)]
pub struct ExportForm {
    q: Option<String>,
}

/// A CSV field: quoted, quotes doubled, and a leading `= + - @` (or tab, carriage return)
/// defused with `'`, so a spreadsheet never reads a name as a formula.
fn field(text: &str) -> String {
    let defused = match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    };
    format!("\"{}\"", defused.replace('"', "\"\""))
}

fn csv(seekers: &[Seeker]) -> String {
    let mut out = String::from("name,email,phone,town,status\r\n");
    for seeker in seekers {
        let row = [
            &seeker.name,
            &seeker.email,
            &seeker.phone,
            &seeker.town,
            &seeker.status,
        ];
        let fields: Vec<String> = row.iter().map(|text| field(text)).collect();
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

fn refused(status: StatusCode, retry_after: i64, message: &str) -> Response {
    let page = render(&Message {
        title: "Export refused",
        message,
    });
    let mut response = with_status(status, page);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
    response
}

/// What an export request comes to.
#[derive(Debug)]
pub enum Exported {
    /// The CSV, and the organisation's id for the file name.
    Csv { org: String, body: String },
    /// Too many exports from this session: retry after this many seconds.
    RateLimited { wait: i64 },
    /// The organisation's daily cap would be passed: retry after this many seconds.
    OverCap { wait: i64 },
}

/// Runs the export controls for `session` (which passed the step-up check) and, if they
/// allow it, makes the CSV of the organisation's job-seekers matching `query`.
pub async fn run(
    portal: &Portal,
    session: &ActiveSession,
    query: &str,
) -> Result<Exported, PortalError> {
    let limits = portal.exports;
    let staff = portal.db.staff(session.user.as_str()).await?;
    let Some((org, login)) = staff.and_then(|staff| staff.org.map(|org| (org, staff.login))) else {
        return Err(PortalError::Forbidden);
    };
    let now = portal.now_unix()?;
    let (day, session_id) = (now.div_euclid(86_400), session.id.to_string());
    let db = &portal.db;

    let window = i64::try_from(limits.session_window.as_secs()).unwrap_or(i64::MAX);
    let (recent, oldest) = db.session_exports_since(&session_id, now - window).await?;
    if recent >= limits.per_session {
        let detail = format!("{recent} exports in {window} s");
        db.audit(now, &login, Some(&org), "export_rate_limited", &detail)
            .await?;
        let wait = oldest.map_or(window, |oldest| oldest + window - now);
        return Ok(Exported::RateLimited { wait });
    }

    let (seekers, _) = db.seekers(&org, query.trim(), 1, limits.per_export).await?;
    let records = i64::try_from(seekers.len()).unwrap_or(i64::MAX);
    let cap = limits.per_org_per_day;
    let grant = db
        .record_export(&org, &login, &session_id, now, day, records, cap)
        .await?;
    let used_today = match grant {
        ExportGrant::Granted { used_today } => used_today,
        ExportGrant::OverCap { used_today } => {
            let detail = format!("{records} records asked, {used_today} of {cap} used today");
            db.audit(now, &login, Some(&org), "export_refused_cap", &detail)
                .await?;
            return Ok(Exported::OverCap {
                wait: (day + 1) * 86_400 - now,
            });
        }
    };
    db.audit(
        now,
        &login,
        Some(&org),
        "export",
        &format!("{records} records"),
    )
    .await?;
    if used_today * 5 >= cap * 4 {
        let detail = format!("{used_today} of {cap} records exported today");
        db.audit(now, &login, Some(&org), "export_cap_alert", &detail)
            .await?;
    }
    Ok(Exported::Csv {
        org,
        body: csv(&seekers),
    })
}

/// The CSV as a download.
pub fn attachment(org: &str, body: String) -> Response {
    let disposition = format!("attachment; filename=\"job-seekers-{org}.csv\"");
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

pub async fn export(
    State(portal): State<Portal>,
    session: Session<StepUp>,
    Checked(form): Checked<ExportForm>,
) -> Result<Response, PortalError> {
    let query = form.q.unwrap_or_default();
    Ok(match run(&portal, session.active(), &query).await? {
        Exported::Csv { org, body } => attachment(&org, body),
        Exported::RateLimited { wait } => refused(
            StatusCode::TOO_MANY_REQUESTS,
            wait,
            "Too many exports from this session. Wait a few minutes.",
        ),
        Exported::OverCap { wait } => refused(
            StatusCode::TOO_MANY_REQUESTS,
            wait,
            "Your organisation has reached today's export limit. \
             Operators have been told; try again tomorrow.",
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("Alice"), "\"Alice\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        for lead in ["+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(field(lead).starts_with("\"'"), "{lead:?}");
        }
    }
}
