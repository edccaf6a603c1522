//! Barcode scanners: firmware profiles, the pure frame decoders (plain text and Zebra
//! SSI), the serial transport with hot-plug, and the setup sheet.
//!
//! The scanner layer delivers decoded code *texts* and discards; it knows nothing of
//! coupons and never decides. The daemon feeds [`Event::Frame`] texts to the decision and
//! answers with [`Feedback`].

pub mod decoder;
pub mod profile;
pub mod sheet;
pub mod ssi;
pub mod transport;

pub use decoder::{Decoder, DiscardReason, Event};
pub use profile::Profile;

/// What the host tells the scanner after a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feedback {
    Good,
    Bad,
}
