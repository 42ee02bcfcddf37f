//! The invariants the fuzz targets check, shared by them: each function takes one input, runs
//! it through the code under test and panics (which libFuzzer reports as a crash) when a property
//! that must hold for every input does not. "Does not panic" is the least of them; where it is
//! cheap, parsed values are re-encoded and parsed again, and matching is compared with a
//! reference implementation.
//!
//! # Layout
//! - [`frames`]: client frames as the gateway reads them, and the per-op checks that follow.
//! - [`names`]: channel names, app ids, service names, capability patterns and path prefixes.
//! - [`claims`]: JWT claims, and tokens verified as the gateway does.

pub mod claims;
pub mod frames;
pub mod names;
