//! The crate docs' minimal portal, end to end: sign-in, second factor, device binding, a
//! page, an export behind step-up, logout.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::Router;
use verrou::session::dbsc::{CHALLENGE_HEADER, RESPONSE_HEADER};
use verrou::testing::InsecureDevice;

use crate::support::{offered_challenge, send, text, Jar, World};

#[allow(dead_code)]
#[path = "../../examples/minimal.rs"]
mod minimal;

fn form(jar: &Jar, path: &str, body: &str) -> axum::http::Request<Body> {
    jar.navigate("POST", path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn get(jar: &Jar, path: &str) -> axum::http::Request<Body> {
    jar.navigate("GET", path).body(Body::empty()).unwrap()
}

fn location(response: &axum::http::Response<Body>) -> String {
    response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_minimal_portal_signs_in_binds_and_steps_up() {
    let w = World::new().await;
    let app: Router = minimal::app(w.verrou.clone()).unwrap();
    let mut jar = Jar::default();

    let response = send(app.clone(), get(&jar, "/")).await;
    assert_eq!(location(&response), "/sign-in?next=%2F");
    let response = send(
        app.clone(),
        form(&jar, "/sign-in", "user=marie&password=guess"),
    )
    .await;
    assert!(text(response).await.contains("Wrong user or password"));
    let response = send(
        app.clone(),
        form(&jar, "/sign-in", "user=marie&password=demo-password"),
    )
    .await;
    assert_eq!(location(&response), "/second-factor");
    jar.take(&response);

    let page = text(send(app.clone(), get(&jar, "/second-factor?next=%2Fexport")).await).await;
    assert!(
        page.contains("Enter the code") && page.contains("value=\"/export\""),
        "{page}"
    );
    let wrong = send(
        app.clone(),
        form(&jar, "/second-factor", "code=000000&next=%2F"),
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(text(wrong).await.contains("That code is not valid"));
    let code = w.next_code();
    let response = send(
        app.clone(),
        form(&jar, "/second-factor", &format!("code={code}&next=%2F")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    jar.take(&response);
    let challenge = offered_challenge(&response);

    // The browser's DBSC registers with its own key.
    let device = InsecureDevice::generate().unwrap();
    let registration = jar
        .request("POST", "/verrou/dbsc/register")
        .header(RESPONSE_HEADER, device.registration_proof(&challenge))
        .body(Body::empty())
        .unwrap();
    let response = send(app.clone(), registration).await;
    assert_eq!(response.status(), StatusCode::OK);
    jar.take(&response);

    let home = text(send(app.clone(), get(&jar, "/")).await).await;
    assert!(
        home.contains("Signed in as marie") && home.contains("/verrou/binding-"),
        "{home}"
    );
    let export = send(app.clone(), get(&jar, "/export")).await;
    assert_eq!(export.status(), StatusCode::OK);

    // Six minutes later: the device renews the bound cookie; the export asks for a code.
    w.clock.advance(Duration::from_secs(6 * 60));
    let refresh = jar
        .request("POST", "/verrou/dbsc/refresh")
        .body(Body::empty())
        .unwrap();
    let response = send(app.clone(), refresh).await;
    let offered = response.headers()[CHALLENGE_HEADER]
        .to_str()
        .unwrap()
        .to_owned();
    let challenge = offered.split('"').nth(1).unwrap();
    let signed = jar
        .request("POST", "/verrou/dbsc/refresh")
        .header(RESPONSE_HEADER, device.refresh_proof(challenge))
        .body(Body::empty())
        .unwrap();
    let response = send(app.clone(), signed).await;
    assert_eq!(response.status(), StatusCode::OK);
    jar.take(&response);
    assert_eq!(
        send(app.clone(), get(&jar, "/")).await.status(),
        StatusCode::OK
    );
    let response = send(app.clone(), get(&jar, "/export")).await;
    assert_eq!(location(&response), "/second-factor?next=%2Fexport");

    let response = send(app.clone(), form(&jar, "/logout", "")).await;
    assert_eq!(location(&response), "/sign-in");
    let stale = jar.clone();
    jar.take(&response);
    assert!(jar.session.is_none() && jar.bound.is_none());
    let response = send(app.clone(), get(&stale, "/")).await;
    assert_eq!(
        location(&response),
        "/sign-in?next=%2F",
        "the logged-out cookie is dead"
    );
}

#[tokio::test]
async fn the_minimal_portal_enrols_a_new_user_with_a_qr_code() {
    let w = World::new().await;
    w.verrou.remove_totp_factor(&w.user).await.unwrap();
    let app: Router = minimal::app(w.verrou.clone()).unwrap();
    let mut jar = Jar::default();
    let response = send(
        app.clone(),
        form(&jar, "/sign-in", "user=marie&password=demo-password"),
    )
    .await;
    jar.take(&response);
    let page = text(send(app.clone(), get(&jar, "/second-factor")).await).await;
    assert!(
        page.contains("Scan this code") && page.contains("<svg"),
        "{page}"
    );
    let wrong = send(app.clone(), form(&jar, "/second-factor", "code=12ab56")).await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
}
