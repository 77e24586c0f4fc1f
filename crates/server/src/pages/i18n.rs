//! The pages' words, from Fluent message catalogues (`locales/*.ftl`, compiled into the binary).
//! English is the reference: a message missing from another catalogue falls back to it, and a
//! test checks that every catalogue has every English message.

use std::sync::LazyLock;

use axum::http::HeaderMap;
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use unic_langid::LanguageIdentifier;

/// Languages with a catalogue: tag, text direction, catalogue source.
const CATALOGUES: &[(&str, Direction, &str)] = &[
    ("en", Direction::Ltr, include_str!("../../locales/en.ftl")),
    ("es", Direction::Ltr, include_str!("../../locales/es.ftl")),
    ("ar", Direction::Rtl, include_str!("../../locales/ar.ftl")),
];

/// The cookie that keeps a language chosen on a page over the browser's preference.
pub const LANG_COOKIE: &str = "iaso_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ltr,
    Rtl,
}

struct Language {
    tag: &'static str,
    langid: LanguageIdentifier,
    direction: Direction,
    bundle: FluentBundle<FluentResource>,
}

struct Languages(Vec<Language>);

static LANGUAGES: LazyLock<Languages> = LazyLock::new(|| {
    Languages(
        CATALOGUES
            .iter()
            .filter_map(|(tag, direction, source)| {
                let langid: LanguageIdentifier = tag.parse().ok()?;
                let mut bundle = FluentBundle::new_concurrent(vec![langid.clone()]);
                // Isolation marks would land inside attribute values and test assertions; the
                // pages set `dir` on the document instead.
                bundle.set_use_isolating(false);
                // A catalogue with a syntax error keeps the messages that parsed (the test
                // below fails on any error, so none reaches a release).
                let resource = match FluentResource::try_new((*source).to_owned()) {
                    Ok(r) => r,
                    Err((r, _)) => r,
                };
                let _ = bundle.add_resource(resource);
                Some(Language { tag, langid, direction: *direction, bundle })
            })
            .collect(),
    )
});

/// The words of one page view, in the language the reader asked for.
#[derive(Clone, Copy)]
pub struct Tr {
    index: usize,
}

impl Tr {
    pub const ENGLISH: Tr = Tr { index: 0 };

    /// The language of a request: the `iaso_lang` cookie if it names a catalogue, otherwise
    /// the best match of `Accept-Language`, otherwise English.
    pub fn from_headers(headers: &HeaderMap) -> Tr {
        if let Some(chosen) = super::cookie(headers, LANG_COOKIE).and_then(|tag| Tr::named(&tag)) {
            return chosen;
        }
        let accept = headers.get(axum::http::header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let requested = fluent_langneg::accepted_languages::parse(accept);
        let available: Vec<&LanguageIdentifier> = LANGUAGES.0.iter().map(|l| &l.langid).collect();
        let english = &LANGUAGES.0[0].langid;
        let chosen = fluent_langneg::negotiate_languages(
            &requested,
            &available,
            Some(&english),
            fluent_langneg::NegotiationStrategy::Lookup,
        );
        chosen
            .first()
            .and_then(|id| LANGUAGES.0.iter().position(|l| l.langid == ***id))
            .map_or(Tr::ENGLISH, |index| Tr { index })
    }

    /// The catalogue with this exact tag.
    pub fn named(tag: &str) -> Option<Tr> {
        LANGUAGES.0.iter().position(|l| l.tag == tag).map(|index| Tr { index })
    }

    /// Every language with a catalogue, for the language links: (tag, its own name).
    pub fn all() -> Vec<(&'static str, String)> {
        (0..LANGUAGES.0.len()).map(|index| (LANGUAGES.0[index].tag, Tr { index }.t("lang-name"))).collect()
    }

    pub fn lang(&self) -> &'static str {
        LANGUAGES.0[self.index].tag
    }

