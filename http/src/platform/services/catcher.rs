//! The built-in mail catcher: its store, its SMTP server (127.0.0.1 unless CATCHER_SMTP_ADDRESS says otherwise) and its JSON API,
//! where the console's Mail view reads what was caught.

use troupe_actors::catcher::{self, CatcherStore};
use troupe_core::config::{CatcherSettings, CommonSettings};
use troupe_core::health::Readiness;

use super::{Service, bind, options};
use crate::api::serve;
use crate::catcher::CatcherState;
use crate::platform::Part;

/// Start the catcher; its handle is the SMTP port it listens on.
pub fn local(
    common: &CommonSettings,
    settings: &CatcherSettings,
    workers: usize,
) -> anyhow::Result<Service<u16>> {
    let store = CatcherStore::start(settings.catcher_data_dir.join("catcher")).map_err(anyhow::Error::msg)?;
    let smtp = bind(settings.catcher_smtp_address, settings.catcher_smtp_port, "CATCHER_SMTP_PORT")?;
    let smtp_port = smtp.local_addr()?.port();
    catcher::start_smtp(smtp, store.clone(), None).map_err(anyhow::Error::msg)?;
    let listener = bind(common.bind_address, settings.catcher_http_port, "CATCHER_HTTP_PORT")?;
    let opts = options(common, &Readiness::default(), &settings.catcher_cors_allowed_origins, workers);
    let server = serve("catcher", listener, opts, crate::catcher::routes(CatcherState { store }))?;
    tracing::info!(smtp_port, "mail catcher listening for SMTP");
    Ok(Service::new("catcher", smtp_port, vec![Part::Http(server)]))
}
