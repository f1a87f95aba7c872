//! API tokens end to end (issue 14): the gateway with `basic_auth=true` in front of a real
//! provider-docker with real function containers and a real NATS JetStream server, whose
//! `ferry-tokens` bucket holds the tokens.
//!
//! One file per topic: `matrix` (each scope against representative routes: `2xx`, `401`,
//! `403`), `namespaces` (a token limited to a namespace, however the request names another),
//! `labelled` (`com.ferry.auth=required` functions, ferry credentials kept from functions and
//! the queue), `lifecycle` (create, refuse, list, hashed storage, a second gateway process,
//! revocation, no token in logs, auth off) and `bypass` (path, header and namespace tricks in
//! raw HTTP); shared helpers in `common`.

// A test reads as one scenario; the 80-line limit is for the code under test.
#![allow(clippy::too_many_lines)]

mod bypass;
mod common;
mod labelled;
mod lifecycle;
mod matrix;
mod namespaces;
