//! Empty: this crate only pins the oracle's dependencies.
