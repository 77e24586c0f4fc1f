//! Sign-in, sessions, lockout, two-step verification and password change, over HTTP against
//! the real server on both stores, the way a browser without JavaScript uses the pages:
//! cookies kept by hand (reqwest's jar would not keep `Secure` cookies over plain HTTP),
//! redirects followed by hand so each `Location` can be checked.

mod common;

use std::collections::BTreeMap;

use common::{Backend, TestServer};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use server::idp::IdentityConfig;

struct Browser {
    root: String,
    client: reqwest::Client,
    cookies: BTreeMap<String, String>,
    set_cookies: Vec<String>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    text: String,
}

impl Page {
    fn csrf(&self) -> String {
        let start = self.text.find("name=\"csrf\" value=\"").unwrap_or_else(|| panic!("no CSRF field: {}", self.text));
        let rest = &self.text[start + 19..];
        rest[..rest.find('"').expect("end of value")].to_owned()
    }

    fn goes_to(&self, path: &str) {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.text);
        assert_eq!(self.location.as_deref(), Some(path));
    }
}

impl Browser {
    fn new(server: &TestServer) -> Browser {
        Browser {
            root: server.base.trim_end_matches("/fhir").to_owned(),
            client: reqwest::Client::builder().redirect(Policy::none()).build().expect("client"),
            cookies: BTreeMap::new(),
            set_cookies: Vec::new(),
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let cookie: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let req = req.header("cookie", cookie.join("; ")).header("user-agent", "IdentityTest/1.0");
        let r = req.send().await.expect("request");
        self.set_cookies.clear();
        for c in r.headers().get_all("set-cookie") {
            let c = c.to_str().expect("ascii").to_owned();
            let (pair, _) = c.split_once(';').unwrap_or((&c, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            if c.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
            self.set_cookies.push(c);
        }
        let location = r.headers().get("location").map(|v| v.to_str().expect("ascii").to_owned());
        Page { status: r.status(), location, text: r.text().await.expect("body") }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.client.get(format!("{}{path}", self.root));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = form_body(self.client.post(format!("{}{path}", self.root)), form);
        self.send(req).await
    }

    /// Fills the form of the page at `page_path` (for its CSRF token) and submits it to `action`.
    async fn submit(&mut self, page_path: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.get(page_path).await.csrf();
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        self.post(action, &form).await
    }

    async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        self.submit("/auth/login", "/auth/login", &[("email", email), ("password", password), ("return_to", "")]).await
    }
}

fn form_body(req: reqwest::RequestBuilder, form: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    req.header("content-type", "application/x-www-form-urlencoded").body(body)
}

const PASSWORD: &str = "plum orchard lantern 42";

async fn account(server: &TestServer, id: &str, email: &str, role: &str) {
    let hash = auth::password::hash(PASSWORD, &auth::password::Argon2Params::DEFAULT).expect("hash");
    let now = chrono::Utc::now();
    let a = store::Account {
        id: id.into(),
        email: email.into(),
        email_verified: true,
        password_hash: Some(hash),
        roles: vec![role.into()],
        fhir_user: None,
        status: store::AccountStatus::Active,
        version: 0,
        created: now,
        updated: now,
    };
    server.store.create_account(store::DEFAULT_TENANT, &a).await.expect("account");
}

async fn event_kinds(server: &TestServer, account_id: Option<&str>) -> Vec<String> {
    let events = server.store.auth_events(store::DEFAULT_TENANT, account_id, 100).await.expect("events");
    events.into_iter().rev().map(|e| e.kind).collect()
}

const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

#[tokio::test]
async fn sign_in_pages_sessions_and_sign_out() {
    for backend in BACKENDS {
        let server = common::start(backend).await;
        account(&server, "ann", "ann@example.org", "patient").await;
        let mut b = Browser::new(&server);

        let login = b.get("/auth/login").await;
        assert_eq!(login.status, StatusCode::OK);
        for attr in ["autocomplete=\"username\"", "autocomplete=\"current-password\"", "<html lang=\"en\" dir=\"ltr\">"]
        {
            assert!(login.text.contains(attr), "{attr}");
        }
        let csrf_cookie = b.set_cookies.iter().find(|c| c.starts_with("iaso_csrf=")).expect("a CSRF cookie").clone();
        assert!(
            csrf_cookie.contains("HttpOnly")
                && csrf_cookie.contains("Secure")
                && csrf_cookie.contains("SameSite=Strict")
        );

        // A wrong password and an unknown email get the same answer.
        let wrong = b.sign_in("ann@example.org", "not the password at all").await;
        let unknown = b.sign_in("nobody@example.org", PASSWORD).await;
        assert_eq!((wrong.status, unknown.status), (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED));
        assert!(wrong.text.contains("The email or password is incorrect."));
        assert!(unknown.text.contains("The email or password is incorrect."));
        assert!(!b.cookies.contains_key("iaso_session"));

        // A form without its token, or sent from another site, does nothing.
        let forged = b.post("/auth/login", &[("email", "ann@example.org"), ("password", PASSWORD)]).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        let csrf = b.get("/auth/login").await.csrf();
        let cross = b
            .send(form_body(
                b.client.post(format!("{}/auth/login", b.root)).header("sec-fetch-site", "cross-site"),
                &[("csrf", csrf.as_str()), ("email", "ann@example.org"), ("password", PASSWORD)],
            ))
            .await;
        assert_eq!(cross.status, StatusCode::FORBIDDEN);
        assert!(!b.cookies.contains_key("iaso_session"));

        // The email is compared without regard to case; another site is never a return path.
        let ok = b
            .submit(
                "/auth/login",
                "/auth/login",
                &[("email", " Ann@Example.org "), ("password", PASSWORD), ("return_to", "//evil.example/x")],
            )
            .await;
        ok.goes_to("/account");
        let session_cookie = b.set_cookies.iter().find(|c| c.starts_with("iaso_session=")).expect("session cookie");
        assert!(
            session_cookie.contains("HttpOnly")
                && session_cookie.contains("Secure")
                && session_cookie.contains("SameSite=Lax")
        );
        let token = b.cookies["iaso_session"].clone();

        let page = b.get("/account").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text.contains("ann@example.org"));
        assert!(page.text.contains("This browser"));
        assert!(page.text.contains("login.success"));
        let headers_page = b.client.get(format!("{}/account", b.root)).send().await.expect("get");
        assert_eq!(headers_page.headers()["cache-control"], "no-store");
        assert!(
            headers_page.headers()["content-security-policy"].to_str().expect("csp").contains("frame-ancestors 'none'")
        );

        // The store keeps a digest, never the token.
        let digest = auth::session::CookieSecret::parse(&token).expect("token shape").digest();
        let kept = server.store.session_by_token(store::DEFAULT_TENANT, &digest).await.expect("read").expect("kept");
        assert_eq!(kept.account_id, "ann");
        assert_ne!(kept.token_hash, token);
        assert_eq!(kept.user_agent.as_deref(), Some("IdentityTest/1.0"));

        // Signing in again from the login page goes straight on.
        b.get("/auth/login?return_to=/account").await.goes_to("/account");

        let out = b.submit("/account", "/auth/logout", &[]).await;
        out.goes_to("/auth/login?notice=signed-out");
        assert!(!b.cookies.contains_key("iaso_session"));
        b.get("/account").await.goes_to("/auth/login?return_to=%2Faccount");
        // The old token is dead even if a copy of it is replayed.
        b.cookies.insert("iaso_session".into(), token);
        b.get("/account").await.goes_to("/auth/login?return_to=%2Faccount");

        let kinds = event_kinds(&server, Some("ann")).await;
        assert_eq!(kinds, ["login.failure", "login.success", "logout"], "{backend:?}");
    }
}

#[tokio::test]
async fn lockout_is_the_same_for_known_and_unknown_emails() {
    for backend in BACKENDS {
        let server = common::start(backend).await;
        account(&server, "bob", "bob@example.org", "patient").await;
        let mut b = Browser::new(&server);
        for email in ["bob@example.org", "ghost@example.org"] {
            for attempt in 1..=5 {
                let p = b.sign_in(email, "wrong password, again and again").await;
                let expected = if attempt < 5 { StatusCode::UNAUTHORIZED } else { StatusCode::TOO_MANY_REQUESTS };
                assert_eq!(p.status, expected, "{email} attempt {attempt}");
                if attempt == 5 {
                    assert!(p.text.contains("Too many attempts. Try again in one minute."), "{}", p.text);
                }
            }
        }
        // Locked means locked: the right password does not get in either, and is not checked.
        let p = b.sign_in("bob@example.org", PASSWORD).await;
        assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(!b.cookies.contains_key("iaso_session"));
        let kinds = event_kinds(&server, Some("bob")).await;
        assert_eq!(kinds.iter().filter(|k| *k == "login.failure").count(), 5);
        assert_eq!(kinds.last().map(String::as_str), Some("login.locked"));
        // Another email from the same address is not locked by these.
        account(&server, "cy", "cy@example.org", "patient").await;
        b.sign_in("cy@example.org", PASSWORD).await.goes_to("/account");
    }
}

/// The code an authenticator app would show `offset` seconds from now.
fn code(secret: &str, offset: i64) -> String {
    let secret = auth::totp::TotpSecret::from_base32(secret).expect("secret");
    let t = u64::try_from(chrono::Utc::now().timestamp() + offset).expect("time");
    auth::totp::code_at(&secret, t).expect("code")
}

fn secret_on(page: &Page) -> String {
    let start = page.text.find("id=\"totp-secret\">").expect("the key is shown") + 17;
    let rest = &page.text[start..];
    rest[..rest.find('<').expect("end")].to_owned()
}

#[tokio::test]
async fn two_step_verification_enrols_and_is_enforced() {
    for backend in BACKENDS {
        let server = common::start(backend).await;
        account(&server, "dee", "dee@example.org", "patient").await;
        let mut b = Browser::new(&server);
        b.sign_in("dee@example.org", PASSWORD).await.goes_to("/account");
        assert!(b.get("/account").await.text.contains("Turn on two-step verification"));

        let enrol = b.get("/account/mfa").await;
        assert!(enrol.text.contains("<svg"), "a QR code");
        let secret = secret_on(&enrol);
        assert_eq!(secret_on(&b.get("/account/mfa").await), secret, "the pending secret stays until confirmed");
        let wrong = b.submit("/account/mfa", "/account/mfa", &[("code", "000000")]).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        let codes_page = b.submit("/account/mfa", "/account/mfa", &[("code", &code(&secret, 0))]).await;
        assert_eq!(codes_page.status, StatusCode::OK, "{}", codes_page.text);
        let codes: Vec<String> =
            codes_page.text.split("<li><code>").skip(1).map(|s| s[..s.find('<').expect("end")].to_owned()).collect();
        assert_eq!(codes.len(), 10);
        assert!(b.get("/account").await.text.contains("Backup codes left: 10."));
        b.submit("/account", "/auth/logout", &[]).await;

        // Now sign-in asks for a code, and nothing else is open until it is given.
        let first = b.sign_in("dee@example.org", PASSWORD).await;
        first.goes_to("/auth/login/mfa?return_to=%2Faccount");
        b.get("/account").await.goes_to("/auth/login/mfa");
        let next_step = code(&secret, 30);
        let bad =
            b.submit("/auth/login/mfa", "/auth/login/mfa", &[("code", "123 456"), ("return_to", "/account")]).await;
        assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
        assert!(bad.text.contains("That code is not right"));
        b.submit("/auth/login/mfa", "/auth/login/mfa", &[("code", &next_step), ("return_to", "/account")])
            .await
            .goes_to("/account");
        assert_eq!(b.get("/account").await.status, StatusCode::OK);
        b.submit("/account", "/auth/logout", &[]).await;

        // A code is good once; a backup code too.
        b.sign_in("dee@example.org", PASSWORD).await;
        let replay = b.submit("/auth/login/mfa", "/auth/login/mfa", &[("code", &next_step), ("return_to", "")]).await;
        assert_eq!(replay.status, StatusCode::UNAUTHORIZED, "a replayed TOTP code");
        b.submit("/auth/login/mfa", "/auth/login/mfa", &[("code", &codes[3].to_uppercase()), ("return_to", "")])
            .await
            .goes_to("/account");
        assert!(b.get("/account").await.text.contains("Backup codes left: 9."));
        b.submit("/account", "/auth/logout", &[]).await;
        b.sign_in("dee@example.org", PASSWORD).await;
        let reused = b.submit("/auth/login/mfa", "/auth/login/mfa", &[("code", &codes[3]), ("return_to", "")]).await;
        assert_eq!(reused.status, StatusCode::UNAUTHORIZED, "a used backup code");

        // Five wrong codes end the half-open session.
        for attempt in 1..=5 {
            let p = b.submit("/auth/login/mfa", "/auth/login/mfa", &[("code", "999999"), ("return_to", "")]).await;
            if attempt < 4 {
                assert_eq!(p.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
            } else {
                assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS, "attempt {attempt}");
                break;
            }
        }
        b.get("/auth/login/mfa").await.goes_to("/auth/login?return_to=%2Fauth%2Flogin%2Fmfa");

        let kinds = event_kinds(&server, Some("dee")).await;
        assert!(kinds.contains(&"mfa.enabled".to_owned()));
        assert!(kinds.contains(&"login.locked".to_owned()), "{kinds:?}");
    }
}

#[tokio::test]
async fn staff_must_enrol_before_anything_else() {
    for backend in BACKENDS {
        let server = common::start(backend).await;
        account(&server, "eve", "eve@example.org", "practitioner").await;
        let mut b = Browser::new(&server);
        b.sign_in("eve@example.org", PASSWORD).await.goes_to("/account/mfa");
        b.get("/account").await.goes_to("/account/mfa");
        b.get("/account/password").await.goes_to("/account/mfa");
        let enrol = b.get("/account/mfa").await;
        assert!(enrol.text.contains("Your role requires two-step verification"));
        let secret = secret_on(&enrol);
        let done = b.submit("/account/mfa", "/account/mfa", &[("code", &code(&secret, 0))]).await;
        assert_eq!(done.status, StatusCode::OK);
        let page = b.get("/account").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text.contains("cannot be turned off"));
        let refused = b.submit("/account", "/account/mfa/disable", &[("password", PASSWORD)]).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
    }

