//! The WaaS control-plane: owns tenants, apps, API keys and JWT keys, and tells gateways about
//! them.
//!
//! # Layout
//! - [`store`]: the **Store seam** (`Store` trait) with its two implementations, SQLite
//!   (embedded) and PostgreSQL (cluster), and the records they keep.

pub mod store;
