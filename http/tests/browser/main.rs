//! The web console in a real headless Chromium (Debian's `chromium` + `chromium-driver`,
//! installed by `scripts/services.d/50-chromium.sh`), driven over WebDriver with fantoccini.
//!
//! Each test starts its own platform on free ports in this process and its own Chromium with
//! a fresh profile. Two kinds of test:
//! - against `troupe up` (the real broker and services): the buttons, health, and whatever
//!   the services running in this build provide;
//! - against a scripted stand-in for the broker and the mail catcher (`fake`), which pins down
//!   what the logs and mail views do with the contract's replies: filters, paging, following a
//!   request id, escaping of hostile text.
//!
//! Screenshots of every view go to `target/screenshots/`; with `UPDATE_SCREENSHOTS=1` they are
//! also copied to `docs/screenshots/`.

// Tests read top to bottom as one story; the line limit is for the product code.
#![allow(clippy::too_many_lines)]

mod charts;
mod console;
mod fake;
mod helpers;
mod live;
mod trace;
mod views;
