//! redeemd: offline redemption of signed CP1 coupon codes at a checkout terminal.
//!
//! The path a code takes: [`coupon`] decodes and (with a key from the [`ruleset`])
//! verifies it, [`decision::decide`] judges it against the rule set and a view of the
//! [`store`], and the store commits an accepted redemption with its outbox event before
//! anyone is told. [`cli`] is the command line over all of it. See `ARCHITECTURE.md`.

pub mod advice;
pub mod agent;
pub mod assets;
pub mod backup;
pub mod base45;
pub mod cbor;
pub mod claim;
pub mod cli;
pub mod clock;
pub mod config;
pub mod coupon;
pub mod daemon;
pub mod decision;
pub mod demo;
pub mod doctor;
pub mod enrollment;
pub mod events;
pub mod hub;
pub mod issuer;
pub mod jws;
pub mod keys;
pub mod kiosk;
pub mod local_daemon;
pub mod messages;
pub mod money;
pub mod record;
pub mod report;
pub mod revoked;
pub mod ruleset;
pub mod sandbox;
pub mod scanner;
pub mod secret;
pub mod store;
pub mod storeday;
pub mod sync;
pub mod upstream;
