//! Server-rendered pages of the identity provider: sign-in, the second factor, and the
//! account's security page (sessions, two-step verification, password). Plain HTML forms that
//! work without JavaScript; every form carries a CSRF token; every string comes from the
//! message catalogues ([`i18n`]). Handlers translate forms to [`crate::idp`] calls.

pub mod i18n;

use std::net::{IpAddr, SocketAddr};

use askama::Template;
use auth::session::{CookieSecret, safe_return_path};
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Form, Router};
use serde::Deserialize;
use store::SessionStage;

use crate::AppState;
use crate::error::PageError;
use crate::idp::{Caller, Check, PasswordChange, SignIn, Signed};
use i18n::Tr;

/// The session cookie: the token whose digest names the session row.
pub const SESSION_COOKIE: &str = "iaso_session";
/// The CSRF cookie: forms carry a digest of its secret.
pub const CSRF_COOKIE: &str = "iaso_csrf";

type PageResult = Result<Response, PageError>;

pub fn router(state: &AppState) -> Router<AppState> {
    use axum::routing::{get, post};
    Router::new()
        .route("/auth/login", get(login_page).post(login_submit))
        .route("/auth/login/mfa", get(mfa_page).post(mfa_submit))
        .route("/auth/logout", post(logout))
        .route("/auth/lang", get(choose_language))
        .route("/account", get(account_page))
        .route("/account/sessions/revoke", post(revoke_session))
        .route("/account/password", get(password_page).post(password_submit))
        .route("/account/mfa", get(enrol_page).post(enrol_submit))
        .route("/account/mfa/disable", get(disable_page).post(disable_submit))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), rate_limit))
        .route("/auth/style.css", get(style))
}

/// The value of a cookie in a request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` for one of the pages' cookies: never readable by scripts, sent over HTTPS
/// only (browsers treat `localhost` as secure), and not sent with cross-site subrequests.
/// `max_age` 0 removes the cookie; `None` keeps it for the browser session.
fn set_cookie(name: &str, value: &str, same_site: &str, max_age: Option<i64>) -> HeaderValue {
    let age = max_age.map(|s| format!("; Max-Age={s}")).unwrap_or_default();
    let text = format!("{name}={value}; Path=/; HttpOnly; Secure; SameSite={same_site}{age}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("iaso_invalid=; Max-Age=0"))
}

/// What a page request tells about its sender.
pub struct Client {
    pub caller: Caller,
    pub tr: Tr,
    csrf: Option<CookieSecret>,
    session: Option<CookieSecret>,
    /// `Sec-Fetch-Site`, which browsers send with every request.
    fetch_site: Option<String>,
    /// The path and query of this page, for the language links and sign-in redirects.
    here: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        let address = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok(Client {
            caller: Caller { address, user_agent },
            tr: Tr::from_headers(headers),
            csrf: cookie(headers, CSRF_COOKIE).and_then(|v| CookieSecret::parse(&v)),
            session: cookie(headers, SESSION_COOKIE).and_then(|v| CookieSecret::parse(&v)),
            fetch_site: headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).map(str::to_owned),
            here: parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        })
    }
}

impl Client {
    /// The CSRF secret to put in forms, and the cookie to set when the browser had none.
    fn csrf(&self) -> Result<(CookieSecret, Option<HeaderValue>), PageError> {
        match &self.csrf {
            Some(s) => Ok((s.clone(), None)),
            None => {
                let s = CookieSecret::generate().map_err(PageError::internal)?;
                let c = set_cookie(CSRF_COOKIE, s.as_str(), "Strict", None);
                Ok((s, Some(c)))
            }
        }
    }

    /// A form is good when it came from one of this server's pages: the browser says the
    /// request is same-origin (or, from an old browser, says nothing) and the form's token
    /// belongs to this browser's CSRF cookie.
    fn form_is_genuine(&self, token: &str) -> bool {
        let same_site = self.fetch_site.as_deref().is_none_or(|s| s == "same-origin" || s == "none");
        same_site && self.csrf.as_ref().is_some_and(|s| s.csrf_matches(token))
    }

    async fn signed(&self, state: &AppState) -> Result<Option<Signed>, PageError> {
        let Some(token) = &self.session else { return Ok(None) };
        Ok(state.idp.session(state.store.as_ref(), store::DEFAULT_TENANT, token).await?)
    }
}

