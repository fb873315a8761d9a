//! The job-seekers of the user's own organisation.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use verrou_axum::Session;

use super::{render, url_encode, Nav};
use crate::app::Portal;
use crate::data::{Seeker, Staff};
use crate::security::{Csrf, PortalError};

const PER_PAGE: u32 = 50;

#[derive(Template)]
#[template(path = "seekers.html")]
struct List<'a> {
    nav: Option<Nav>,
    csrf: &'a str,
    org: &'a str,
    query: &'a str,
    query_encoded: String,
    total: i64,
    page: u32,
    pages: u32,
    seekers: Vec<Seeker>,
}

#[derive(Template)]
#[template(path = "seeker.html")]
struct Record {
    nav: Option<Nav>,
    seeker: Seeker,
}

#[derive(Debug, Default, Deserialize)]
pub struct Search {
    q: Option<String>,
    page: Option<u32>,
}

/// The account `login` and its organisation's id and name; operators have none and see no
/// job-seeker.
async fn staff_of(portal: &Portal, login: &str) -> Result<(Staff, String, String), PortalError> {
    let staff = portal.db.staff(login).await?;
    let staff = staff.ok_or(PortalError::Forbidden)?;
    match (staff.org.clone(), staff.org_name.clone()) {
        (Some(org), Some(name)) => Ok((staff, org, name)),
        _ => Err(PortalError::Forbidden),
    }
}

pub async fn list(
    State(portal): State<Portal>,
    session: Session,
    Csrf(csrf): Csrf,
    Query(search): Query<Search>,
) -> Result<Response, PortalError> {
    list_page(&portal, session.user.as_str(), &csrf, search).await
}

/// The job-seeker list as `login` sees it: what `/seekers` serves once verrou has checked the
/// session (public so that the load bench can serve the same page without verrou, as the
/// baseline of an authenticated page view).
pub async fn list_page(
    portal: &Portal,
    login: &str,
    csrf: &str,
    search: Search,
) -> Result<Response, PortalError> {
    let (staff, org, org_name) = staff_of(portal, login).await?;
    let query = search.q.unwrap_or_default();
    let query = query.trim();
    let page = search.page.unwrap_or(1).max(1);
    let (seekers, total) = portal.db.seekers(&org, query, page, PER_PAGE).await?;
    let pages = u32::try_from((total + i64::from(PER_PAGE) - 1) / i64::from(PER_PAGE))
        .unwrap_or(u32::MAX)
        .max(1);
    Ok(render(&List {
        nav: portal.nav_for(staff, csrf),
        csrf,
        org: &org_name,
        query,
        query_encoded: url_encode(query),
        total,
        page,
        pages,
        seekers,
    }))
}

pub async fn record(
    State(portal): State<Portal>,
    session: Session,
    Csrf(csrf): Csrf,
    Path(id): Path<i64>,
) -> Result<Response, PortalError> {
    let (staff, org, _) = staff_of(&portal, session.user.as_str()).await?;
    let seeker = portal
        .db
        .seeker(&org, id)
        .await?
        .ok_or(PortalError::NotFound)?;
    Ok(render(&Record {
        nav: portal.nav_for(staff, &csrf),
        seeker,
    }))
}
