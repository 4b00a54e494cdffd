//! `#[derive(Cached)]` for [sea-orm-cache](https://docs.rs/sea-orm-cache): an entity's cache
//! configuration, written where the entity is defined.
//!
//! Use it through `sea_orm_cache::Cached`; this crate is an implementation detail.

use sea_orm_cache_parse as parse;

use std::time::Duration;

use proc_macro::TokenStream;
use proc_macro2::{Literal, Span, TokenStream as TokenStream2};
use quote::quote;
use syn::meta::ParseNestedMeta;
use syn::{Data, DeriveInput, Ident, Lit, LitInt, LitStr, Path, Result};

/// The keys `#[cache(...)]` accepts.
const KEYS: [&str; 13] = [
    "policy",
    "ttl",
    "ttl_jitter",
    "capacity",
    "negative_ttl",
    "stale_if_error",
    "write_behind",
    "staleness_budget",
    "on_over_budget",
    "capture",
    "sample_rate",
    "max_samples_per_sec",
    "version_column",
];

/// The keys `write_behind(...)` accepts.
const WRITE_BEHIND_KEYS: [&str; 3] = ["batch", "max_delay", "max_pending"];

/// Gives an entity its default cache configuration: implements
/// `sea_orm_cache::CachedEntity` for the `Entity` that `DeriveEntityModel` generates next to
/// this `Model`. Without it, `cache.repository::<Entity>()` does not compile.
///
/// ```rust,ignore
/// #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Cached)]
/// #[sea_orm(table_name = "users")]
/// #[cache(policy = "write_through", ttl = "5m", ttl_jitter = "10%", capacity = 10_000, negative_ttl = "30s")]
/// pub struct Model {
///     #[sea_orm(primary_key)]
///     pub id: i64,
///     pub name: String,
/// }
/// ```
///
/// Every setting is optional; one left out keeps its `CacheConfig::default()` value, and
/// `#[derive(Cached)]` alone gives the defaults.
///
/// | Setting | Value | Default |
/// |---|---|---|
/// | `policy` | `"cache_aside"`, `"read_through"`, `"write_through"` or `"write_behind"` | `"read_through"` |
/// | `ttl` | a duration: `"50ms"`, `"30s"`, `"5m"`, `"1h30m"` (units `ns us ms s m h d`) | `"5m"` |
/// | `ttl_jitter` | `"10%"`, or a fraction such as `0.1`; at most 100% | `"10%"` |
/// | `capacity` | entries, at least 1 | `10_000` |
/// | `negative_ttl` | a duration; caches "no such row" | off |
/// | `stale_if_error` | a duration; serves an expired entry while loads fail | off |
/// | `write_behind(batch = .., max_delay = "..", max_pending = ..)` | flusher settings, with `policy = "write_behind"` only | `500`, `"50ms"`, `100_000` |
/// | `staleness_budget` | the inconsistency budget: `"0.01%"`, or a fraction such as `0.0001` | none |
/// | `on_over_budget` | `"warn"` or `"shorten_ttl"` | `"warn"` |
/// | `capture` | `"layer"` or `"triggers"`: who logs the entity's changes for other instances (triggers also see writes that bypass the layer) | `"layer"` |
/// | `sample_rate` | share of hits the staleness sampler re-reads: `"0.1%"` or `0.001`; `0` turns it off | `"0.1%"` |
/// | `max_samples_per_sec` | ceiling on the sampler's reads, at least 1 | `100` |
/// | `version_column` | compare this column only when sampling, instead of the whole row | the whole row |
///
/// A mistake is a compile error pointing at it: an unknown setting, a malformed duration, an
/// unknown policy (the nearest name is suggested), `write_behind(..)` under another policy, a
/// zero capacity, batch or bound, a jitter over 100%, or a setting given twice.
///
/// The builder still has the last word: `CacheLayer::builder(db).cached::<E>(|c| ..)` starts
/// from this configuration and may change any of it.
#[proc_macro_derive(Cached, attributes(cache))]
pub fn derive_cached(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

fn expand(input: &DeriveInput) -> Result<TokenStream2> {
    if !matches!(input.data, Data::Struct(_)) {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "`#[derive(Cached)]` goes on the entity's `Model` struct, next to `DeriveEntityModel`",
        ));
    }
    let mut settings = Settings::default();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("cache")) {
        attr.parse_nested_meta(|meta| settings.parse(meta))?;
    }
    settings.check()?;
    let calls = settings.setter_calls();
    let entity = Ident::new("Entity", input.ident.span());
    let model = &input.ident;
    // A declared write-behind entity needs its outbox codec: a serde bound the compiler checks
    // here. Any other entity has none (the builder's `write_behind` adds it with the bound).
    let codec = if settings.declares_write_behind() {
        quote! {
            fn model_codec() -> ::core::option::Option<::sea_orm_cache::ModelCodec<#model>> {
                ::core::option::Option::Some(::sea_orm_cache::ModelCodec::json())
            }
        }
    } else {
        quote! {}
    };
    Ok(quote! {
        #[automatically_derived]
        impl ::sea_orm_cache::CachedEntity for #entity {
            fn cache_config() -> ::sea_orm_cache::CacheConfig {
                ::sea_orm_cache::CacheConfig::default() #calls
            }

            #codec
        }
    })
}

