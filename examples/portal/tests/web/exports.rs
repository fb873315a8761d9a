//! The export controls: step-up, CSV that no spreadsheet runs, a cap per export, a few exports
//! per session, a daily cap per organisation with an alert at 80 %, shared by every instance.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use tower::ServiceExt;
use verrou_axum::TrustedProxies;
use verrou_portal::app::ExportLimits;

use crate::support::{csrf_in, location, text, Browser, Lab};

fn limits(per_export: u32, per_org_per_day: i64, per_session: i64) -> ExportLimits {
    ExportLimits {
        per_export,
        per_org_per_day,
        per_session,
        session_window: Duration::from_secs(600),
    }
}

/// Posts the export form from the list page.
async fn export(lab: &Lab, browser: &mut Browser, query: &str) -> axum::http::Response<Body> {
    let html = text(browser.get(lab, "/seekers").await).await;
    let token = csrf_in(&html).unwrap();
    browser
        .post(lab, "/seekers/export", &token, &[("q", query)])
        .await
}

async fn audit_kinds(lab: &Lab) -> Vec<String> {
    let trail = lab.portal.db.audit_trail(100).await.unwrap();
    trail.into_iter().rev().map(|event| event.kind).collect()
}

#[tokio::test]
async fn an_export_is_csv_capped_per_export_and_defuses_formulas() {
    let lab = Lab::build(TrustedProxies::none(), limits(50, 5_000, 3)).await;
    lab.portal
        .db
        .insert_seekers(
            "formation-nord",
            &[verrou_portal::data::Seeker {
                id: 0,
                name: "=HYPERLINK(\"http://evil.example\")".into(),
                email: "aaa@exemple.invalid".into(),
                phone: "06 39 98 00 00".into(),
                town: "Lille".into(),
                status: "registered".into(),
            }],
        )
        .await
        .unwrap();
    let mut marie = lab.signed_in("marie").await;
    let response = export(&lab, &mut marie, "").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/csv; charset=utf-8"
    );
    assert_eq!(
        response.headers()[header::CONTENT_DISPOSITION],
        "attachment; filename=\"job-seekers-formation-nord.csv\""
    );
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let body = text(response).await;
    assert_eq!(body.lines().count(), 51, "a header and 50 records");
    assert!(body.starts_with("name,email,phone,town,status\r\n"));
    assert!(
        body.contains("\"'=HYPERLINK(\"\"http://evil.example\"\")\""),
        "{body}"
    );
    assert_eq!(audit_kinds(&lab).await, ["export"]);
}

#[tokio::test]
async fn an_export_needs_a_second_factor_from_the_last_five_minutes() {
    let lab = Lab::new().await;
    let mut marie = lab.signed_in("marie").await;
    let html = text(marie.get(&lab, "/seekers").await).await;
    let token = csrf_in(&html).unwrap();
    lab.clock.advance(Duration::from_secs(4 * 60));
    marie.renew(&lab).await;
    lab.clock.advance(Duration::from_secs(2 * 60));
    let response = marie
        .post(&lab, "/seekers/export", &token, &[("q", "")])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(location(&response).starts_with("/second-factor"));
    assert!(audit_kinds(&lab).await.is_empty(), "nothing exported");
}

#[tokio::test]
async fn a_session_gets_a_few_exports_then_429_with_retry_after() {
    let lab = Lab::build(TrustedProxies::none(), limits(10, 5_000, 2)).await;
    let mut marie = lab.signed_in("marie").await;
    for _ in 0..2 {
        assert_eq!(export(&lab, &mut marie, "").await.status(), StatusCode::OK);
    }
    let refused = export(&lab, &mut marie, "").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&wait), "{wait}");
    assert!(text(refused)
        .await
        .contains("Too many exports from this session"));
    assert_eq!(
        audit_kinds(&lab).await,
        ["export", "export", "export_rate_limited"]
    );
}

#[tokio::test]
async fn the_daily_cap_holds_alerts_at_80_percent_and_holds_on_every_instance() {
    let lab = Lab::build(TrustedProxies::none(), limits(40, 100, 10)).await;
    let mut marie = lab.signed_in("marie").await;
    assert_eq!(export(&lab, &mut marie, "").await.status(), StatusCode::OK); // 40
    assert_eq!(export(&lab, &mut marie, "").await.status(), StatusCode::OK); // 80: alert
                                                                             // Another instance on the same database sees the same count: 80 + 40 > 100.
    let other = lab.second_instance().await;
    let html = text(marie.get(&lab, "/seekers").await).await;
    let token = csrf_in(&html).unwrap();
    let body = format!("csrf={token}&q=");
    let request = marie
        .request("POST", "/seekers/export")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    let refused = other.router().oneshot(request).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key(header::RETRY_AFTER));
    assert!(text(refused)
        .await
        .contains("reached today&#39;s export limit"));
    // A smaller export still fits (80 + 20).
    assert_eq!(
        export(&lab, &mut marie, "Lille").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        audit_kinds(&lab).await,
        [
            "export",
            "export",
            "export_cap_alert",
            "export_refused_cap",
            "export"
        ],
        "one alert a day, and the refusal on record"
    );
    // The next day the organisation exports again.
    lab.clock.advance(Duration::from_secs(24 * 3600));
    let mut marie = lab.signed_in("marie").await;
    assert_eq!(export(&lab, &mut marie, "").await.status(), StatusCode::OK);
}
