//! Operation generators and sequential models.
//!
//! The models implement [`checker::Model`] as pure functions:
//! - [`CasRegister`] (`cas-register`): read, write and cas on a register per key that
//!   starts absent;
//! - [`Kv`] (`kv`): get, put and append on a string per key that starts empty.

#![warn(missing_docs)]

pub mod generator;
pub mod kv;
pub mod register;

pub use kv::{Kv, KvOp};
pub use register::{CasRegister, RegisterOp};
