//! Actor messages: the contract between services.
//!
//! The broker holds `Recipient<M>` handles for these; in one process they reach the service
//! actors, in split mode proxy actors that forward them over the network. Every reply is a
//! `Result<_, ServiceError>` so callers see the same errors either way.
//!
//! One module per service: [`auth`], [`logs`], [`mail`], [`events`].

pub mod auth;
pub mod events;
pub mod logs;
pub mod mail;

pub use auth::*;
pub use events::*;
pub use logs::*;
pub use mail::*;
