//! `custodia-policy`: resource-owner policies in Cedar — schema, sharing templates, validation,
//! evaluation and missing-claims analysis (UMA 2.0 Grant §3.3 decisions).
//!
//! Empty until the UMA grant issue: this crate is the only one that will import `cedar_policy`, and
//! it will know no HTTP and no SQL.