    // With the setting off, staff sign in directly.
    let server =
        common::start_with(Backend::Sqlite, IdentityConfig { require_mfa_for_staff: false, ..Default::default() })
            .await;
    account(&server, "fay", "fay@example.org", "nurse").await;
    Browser::new(&server).sign_in("fay@example.org", PASSWORD).await.goes_to("/account");
}

#[tokio::test]
async fn a_new_password_ends_the_other_sessions() {
    for backend in BACKENDS {
        let server = common::start(backend).await;
        account(&server, "gus", "gus@example.org", "patient").await;
        let (mut a, mut b) = (Browser::new(&server), Browser::new(&server));
        a.sign_in("gus@example.org", PASSWORD).await.goes_to("/account");
        b.sign_in("gus@example.org", PASSWORD).await.goes_to("/account");
        assert_eq!(a.get("/account").await.text.matches("Sign out this session").count(), 1);

        let form = |current: &'static str, new: &'static str, confirm: &'static str| {
            [("current", current), ("new", new), ("confirm", confirm)]
        };
        let weak =
            a.submit("/account/password", "/account/password", &form(PASSWORD, "password1234", "password1234")).await;
        assert_eq!(weak.status, StatusCode::BAD_REQUEST);
        assert!(weak.text.contains("leaked passwords"));
        let mismatch =
            a.submit("/account/password", "/account/password", &form(PASSWORD, "river stone", "river stones")).await;
        assert_eq!(mismatch.status, StatusCode::BAD_REQUEST);
        let new = "quiet heron meadow 77";
        let wrong = a.submit("/account/password", "/account/password", &form("not it at all!", new, new)).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        a.submit("/account/password", "/account/password", &form(PASSWORD, new, new))
            .await
            .goes_to("/account?notice=password");

        assert_eq!(a.get("/account").await.status, StatusCode::OK, "this session stays");
        b.get("/account").await.goes_to("/auth/login?return_to=%2Faccount");
        let mut c = Browser::new(&server);
        assert_eq!(c.sign_in("gus@example.org", PASSWORD).await.status, StatusCode::UNAUTHORIZED);
        c.sign_in("gus@example.org", new).await.goes_to("/account");

        // One session ends another from the list.
        let page = a.get("/account").await;
        let id_start = page.text.find("name=\"id\" value=\"").expect("a session to revoke") + 17;
        let id = page.text[id_start..id_start + 36].to_owned();
        a.submit("/account", "/account/sessions/revoke", &[("id", &id)]).await.goes_to("/account?notice=revoked");
        c.get("/account").await.goes_to("/auth/login?return_to=%2Faccount");
        assert!(event_kinds(&server, Some("gus")).await.contains(&"password.changed".to_owned()));
    }
}

