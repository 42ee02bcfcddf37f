//! The pages: sign-in, sign-out, the Apps list with its "create app" form, and one app.
//!
//! Every POST carries a CSRF token (403 without the right one). A tenant user sees and touches
//! only their tenant's apps: another tenant's app is "not found" (404), the same answer as an
//! app that does not exist, so ids cannot be probed.

use super::session::{
    cookie, random_token, same, set_cookie, token_hash, SignedIn, LOGIN_COOKIE, SESSION_COOKIE,
};
use super::{password, Dashboard};
use crate::admin::apps::{create_app as admin_create_app, CreateApp};
use crate::store::dashboard::{DashboardSession, Role};
use crate::store::{StoreError, Tenant};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, Extensions, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use waas_core::http::accept::PeerAddr;
use waas_protocol::AppId;

pub(super) fn render(status: StatusCode, name: &str, ctx: minijinja::Value) -> Response {
    match super::templates::environment()
        .get_template(name)
        .and_then(|t| t.render(ctx))
    {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "dashboard template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

fn error_page(status: StatusCode, message: &str) -> Response {
    let html = super::templates::environment()
        .get_template("error.html")
        .and_then(|t| t.render(context! { status => status.as_u16(), message }))
        .unwrap_or_else(|_| message.to_owned());
    (status, Html(html)).into_response()
}

pub(crate) fn forbidden() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "The form's security token is missing or out of date. Go back, reload the page and try again.",
    )
}

pub(super) fn not_found() -> Response {
    error_page(StatusCode::NOT_FOUND, "No such page or app.")
}

pub(crate) fn unavailable(e: &StoreError) -> Response {
    tracing::warn!(error = %e, "dashboard: store unavailable");
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The store is unavailable; try again shortly.",
    )
}

/// A form body, or the message of why it does not parse (answered 400).
fn form<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, String> {
    serde_urlencoded::from_bytes(body).map_err(|e| format!("invalid form: {e}"))
}

fn bad_form(message: &str) -> Response {
    error_page(StatusCode::BAD_REQUEST, message)
}

pub(crate) async fn home() -> Redirect {
    Redirect::to("/dashboard/apps")
}

/// The sign-in form, with a fresh token for its double-submit CSRF check.
pub(crate) async fn login_form(State(dashboard): State<Arc<Dashboard>>) -> Response {
    login_page(&dashboard, StatusCode::OK, None, "")
}

fn login_page(
    dashboard: &Dashboard,
    status: StatusCode,
    error: Option<&str>,
    email: &str,
) -> Response {
    let csrf = random_token();
    let mut response = render(
        status,
        "login.html",
        context! { csrf => csrf.clone(), error, email },
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(dashboard, LOGIN_COOKIE, &csrf, 3600),
    );
    response
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    csrf: Option<String>,
    email: String,
    password: String,
}

/// Where a request came from: the connection's address (never a header a client can write).
fn address(extensions: &Extensions) -> String {
    extensions
        .get::<PeerAddr>()
        .map_or_else(|| "unknown".to_owned(), |p| p.0.ip().to_string())
}

