//! The hub over real HTTP and WebSocket on loopback: one test binary, one module per area.
//! Every response any test sees is checked against `docs/openapi.json`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod common;
mod delta;
mod malformed;
mod openapi;
mod push;
mod rest;
mod scope;
mod seed;
mod tenancy;
mod ws;