    pub fn dir(&self) -> &'static str {
        match LANGUAGES.0[self.index].direction {
            Direction::Ltr => "ltr",
            Direction::Rtl => "rtl",
        }
    }

    /// A message without arguments.
    pub fn t(&self, id: &str) -> String {
        self.format(id, None)
    }

    /// A message with one argument; numbers pick plural forms.
    pub fn t1(&self, id: &str, name: &str, value: impl Into<Arg>) -> String {
        let mut args = FluentArgs::new();
        match value.into() {
            Arg::Text(s) => args.set(name.to_owned(), FluentValue::from(s)),
            Arg::Number(n) => args.set(name.to_owned(), FluentValue::from(n)),
        }
        self.format(id, Some(&args))
    }

    fn format(&self, id: &str, args: Option<&FluentArgs<'_>>) -> String {
        for language in [&LANGUAGES.0[self.index], &LANGUAGES.0[0]] {
            let Some(pattern) = language.bundle.get_message(id).and_then(|m| m.value()) else { continue };
            let mut errors = Vec::new();
            let text = language.bundle.format_pattern(pattern, args, &mut errors);
            if errors.is_empty() {
                return text.into_owned();
            }
            tracing::warn!(id, lang = language.tag, ?errors, "a message did not format");
        }
        tracing::warn!(id, "no catalogue has this message");
        format!("[{id}]")
    }
}

pub enum Arg {
    Text(String),
    Number(i64),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg::Text(s.to_owned())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg::Text(s)
    }
}

impl From<i64> for Arg {
    fn from(n: i64) -> Self {
        Arg::Number(n)
    }
}

impl From<&i64> for Arg {
    fn from(n: &i64) -> Self {
        Arg::Number(*n)
    }
}

impl From<usize> for Arg {
    fn from(n: usize) -> Self {
        Arg::Number(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ids(source: &str) -> Vec<String> {
        let resource = FluentResource::try_new(source.to_owned()).expect("the catalogue parses");
        resource
            .entries()
            .filter_map(|e| match e {
                fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_catalogue_parses_and_has_every_english_message() {
        let english = ids(CATALOGUES[0].2);
        assert!(english.len() > 50);
        for (tag, _, source) in CATALOGUES {
            let theirs = ids(source);
            for id in &english {
                assert!(theirs.contains(id), "{tag}.ftl lacks {id}");
            }
            for id in &theirs {
                assert!(english.contains(id), "{tag}.ftl has {id}, which en.ftl does not");
            }
        }
        assert_eq!(LANGUAGES.0.len(), CATALOGUES.len());
    }

    #[test]
    fn languages_follow_the_cookie_then_accept_language() {
        let mut h = HeaderMap::new();
        assert_eq!(Tr::from_headers(&h).lang(), "en");
        h.insert("accept-language", HeaderValue::from_static("fr-CH, es-MX;q=0.8, en;q=0.5"));
        assert_eq!(Tr::from_headers(&h).lang(), "es");
        h.insert("cookie", HeaderValue::from_static("a=b; iaso_lang=ar"));
        let ar = Tr::from_headers(&h);
        assert_eq!((ar.lang(), ar.dir()), ("ar", "rtl"));
        h.insert("cookie", HeaderValue::from_static("iaso_lang=xx"));
        assert_eq!(Tr::from_headers(&h).lang(), "es", "an unknown cookie value is ignored");
    }

    #[test]
    fn plurals_and_fallback() {
        let en = Tr::ENGLISH;
        assert_eq!(en.t1("login-locked", "minutes", 1_i64), "Too many attempts. Try again in one minute.");
        assert_eq!(en.t1("login-locked", "minutes", 5_i64), "Too many attempts. Try again in 5 minutes.");
        assert_eq!(en.t("no-such-message"), "[no-such-message]");
        let es = Tr::named("es").expect("es");
        assert_ne!(es.t("login-title"), en.t("login-title"));
    }
}