/// What `#[cache(...)]` set, each with the span of its key for later errors.
#[derive(Default)]
struct Settings {
    policy: Option<(usize, Span)>,
    ttl: Option<Duration>,
    ttl_jitter: Option<f64>,
    capacity: Option<LitInt>,
    negative_ttl: Option<Duration>,
    stale_if_error: Option<Duration>,
    write_behind: Option<(WriteBehind, Span)>,
    staleness_budget: Option<f64>,
    on_over_budget: Option<usize>,
    capture: Option<usize>,
    sample_rate: Option<f64>,
    max_samples_per_sec: Option<LitInt>,
    version_column: Option<LitStr>,
}

/// What `write_behind(...)` set.
#[derive(Default)]
struct WriteBehind {
    batch: Option<LitInt>,
    max_delay: Option<Duration>,
    max_pending: Option<LitInt>,
}

impl Settings {
    fn parse(&mut self, meta: ParseNestedMeta<'_>) -> Result<()> {
        let key = key_name(&meta.path);
        match key.as_str() {
            "policy" => {
                let lit = string(&meta, "a policy name such as \"read_through\"")?;
                let index = parse::parse_policy(&lit.value()).map_err(|e| error(&lit, e))?;
                set(&mut self.policy, (index, lit.span()), &meta.path)
            }
            "ttl" => set(&mut self.ttl, duration(&meta)?, &meta.path),
            "negative_ttl" => set(&mut self.negative_ttl, duration(&meta)?, &meta.path),
            "stale_if_error" => set(&mut self.stale_if_error, duration(&meta)?, &meta.path),
            "ttl_jitter" => set(&mut self.ttl_jitter, jitter(&meta)?, &meta.path),
            "capacity" => set(&mut self.capacity, positive(&meta, "capacity")?, &meta.path),
            "staleness_budget" => set(
                &mut self.staleness_budget,
                fraction(&meta, "staleness_budget")?,
                &meta.path,
            ),
            "sample_rate" => set(
                &mut self.sample_rate,
                fraction(&meta, "sample_rate")?,
                &meta.path,
            ),
            "on_over_budget" => {
                let lit = string(&meta, "\"warn\" or \"shorten_ttl\"")?;
                let index = parse::parse_over_budget(&lit.value()).map_err(|e| error(&lit, e))?;
                set(&mut self.on_over_budget, index, &meta.path)
            }
            "capture" => {
                let lit = string(&meta, "\"layer\" or \"triggers\"")?;
                let index = parse::parse_capture(&lit.value()).map_err(|e| error(&lit, e))?;
                set(&mut self.capture, index, &meta.path)
            }
            "max_samples_per_sec" => set(
                &mut self.max_samples_per_sec,
                positive(&meta, "max_samples_per_sec")?,
                &meta.path,
            ),
            "version_column" => {
                let lit = string(&meta, "a column name such as \"version\"")?;
                set(&mut self.version_column, lit, &meta.path)
            }
            "write_behind" => {
                if !meta.input.peek(syn::token::Paren) {
                    return Err(meta.error(
                        "expected `write_behind(batch = 500, max_delay = \"50ms\", max_pending = 100_000)`",
                    ));
                }
                let mut write_behind = WriteBehind::default();
                meta.parse_nested_meta(|inner| write_behind.parse(inner))?;
                set(
                    &mut self.write_behind,
                    (
                        write_behind,
                        meta.path
                            .get_ident()
                            .map_or_else(Span::call_site, Ident::span),
                    ),
                    &meta.path,
                )
            }
            _ => Err(unknown(&meta.path, &key, &KEYS, "#[cache(...)] setting")),
        }
    }

    /// Whether `policy = "write_behind"` is declared.
    fn declares_write_behind(&self) -> bool {
        self.policy
            .is_some_and(|(index, _)| parse::POLICIES[index] == parse::POLICIES[3])
    }