/// The parts every page shares (its base template's fields).
struct Frame {
    t: Tr,
    languages: Vec<(&'static str, String)>,
    here: String,
    csrf: String,
}

/// A page with the headers every page gets: no caching (they show account data), no framing
/// (clickjacking), no referrer (return paths carry OAuth parameters), scripts off.
fn page(status: StatusCode, html: Result<String, askama::Error>, cookies: Vec<HeaderValue>) -> PageResult {
    let body = html.map_err(PageError::internal)?;
    let mut response = (status, axum::response::Html(body)).into_response();
    let h = response.headers_mut();
    for c in cookies {
        h.append(header::SET_COOKIE, c);
    }
    secure_headers(h);
    Ok(response)
}

pub fn secure_headers(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

fn redirect(to: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response();
    for c in cookies {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    secure_headers(response.headers_mut());
    response
}

/// A page that only says something (an expired form, too many requests).
fn message(client: &Client, status: StatusCode, message: String) -> PageResult {
    let tpl = MessagePage { t: client.tr, languages: Tr::all(), here: client.here.clone(), message };
    page(status, tpl.render(), Vec::new())
}

fn frame(client: &Client, csrf: &CookieSecret) -> Frame {
    Frame { t: client.tr, languages: Tr::all(), here: client.here.clone(), csrf: csrf.csrf_token() }
}

/// Where sign-in leads when nothing else was asked for.
const HOME: &str = "/account";

fn return_path(text: Option<&str>) -> String {
    text.and_then(safe_return_path).unwrap_or(HOME).to_owned()
}

fn login_redirect(client: &Client) -> Response {
    let to = form_urlencoded::Serializer::new(String::new()).append_pair("return_to", &client.here).finish();
    redirect(&format!("/auth/login?{to}"), Vec::new())
}

/// Where a session that is not fully signed in must go first, if anywhere.
fn unfinished(signed: &Signed, here: &str) -> Option<Response> {
    match signed.session.stage {
        SessionStage::Active => None,
        SessionStage::SecondFactor => Some(redirect("/auth/login/mfa", Vec::new())),
        SessionStage::Enrol if !here.starts_with("/account/mfa") => Some(redirect("/account/mfa", Vec::new())),
        SessionStage::Enrol => None,
    }
}

macro_rules! templates {
    ($($name:ident = $path:literal { $($field:ident : $ty:ty),* $(,)? })*) => {$(
        #[derive(Template)]
        #[template(path = $path)]
        struct $name { t: Tr, languages: Vec<(&'static str, String)>, here: String, $($field: $ty),* }
    )*};
}

templates! {
    LoginPage = "login.html" { csrf: String, return_to: String, email: String, error: Option<String>, notice: Option<String> }
    MfaPage = "mfa.html" { csrf: String, return_to: String, error: Option<String> }
    AccountPage = "account.html" {
        csrf: String, email: String, notice: Option<String>, mfa_on: bool, backup_left: i64, mfa_required: bool,
        sessions: Vec<SessionRow>, events: Vec<(String, String)>,
    }
    EnrolPage = "enrol.html" { csrf: String, required: bool, error: Option<String>, qr_svg: String, secret: String }
    CodesPage = "codes.html" { codes: Vec<String> }
    DisablePage = "disable.html" { csrf: String, email: String, error: Option<String> }
    PasswordPage = "password.html" { csrf: String, email: String, error: Option<String> }
    MessagePage = "message.html" { message: String }
}

struct SessionRow {
    id: String,
    current: bool,
    agent: String,
    started: String,
    seen: String,
    address: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LoginQuery {
    return_to: Option<String>,
    notice: Option<String>,
}

async fn login_page(State(state): State<AppState>, client: Client, Query(q): Query<LoginQuery>) -> PageResult {
    // Someone already signed in goes on, unless a second factor is still owed.
    if let Some(signed) = client.signed(&state).await? {
        let to = return_path(q.return_to.as_deref());
        return Ok(unfinished(&signed, &to).unwrap_or_else(|| redirect(&to, Vec::new())));
    }
    let notice = match q.notice.as_deref() {
        Some("signed-out") => Some(client.tr.t("login-signed-out")),
        Some("expired") => Some(client.tr.t("login-expired")),
        _ => None,
    };
    login_form(&client, StatusCode::OK, return_path(q.return_to.as_deref()), String::new(), None, notice)
}

fn login_form(
    client: &Client,
    status: StatusCode,
    return_to: String,
    email: String,
    error: Option<String>,
    notice: Option<String>,
) -> PageResult {
    let (csrf, set) = client.csrf()?;
    let f = frame(client, &csrf);
    let tpl = LoginPage { t: f.t, languages: f.languages, here: f.here, csrf: f.csrf, return_to, email, error, notice };
    page(status, tpl.render(), set.into_iter().collect())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LoginForm {
    email: String,
    password: String,
    csrf: String,
    return_to: String,
}

fn minutes_until(until: i64) -> i64 {
    ((until - chrono::Utc::now().timestamp()).max(1) + 59) / 60
}

async fn login_submit(State(state): State<AppState>, client: Client, Form(form): Form<LoginForm>) -> PageResult {
    if !client.form_is_genuine(&form.csrf) {
        return message(&client, StatusCode::FORBIDDEN, client.tr.t("error-csrf"));
    }
    let return_to = return_path(Some(&form.return_to));
    let answer = state
        .idp
        .sign_in(state.store.as_ref(), store::DEFAULT_TENANT, &form.email, &form.password, &client.caller)
        .await?;
    let refuse =
        |status, error: String| login_form(&client, status, return_to.clone(), form.email.clone(), Some(error), None);
    match answer {
        SignIn::Refused => refuse(StatusCode::UNAUTHORIZED, client.tr.t("login-refused")),
        SignIn::Locked(until) => {
            refuse(StatusCode::TOO_MANY_REQUESTS, client.tr.t1("login-locked", "minutes", minutes_until(until)))
        }
        SignIn::Disabled => refuse(StatusCode::FORBIDDEN, client.tr.t("login-disabled")),
        SignIn::Busy => refuse(StatusCode::SERVICE_UNAVAILABLE, client.tr.t("login-busy")),
        SignIn::Started { token, stage } => {
            // A new CSRF secret with the new session: a token learnt before sign-in is useless after.
            let csrf = CookieSecret::generate().map_err(PageError::internal)?;
            let cookies = vec![
                set_cookie(SESSION_COOKIE, token.as_str(), "Lax", None),
                set_cookie(CSRF_COOKIE, csrf.as_str(), "Strict", None),
            ];
            let to = match stage {
                SessionStage::SecondFactor => {
                    let q =
                        form_urlencoded::Serializer::new(String::new()).append_pair("return_to", &return_to).finish();
                    format!("/auth/login/mfa?{q}")
                }
                SessionStage::Enrol => "/account/mfa".to_owned(),
                SessionStage::Active => return_to,
            };
            Ok(redirect(&to, cookies))
        }
    }
}

/// The second-factor form, for a session that owes one.
async fn mfa_page(State(state): State<AppState>, client: Client, Query(q): Query<LoginQuery>) -> PageResult {
    let Some(signed) = client.signed(&state).await? else { return Ok(login_redirect(&client)) };
    if signed.session.stage != SessionStage::SecondFactor {
        return Ok(redirect(&return_path(q.return_to.as_deref()), Vec::new()));
    }
    mfa_form(&client, StatusCode::OK, return_path(q.return_to.as_deref()), None)
}

fn mfa_form(client: &Client, status: StatusCode, return_to: String, error: Option<String>) -> PageResult {
    let (csrf, set) = client.csrf()?;
    let f = frame(client, &csrf);
    let tpl = MfaPage { t: f.t, languages: f.languages, here: f.here, csrf: f.csrf, return_to, error };
    page(status, tpl.render(), set.into_iter().collect())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CodeForm {
    code: String,
    csrf: String,
    return_to: String,
}

async fn mfa_submit(State(state): State<AppState>, client: Client, Form(form): Form<CodeForm>) -> PageResult {
    if !client.form_is_genuine(&form.csrf) {
        return message(&client, StatusCode::FORBIDDEN, client.tr.t("error-csrf"));
    }
    let Some(signed) = client.signed(&state).await? else { return Ok(login_redirect(&client)) };
    let return_to = return_path(Some(&form.return_to));
    if signed.session.stage != SessionStage::SecondFactor {
        return Ok(redirect(&return_to, Vec::new()));
    }
    match state
        .idp
        .second_factor(state.store.as_ref(), store::DEFAULT_TENANT, &signed, &form.code, &client.caller)
        .await?
    {
        Check::Accepted => {
            let to = if state.idp.must_enrol(&signed.account)
                && state
                    .store
                    .second_factor(store::DEFAULT_TENANT, &signed.account.id)
                    .await?
                    .is_none_or(|f| !f.confirmed)
            {
                "/account/mfa".to_owned()
            } else {
                return_to
            };
            Ok(redirect(&to, Vec::new()))
        }
        Check::Refused => mfa_form(&client, StatusCode::UNAUTHORIZED, return_to, Some(client.tr.t("mfa-refused"))),
        Check::Locked(until) => login_form(
            &client,
            StatusCode::TOO_MANY_REQUESTS,
            return_to,
            signed.account.email.clone(),
            Some(client.tr.t1("login-locked", "minutes", minutes_until(until))),
            None,
        ),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CsrfForm {
    csrf: String,
}

async fn logout(State(state): State<AppState>, client: Client, Form(form): Form<CsrfForm>) -> PageResult {
    if !client.form_is_genuine(&form.csrf) {
        return message(&client, StatusCode::FORBIDDEN, client.tr.t("error-csrf"));
    }
    if let Some(signed) = client.signed(&state).await? {
        state.idp.sign_out(state.store.as_ref(), store::DEFAULT_TENANT, &signed, &client.caller).await?;
    }
    Ok(redirect("/auth/login?notice=signed-out", vec![set_cookie(SESSION_COOKIE, "", "Lax", Some(0))]))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LanguageQuery {
    to: String,
    return_to: String,
}

/// Keeps the chosen language in a cookie for a year and goes back to the page.
async fn choose_language(Query(q): Query<LanguageQuery>) -> Response {
    let back = return_path(Some(&q.return_to));
    match Tr::named(&q.to) {
        Some(tr) => redirect(&back, vec![set_cookie(i18n::LANG_COOKIE, tr.lang(), "Lax", Some(365 * 24 * 3600))]),
        None => redirect(&back, Vec::new()),
    }
}

/// The signed-in account for an account page, or where the browser must go instead.
async fn require_signed(state: &AppState, client: &Client) -> Result<Result<Signed, Response>, PageError> {
    let Some(signed) = client.signed(state).await? else { return Ok(Err(login_redirect(client))) };
    Ok(match unfinished(&signed, &client.here) {
        Some(elsewhere) => Err(elsewhere),
        None => Ok(signed),
    })
}

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NoticeQuery {
    notice: Option<String>,
}

async fn account_page(State(state): State<AppState>, client: Client, Query(q): Query<NoticeQuery>) -> PageResult {
    let signed = match require_signed(&state, &client).await? {
        Ok(s) => s,
        Err(elsewhere) => return Ok(elsewhere),
    };
    let (store, tenant) = (state.store.as_ref(), store::DEFAULT_TENANT);
    let factor = store.second_factor(tenant, &signed.account.id).await?.filter(|f| f.confirmed);
    let sessions = store.sessions(tenant, &signed.account.id, chrono::Utc::now()).await?;
    let events = store.auth_events(tenant, Some(&signed.account.id), 10).await?;
    let notice = match q.notice.as_deref() {
        Some("revoked") => Some(client.tr.t("account-session-revoked")),
        Some("password") => Some(client.tr.t("password-changed")),
        Some("mfa-off") => Some(client.tr.t("disable-done")),
        _ => None,
    };
    let (csrf, set) = client.csrf()?;
    let f = frame(&client, &csrf);
    let tpl = AccountPage {
        t: f.t,
        languages: f.languages,
        here: f.here,
        csrf: f.csrf,
        email: signed.account.email.clone(),
        notice,
        mfa_on: factor.is_some(),
        backup_left: factor
            .map_or(0, |f| f.backup_codes.iter().filter(|(_, used)| !used).count())
            .try_into()
            .unwrap_or(0),
        mfa_required: state.idp.must_enrol(&signed.account),
        sessions: sessions
            .into_iter()
            .map(|s| SessionRow {
                current: s.id == signed.session.id,
                agent: s.user_agent.clone().unwrap_or_default(),
                started: when(s.created),
                seen: when(s.last_seen),
                address: s.address.clone(),
                id: s.id,
            })
            .collect(),
        events: events.into_iter().map(|e| (e.at.format("%Y-%m-%dT%H:%M:%SZ").to_string(), e.kind)).collect(),
    };
    page(StatusCode::OK, tpl.render(), set.into_iter().collect())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RevokeForm {
    csrf: String,
    id: String,
}

async fn revoke_session(State(state): State<AppState>, client: Client, Form(form): Form<RevokeForm>) -> PageResult {
    if !client.form_is_genuine(&form.csrf) {
        return message(&client, StatusCode::FORBIDDEN, client.tr.t("error-csrf"));
    }
    let signed = match require_signed(&state, &client).await? {
        Ok(s) => s,
        Err(elsewhere) => return Ok(elsewhere),
    };
    state.idp.revoke(state.store.as_ref(), store::DEFAULT_TENANT, &signed, &form.id, &client.caller).await?;
    Ok(redirect("/account?notice=revoked", Vec::new()))
}

async fn password_page(State(state): State<AppState>, client: Client) -> PageResult {
    let signed = match require_signed(&state, &client).await? {
        Ok(s) => s,
        Err(elsewhere) => return Ok(elsewhere),
    };
    password_form(&client, StatusCode::OK, &signed, None)
}

fn password_form(client: &Client, status: StatusCode, signed: &Signed, error: Option<String>) -> PageResult {
    let (csrf, set) = client.csrf()?;
    let f = frame(client, &csrf);
    let email = signed.account.email.clone();
    let tpl = PasswordPage { t: f.t, languages: f.languages, here: f.here, csrf: f.csrf, email, error };
    page(status, tpl.render(), set.into_iter().collect())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
    confirm: String,
}

async fn password_submit(State(state): State<AppState>, client: Client, Form(form): Form<PasswordForm>) -> PageResult {
    if !client.form_is_genuine(&form.csrf) {
        return message(&client, StatusCode::FORBIDDEN, client.tr.t("error-csrf"));
    }
    let signed = match require_signed(&state, &client).await? {
        Ok(s) => s,
        Err(elsewhere) => return Ok(elsewhere),
    };
    let t = client.tr;
    if form.new != form.confirm {
        return password_form(&client, StatusCode::BAD_REQUEST, &signed, Some(t.t("password-mismatch")));
    }
    let answer = state
        .idp
        .change_password(state.store.as_ref(), store::DEFAULT_TENANT, &signed, &form.current, &form.new, &client.caller)
        .await?;
    let error = match answer {
        PasswordChange::Changed => return Ok(redirect("/account?notice=password", Vec::new())),
        PasswordChange::WrongCurrent => (StatusCode::UNAUTHORIZED, t.t("password-wrong-current")),
        PasswordChange::Busy => (StatusCode::SERVICE_UNAVAILABLE, t.t("login-busy")),
        PasswordChange::Weak(v) => (StatusCode::BAD_REQUEST, policy_message(t, &v)),
    };
    password_form(&client, error.0, &signed, Some(error.1))
}

fn policy_message(t: Tr, v: &auth::PolicyViolation) -> String {
    use auth::PolicyViolation as P;
    match v {
        P::TooShort { min, .. } => t.t1("password-too-short", "min", *min),
        P::TooLong { max, .. } => t.t1("password-too-long", "max", *max),
        P::Common => t.t("password-too-common"),
        P::ContainsEmail => t.t("password-contains-email"),
    }
}

async fn enrol_page(State(state): State<AppState>, client: Client) -> PageResult {
    let signed = match require_signed(&state, &client).await? {
        Ok(s) => s,
        Err(elsewhere) => return Ok(elsewhere),
    };
    if state.store.second_factor(store::DEFAULT_TENANT, &signed.account.id).await?.is_some_and(|f| f.confirmed) {
        return Ok(redirect(HOME, Vec::new()));
    }
    enrol_form(&state, &client, StatusCode::OK, &signed, None).await
}

async fn enrol_form(
    state: &AppState,
    client: &Client,
    status: StatusCode,
    signed: &Signed,
    error: Option<String>,
) -> PageResult {
    let factor = state.idp.begin_enrolment(state.store.as_ref(), store::DEFAULT_TENANT, &signed.account).await?;
    let secret = auth::totp::TotpSecret::from_base32(&factor.totp_secret).map_err(PageError::internal)?;
    let uri =
        secret.provisioning_uri(&state.idp.config.issuer_name, &signed.account.email).map_err(PageError::internal)?;
    let qr_svg = auth::totp::qr_svg(&uri).map_err(PageError::internal)?;
    let (csrf, set) = client.csrf()?;
    let f = frame(client, &csrf);
    let tpl = EnrolPage {
        t: f.t,
        languages: f.languages,
        here: f.here,
        csrf: f.csrf,
        required: signed.session.stage == SessionStage::Enrol,
        error,
        qr_svg,
        secret: factor.totp_secret,
    };
    page(status, tpl.render(), set.into_iter().collect())
}

async fn enrol_submit(State(state): State<AppState>, client: Client, Form(form): Form<CodeForm>) -> PageResult {
    if !client.form_is_genuine(&form.csrf) {
        return message(&client, StatusCode::FORBIDDEN, client.tr.t("error-csrf"));
    }
    let signed = match require_signed(&state, &client).await? {
        Ok(s) => s,
        Err(elsewhere) => return Ok(elsewhere),
    };
    match state
        .idp
        .confirm_enrolment(state.store.as_ref(), store::DEFAULT_TENANT, &signed, &form.code, &client.caller)
        .await?
    {
        Some(codes) => {
            let tpl = CodesPage { t: client.tr, languages: Tr::all(), here: client.here.clone(), codes };
            page(StatusCode::OK, tpl.render(), Vec::new())
        }
        None => {
            enrol_form(&state, &client, StatusCode::UNAUTHORIZED, &signed, Some(client.tr.t("enrol-refused"))).await
        }
    }
}

async fn disable_page(State(state): State<AppState>, client: Client) -> PageResult {
    let signed = match require_signed(&state, &client).await? {
        Ok(s) => s,
        Err(elsewhere) => return Ok(elsewhere),
    };
    disable_form(&client, StatusCode::OK, &signed, None)
}

fn disable_form(client: &Client, status: StatusCode, signed: &Signed, error: Option<String>) -> PageResult {
    let (csrf, set) = client.csrf()?;
    let f = frame(client, &csrf);
    let email = signed.account.email.clone();
    let tpl = DisablePage { t: f.t, languages: f.languages, here: f.here, csrf: f.csrf, email, error };
    page(status, tpl.render(), set.into_iter().collect())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DisableForm {
    csrf: String,
    password: String,
}

async fn disable_submit(State(state): State<AppState>, client: Client, Form(form): Form<DisableForm>) -> PageResult {
    if !client.form_is_genuine(&form.csrf) {
        return message(&client, StatusCode::FORBIDDEN, client.tr.t("error-csrf"));
    }
    let signed = match require_signed(&state, &client).await? {
        Ok(s) => s,
        Err(elsewhere) => return Ok(elsewhere),
    };
    if state.idp.must_enrol(&signed.account) {
        return message(&client, StatusCode::FORBIDDEN, client.tr.t("account-mfa-required"));
    }
    let answer = state
        .idp
        .disable_second_factor(state.store.as_ref(), store::DEFAULT_TENANT, &signed, &form.password, &client.caller)
        .await?;
    match answer {
        Some(true) => Ok(redirect("/account?notice=mfa-off", Vec::new())),
        Some(false) => disable_form(&client, StatusCode::UNAUTHORIZED, &signed, Some(client.tr.t("disable-refused"))),
        None => disable_form(&client, StatusCode::SERVICE_UNAVAILABLE, &signed, Some(client.tr.t("login-busy"))),
    }
}

async fn style() -> Response {
    let mut r = ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../../templates/style.css"))
        .into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    r
}

/// Every identity page and form is rate limited per source address, before any work: a
/// client that floods them gets 429 with `Retry-After` and costs nothing else.
async fn rate_limit(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let address: Option<IpAddr> = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if let Some(address) = address
        && let Err(wait) = state.idp.admit(address)
    {
        let tr = Tr::from_headers(request.headers());
        let mut response = (StatusCode::TOO_MANY_REQUESTS, tr.t("error-rate")).into_response();
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    next.run(request).await
}