pub(crate) async fn login(
    State(dashboard): State<Arc<Dashboard>>,
    headers: HeaderMap,
    extensions: Extensions,
    body: Bytes,
) -> Response {
    let form: LoginForm = match form(&body) {
        Ok(f) => f,
        Err(e) => return bad_form(&e),
    };
    match (cookie(&headers, LOGIN_COOKIE), form.csrf.as_deref()) {
        (Some(a), Some(b)) if same(a, b) => {}
        _ => return forbidden(),
    }
    let email = form.email.trim().to_lowercase();
    let account_key = format!("account:{email}");
    let address_key = format!("address:{}", address(&extensions));
    if dashboard.by_account.blocked(&account_key) || dashboard.by_address.blocked(&address_key) {
        tracing::info!(email = %email, "dashboard sign-in refused: too many failures");
        return login_page(
            &dashboard,
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many failed sign-ins. Wait a few minutes and try again."),
            &email,
        );
    }
    let user = match dashboard.accounts.dashboard_user_by_email(&email).await {
        Ok(u) => u,
        Err(e) => return unavailable(&e),
    };
    let stored = user
        .as_ref()
        .map_or_else(|| password::decoy().to_owned(), |u| u.password_hash.clone());
    let given = form.password;
    let ok = tokio::task::spawn_blocking(move || password::verify(&given, &stored))
        .await
        .unwrap_or(false);
    let Some(user) = user.filter(|_| ok) else {
        dashboard.by_account.fail(&account_key);
        dashboard.by_address.fail(&address_key);
        tracing::info!(email = %email, "dashboard sign-in failed");
        return login_page(
            &dashboard,
            StatusCode::UNAUTHORIZED,
            Some("Wrong email or password."),
            &email,
        );
    };
    dashboard.by_account.clear(&account_key);
    let token = random_token();
    let now = super::now();
    let session = DashboardSession {
        token_hash: token_hash(&token),
        user_id: user.id.clone(),
        csrf_token: random_token(),
        created_at: now,
        expires_at: now.saturating_add(dashboard.config.session_ttl_secs as i64),
    };
    if let Err(e) = dashboard.accounts.create_dashboard_session(session).await {
        return unavailable(&e);
    }
    // Expired sessions are swept at each sign-in: no background task, and the table stays
    // about as large as the number of live sessions.
    let _ = dashboard
        .accounts
        .delete_expired_dashboard_sessions(now)
        .await;
    tracing::info!(email = %email, "dashboard sign-in");
    let mut response = Redirect::to("/dashboard/apps").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(
            &dashboard,
            SESSION_COOKIE,
            &token,
            dashboard.config.session_ttl_secs,
        ),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(&dashboard, LOGIN_COOKIE, "", 0),
    );
    response
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    csrf: Option<String>,
}

pub(crate) async fn logout(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    body: Bytes,
) -> Response {
    let form: CsrfForm = match form(&body) {
        Ok(f) => f,
        Err(e) => return bad_form(&e),
    };
    if !signed_in.csrf_ok(form.csrf.as_deref()) {
        return forbidden();
    }
    if let Err(e) = dashboard
        .accounts
        .delete_dashboard_session(&signed_in.session.token_hash)
        .await
    {
        return unavailable(&e);
    }
    let mut response = Redirect::to("/dashboard/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&dashboard, SESSION_COOKIE, "", 0),
    );
    response
}

/// What the layout shows of the signed-in user.
#[derive(Serialize)]
pub(super) struct Me<'a> {
    email: &'a str,
    operator: bool,
    tenant: Option<&'a str>,
    csrf: &'a str,
}

pub(super) fn me(s: &SignedIn) -> Me<'_> {
    Me {
        email: &s.user.email,
        operator: s.user.role == Role::Operator,
        tenant: s.tenant(),
        csrf: &s.session.csrf_token,
    }
}

#[derive(Serialize)]
struct AppRow {
    id: String,
    name: String,
    tenant_id: String,
    api_keys: usize,
    created_at: i64,
}

/// Secrets of an app just created, shown once.
#[derive(Serialize)]
struct CreatedView {
    id: String,
    api_key: String,
    jwt_secret: Option<String>,
}

#[derive(Serialize, Default)]
struct FormState {
    id: String,
    name: String,
    tenant: String,
}

async fn apps_page(
    dashboard: &Dashboard,
    signed_in: &SignedIn,
    status: StatusCode,
    created: Option<CreatedView>,
    error: Option<String>,
    form: FormState,
) -> Response {
    let apps = match dashboard.store.list_apps(signed_in.tenant()).await {
        Ok(apps) => apps,
        Err(e) => return unavailable(&e),
    };
    let tenants: Vec<Tenant> = if signed_in.tenant().is_none() {
        match dashboard.store.list_tenants().await {
            Ok(t) => t,
            Err(e) => return unavailable(&e),
        }
    } else {
        Vec::new()
    };
    let rows: Vec<AppRow> = apps
        .into_iter()
        .map(|a| AppRow {
            id: a.id.to_string(),
            name: a.name,
            tenant_id: a.tenant_id,
            api_keys: a.api_keys.len(),
            created_at: a.created_at,
        })
        .collect();
    let tenant_ids: Vec<&str> = tenants.iter().map(|t| t.id.as_str()).collect();
    render(
        status,
        "apps.html",
        context! { nav => "apps", me => me(signed_in), apps => rows, tenants => tenant_ids, created, error, form },
    )
}

