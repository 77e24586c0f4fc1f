//! `iaso user create` and `iaso user list`: accounts made and listed by an operator at the
//! command line (DESIGN §2).

use std::io::BufRead;

use auth::account::{Email, FhirUser, Role};
use auth::password::{self, Argon2Params};
use serde_json::{Value, json};
use store::{Account, AccountStatus, DEFAULT_TENANT, Store, StoreError};

/// What `iaso user create` was given.
pub struct NewUser {
    pub email: String,
    pub roles: Vec<String>,
    pub fhir_user: Option<String>,
    /// Without a password the account is invited (no password until one is set through a
    /// reset link).
    pub password: Option<String>,
}

/// Creates the account and answers what to print: the account without its hash.
pub async fn create(store: &dyn Store, new: NewUser) -> Result<Value, String> {
    let email = Email::parse(&new.email).map_err(|e| e.to_string())?;
    let mut roles =
        new.roles.iter().map(|r| Role::parse(r).map_err(|e| e.to_string())).collect::<Result<Vec<_>, _>>()?;
    roles.sort();
    roles.dedup();
    let fhir_user = new.fhir_user.as_deref().map(FhirUser::parse).transpose().map_err(|e| e.to_string())?;
    if let Some(user) = &fhir_user {
        // The identity must exist: an account pointing nowhere would fail at every launch.
        match store.read(DEFAULT_TENANT, user.resource_type(), user.id()).await.map_err(|e| e.to_string())? {
            Some(v) if !v.is_deleted() => {}
            _ => return Err(format!("{user} does not exist in the store")),
        }
    }
    let password_hash = if let Some(password) = new.password {
        password::check_policy(&password, Some(email.as_str())).map_err(|e| format!("{} ({})", e, e.code()))?;
        // Argon2id takes a tenth of a second of one core by design.
        let hashed = tokio::task::spawn_blocking(move || password::hash(&password, &Argon2Params::DEFAULT))
            .await
            .map_err(|e| format!("hashing stopped: {e}"))?
            .map_err(|e| e.to_string())?;
        Some(hashed)
    } else {
        None
    };
    let status = if password_hash.is_some() { AccountStatus::Active } else { AccountStatus::Invited };
    let account = Account {
        id: uuid::Uuid::new_v4().to_string(),
        email: email.to_string(),
        // The operator vouches for the address they typed.
        email_verified: true,
        password_hash,
        roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
        fhir_user: fhir_user.as_ref().map(ToString::to_string),
        status,
        version: 0,
        created: Default::default(),
        updated: Default::default(),
    };
    let created = store.create_account(DEFAULT_TENANT, &account).await.map_err(|e| match e {
        StoreError::Exists(_) => format!("an account with the email {email} already exists"),
        other => other.to_string(),
    })?;
    Ok(shown(&created))
}

/// An account as the CLI prints it: never its password hash.
fn shown(account: &Account) -> Value {
    json!({
        "id": account.id,
        "email": account.email,
        "roles": account.roles,
        "fhirUser": account.fhir_user,
        "status": account.status.as_str(),
        "emailVerified": account.email_verified,
        "created": account.created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

/// Every account of the tenant in email order, one JSON object per line.
pub async fn list(store: &dyn Store, out: &mut impl std::io::Write) -> Result<usize, String> {
    const PAGE: usize = 500;
    let mut after: Option<String> = None;
    let mut listed = 0;
    loop {
        let page = store.accounts(DEFAULT_TENANT, after.as_deref(), PAGE).await.map_err(|e| e.to_string())?;
        for account in &page {
            writeln!(out, "{}", shown(account)).map_err(|e| format!("cannot write: {e}"))?;
        }
        listed += page.len();
        match page.last() {
            Some(last) if page.len() == PAGE => after = Some(last.email.clone()),
            _ => return Ok(listed),
        }
    }
}

/// The first line of standard input, without its line ending.
pub fn read_password() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    let password = line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line).to_owned();
    if password.is_empty() {
        return Err("--password-stdin: standard input held no password".into());
    }
    Ok(password)
}

/// The demo clinic's accounts: a patient, a practitioner and an administrator, each with a
/// random password printed once (nothing secret is in the repository). The patient and the
/// practitioner act as the first demo Patient and Practitioner.
pub async fn seed_demo_accounts(store: &dyn Store) -> Result<(), String> {
    let first = |resource_type: &'static str| async move {
        let query = store::HistoryQuery { resource_type: Some(resource_type.into()), count: 1, ..Default::default() };
        let newest = store.history(DEFAULT_TENANT, &query).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(newest.first().map(|v| format!("{resource_type}/{}", v.id)))
    };
    let demo = [
        ("patient@clinic.example", "patient", first("Patient").await?),
        ("doctor@clinic.example", "practitioner", first("Practitioner").await?),
        ("admin@clinic.example", "admin", None),
    ];
    println!("Demo accounts (sign in at /auth/login; staff set up two-step verification first):");
    for (email, role, fhir_user) in demo {
        // About 90 random bits (a v4 UUID less its fixed version digits), in groups a person
        // can type.
        let random = uuid::Uuid::new_v4().simple().to_string();
        let password = format!("{}-{}-{}", &random[..8], &random[8..16], &random[16..24]);
        let new =
            NewUser { email: email.into(), roles: vec![role.into()], fhir_user, password: Some(password.clone()) };
        create(store, new).await?;
        println!("  {email}  {password}  ({role})");
    }
    Ok(())
}