#[tokio::test]
async fn idle_sessions_end() {
    let config = IdentityConfig {
        session: auth::session::SessionPolicy { idle_seconds: 1, absolute_seconds: 3600 },
        ..Default::default()
    };
    let server = common::start_with(Backend::Sqlite, config).await;
    account(&server, "hal", "hal@example.org", "patient").await;
    let mut b = Browser::new(&server);
    b.sign_in("hal@example.org", PASSWORD).await.goes_to("/account");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    b.get("/account").await.goes_to("/auth/login?return_to=%2Faccount");
    let sessions = server.store.sessions(store::DEFAULT_TENANT, "hal", chrono::Utc::now()).await.expect("list");
    assert!(sessions.is_empty(), "the expired session was ended");
}

#[tokio::test]
async fn pages_speak_the_readers_language_and_limit_requests() {
    let server = common::start(Backend::Sqlite).await;
    let mut b = Browser::new(&server);
    let es = b.send(b.client.get(format!("{}/auth/login", b.root)).header("accept-language", "es-MX,es;q=0.9")).await;
    assert!(es.text.contains("<html lang=\"es\" dir=\"ltr\">"));
    assert!(es.text.contains("Iniciar sesión"), "{}", es.text);
    b.get("/auth/lang?to=ar&return_to=/auth/login").await.goes_to("/auth/login");
    let ar = b.get("/auth/login").await;
    assert!(ar.text.contains("<html lang=\"ar\" dir=\"rtl\">"));
    b.get("/auth/lang?to=en&return_to=https://evil.example").await.goes_to("/account");

    // A flood from one address is cut off with 429 and Retry-After.
    let mut limited = None;
    for _ in 0..200 {
        let r = b.client.get(format!("{}/auth/login", b.root)).send().await.expect("get");
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
    }
    let limited = limited.expect("the limit was reached");
    assert!(limited.headers().contains_key("retry-after"));
}