pub(crate) async fn apps(State(dashboard): State<Arc<Dashboard>>, signed_in: SignedIn) -> Response {
    apps_page(
        &dashboard,
        &signed_in,
        StatusCode::OK,
        None,
        None,
        FormState::default(),
    )
    .await
}

#[derive(Deserialize)]
pub(crate) struct CreateForm {
    csrf: Option<String>,
    id: String,
    #[serde(default)]
    name: String,
    /// Operators only; a tenant user's apps go to their tenant whatever is sent.
    #[serde(default)]
    tenant: String,
}

pub(crate) async fn create_app(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    body: Bytes,
) -> Response {
    let form: CreateForm = match form(&body) {
        Ok(f) => f,
        Err(e) => return bad_form(&e),
    };
    if !signed_in.csrf_ok(form.csrf.as_deref()) {
        return forbidden();
    }
    let tenant = match signed_in.tenant() {
        Some(t) => t.to_owned(),
        None => form.tenant.trim().to_owned(),
    };
    let id = form.id.trim().to_owned();
    let name = Some(form.name.trim().to_owned()).filter(|n| !n.is_empty());
    let state = FormState {
        id: id.clone(),
        name: name.clone().unwrap_or_default(),
        tenant: tenant.clone(),
    };
    if tenant.is_empty() {
        return apps_page(
            &dashboard,
            &signed_in,
            StatusCode::BAD_REQUEST,
            None,
            Some("Choose a tenant.".into()),
            state,
        )
        .await;
    }
    match admin_create_app(&dashboard.admin, CreateApp::new(id, tenant, name)).await {
        Ok(created) => {
            let (id, api_key, jwt_secret) = created.parts();
            tracing::info!(app = %id, by = %signed_in.user.email, "dashboard: app created");
            let view = CreatedView {
                id: id.to_string(),
                api_key: api_key.to_owned(),
                jwt_secret: jwt_secret.map(str::to_owned),
            };
            apps_page(
                &dashboard,
                &signed_in,
                StatusCode::CREATED,
                Some(view),
                None,
                FormState::default(),
            )
            .await
        }
        Err(e) => {
            let status =
                StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            apps_page(&dashboard, &signed_in, status, None, Some(e.message), state).await
        }
    }
}

pub(crate) async fn app(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = AppId::parse(&id) else {
        return not_found();
    };
    let app = match dashboard.store.get_app(&id).await {
        Ok(app) => app,
        Err(StoreError::NotFound(_)) => return not_found(),
        Err(e) => return unavailable(&e),
    };
    if signed_in.tenant().is_some_and(|t| t != app.tenant_id) {
        return not_found();
    }
    #[derive(Serialize)]
    struct Key {
        id: String,
        prefix: String,
        label: Option<String>,
        created_at: i64,
    }
    let keys: Vec<Key> = app
        .api_keys
        .iter()
        .map(|k| Key {
            id: k.id.clone(),
            prefix: k.prefix.clone(),
            label: k.label.clone(),
            created_at: k.created_at,
        })
        .collect();
    render(
        StatusCode::OK,
        "app.html",
        context! {
            nav => "apps",
            me => me(&signed_in),
            app => context! {
                id => app.id.to_string(),
                name => app.name,
                tenant_id => app.tenant_id,
                version => app.version,
                has_jwt_secret => app.jwt_secret.is_some(),
                allowed_origins => app.allowed_origins,
                created_at => app.created_at,
            },
            keys,
        },
    )
}