    /// Checks across settings: `write_behind(...)` needs the write-behind policy.
    fn check(&self) -> Result<()> {
        let Some((_, span)) = &self.write_behind else {
            return Ok(());
        };
        let write_behind = parse::POLICIES[3];
        let message = match self.policy {
            Some((index, _)) if parse::POLICIES[index] == write_behind => return Ok(()),
            Some((index, _)) => format!(
                "`write_behind(...)` settings apply to `policy = \"write_behind\"` only, but this entity's policy is `{}`",
                parse::POLICIES[index]
            ),
            None => "`write_behind(...)` settings apply to `policy = \"write_behind\"` only, \
                     and the policy is not set (the default is `read_through`); add `policy = \"write_behind\"`"
                .to_owned(),
        };
        Err(syn::Error::new(*span, message))
    }

    /// `.policy(..).ttl(..)...` for the settings given, applied to `CacheConfig::default()`.
    fn setter_calls(&self) -> TokenStream2 {
        let mut calls = TokenStream2::new();
        if let Some((index, _)) = self.policy {
            let variant = Ident::new(
                ["CacheAside", "ReadThrough", "WriteThrough", "WriteBehind"][index],
                Span::call_site(),
            );
            calls.extend(quote!(.policy(::sea_orm_cache::Policy::#variant)));
        }
        if let Some(ttl) = self.ttl {
            let ttl = duration_tokens(ttl);
            calls.extend(quote!(.ttl(#ttl)));
        }
        if let Some(jitter) = self.ttl_jitter {
            let jitter = Literal::f64_suffixed(jitter);
            calls.extend(quote!(.ttl_jitter(#jitter)));
        }
        if let Some(capacity) = &self.capacity {
            let capacity = usize_tokens(capacity);
            calls.extend(quote!(.capacity(#capacity)));
        }
        if let Some(ttl) = self.negative_ttl {
            let ttl = duration_tokens(ttl);
            calls.extend(quote!(.negative_ttl(::core::option::Option::Some(#ttl))));
        }
        if let Some(window) = self.stale_if_error {
            let window = duration_tokens(window);
            calls.extend(quote!(.stale_if_error(::core::option::Option::Some(#window))));
        }
        if let Some(budget) = self.staleness_budget {
            let budget = Literal::f64_suffixed(budget);
            calls.extend(quote!(.staleness_budget(::core::option::Option::Some(#budget))));
        }
        if let Some(index) = self.on_over_budget {
            let variant = Ident::new(["Warn", "ShortenTtl"][index], Span::call_site());
            calls.extend(quote!(.on_over_budget(::sea_orm_cache::OverBudget::#variant)));
        }
        if let Some(index) = self.capture {
            let variant = Ident::new(["Layer", "Triggers"][index], Span::call_site());
            calls.extend(quote!(.capture(::sea_orm_cache::Capture::#variant)));
        }
        let mut sampler = TokenStream2::new();
        if let Some(rate) = self.sample_rate {
            let rate = Literal::f64_suffixed(rate);
            sampler.extend(quote!(.sample_rate(#rate)));
        }
        if let Some(per_sec) = &self.max_samples_per_sec {
            let mut out = Literal::u64_unsuffixed(per_sec.base10_parse().unwrap_or(u64::MAX));
            out.set_span(per_sec.span());
            sampler.extend(quote!(.max_samples_per_sec(#out)));
        }
        if let Some(column) = &self.version_column {
            sampler.extend(quote!(.version_column(::core::option::Option::Some(
                ::std::string::String::from(#column)
            ))));
        }
        if !sampler.is_empty() {
            // Over the sampler settings the budget setters above already made.
            calls = quote!(#calls .map_freshness(|f| f #sampler));
        }
        if let Some((write_behind, _)) = &self.write_behind {
            let mut inner = TokenStream2::new();
            if let Some(batch) = &write_behind.batch {
                let batch = usize_tokens(batch);
                inner.extend(quote!(.batch(#batch)));
            }
            if let Some(delay) = write_behind.max_delay {
                let delay = duration_tokens(delay);
                inner.extend(quote!(.max_delay(#delay)));
            }
            if let Some(max_pending) = &write_behind.max_pending {
                let max_pending = usize_tokens(max_pending);
                inner.extend(quote!(.max_pending(#max_pending)));
            }
            calls.extend(
                quote!(.write_behind(::sea_orm_cache::WriteBehindConfig::default() #inner)),
            );
        }
        calls
    }
}

impl WriteBehind {
    fn parse(&mut self, meta: ParseNestedMeta<'_>) -> Result<()> {
        let key = key_name(&meta.path);
        match key.as_str() {
            "batch" => set(&mut self.batch, positive(&meta, "batch")?, &meta.path),
            "max_delay" => set(&mut self.max_delay, duration(&meta)?, &meta.path),
            "max_pending" => set(
                &mut self.max_pending,
                positive(&meta, "max_pending")?,
                &meta.path,
            ),
            _ => Err(unknown(
                &meta.path,
                &key,
                &WRITE_BEHIND_KEYS,
                "write_behind(...) setting",
            )),
        }
    }
}

/// The key as written (`a::b` for a path, which no setting is).
fn key_name(path: &Path) -> String {
    quote!(#path).to_string().replace(' ', "")
}

/// Stores a setting, refusing a second one.
fn set<T>(slot: &mut Option<T>, value: T, path: &Path) -> Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new_spanned(
            path,
            format!("duplicate cache setting `{}`", key_name(path)),
        ));
    }
    *slot = Some(value);
    Ok(())
}

/// The error for an unknown key, with the nearest known one suggested.
fn unknown(path: &Path, key: &str, known: &[&str], what: &str) -> syn::Error {
    let hint = match parse::suggest(key, known) {
        Some(near) => format!("; did you mean `{near}`?"),
        None => String::new(),
    };
    syn::Error::new_spanned(
        path,
        format!(
            "unknown {what} `{key}`{hint} (expected one of: {})",
            known.join(", ")
        ),
    )
}

fn error(spanned: impl quote::ToTokens, message: String) -> syn::Error {
    syn::Error::new_spanned(spanned, message)
}

/// `= "..."`.
fn string(meta: &ParseNestedMeta<'_>, expected: &str) -> Result<LitStr> {
    let key = key_name(&meta.path);
    match meta.value()?.parse::<Lit>()? {
        Lit::Str(lit) => Ok(lit),
        other => Err(error(
            other,
            format!("`{key}` expects a string: {expected}"),
        )),
    }
}

/// `= "5m"`.
fn duration(meta: &ParseNestedMeta<'_>) -> Result<Duration> {
    let lit = string(meta, "a duration such as \"30s\", \"5m\" or \"1h\"")?;
    parse::parse_duration(&lit.value()).map_err(|e| error(&lit, e))
}

/// `= "10%"` or `= 0.1`.
fn jitter(meta: &ParseNestedMeta<'_>) -> Result<f64> {
    let lit = meta.value()?.parse::<Lit>()?;
    let parsed = match &lit {
        Lit::Str(s) => parse::parse_jitter(&s.value()),
        Lit::Float(f) => parse::check_jitter(f.base10_parse()?),
        Lit::Int(i) => parse::check_jitter(i.base10_parse()?),
        _ => Err(
            "`ttl_jitter` expects a percentage such as \"10%\", or a fraction such as 0.1"
                .to_owned(),
        ),
    };
    parsed.map_err(|e| error(&lit, e))
}

/// `= "0.01%"` or `= 0.0001`, within 0% to 100%.
fn fraction(meta: &ParseNestedMeta<'_>, key: &str) -> Result<f64> {
    let lit = meta.value()?.parse::<Lit>()?;
    let parsed = match &lit {
        Lit::Str(s) => parse::parse_fraction(key, &s.value()),
        Lit::Float(f) => parse::check_fraction(key, f.base10_parse()?),
        Lit::Int(i) => parse::check_fraction(key, i.base10_parse()?),
        _ => Err(format!(
            "`{key}` expects a percentage such as \"0.1%\", or a fraction such as 0.001"
        )),
    };
    parsed.map_err(|e| error(&lit, e))
}

/// `= 10_000`, at least 1.
fn positive(meta: &ParseNestedMeta<'_>, key: &str) -> Result<LitInt> {
    let lit = match meta.value()?.parse::<Lit>()? {
        Lit::Int(lit) => lit,
        other => {
            return Err(error(
                other,
                format!("`{key}` expects a whole number such as 10_000"),
            ));
        }
    };
    if lit.base10_parse::<u64>()? == 0 {
        return Err(error(&lit, format!("`{key}` must be at least 1")));
    }
    Ok(lit)
}

fn duration_tokens(duration: Duration) -> TokenStream2 {
    let secs = Literal::u64_suffixed(duration.as_secs());
    let nanos = Literal::u32_suffixed(duration.subsec_nanos());
    quote!(::core::time::Duration::new(#secs, #nanos))
}

/// The literal, unsuffixed so that it is read as a `usize`, with its span kept so that a value
/// too large for the target is reported at it.
fn usize_tokens(lit: &LitInt) -> TokenStream2 {
    let mut out = Literal::u64_unsuffixed(lit.base10_parse().unwrap_or(u64::MAX));
    out.set_span(lit.span());
    quote!(#out)
}
