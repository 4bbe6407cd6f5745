//! The web console on FRONTEND_PORT.

use troupe_core::config::{CommonSettings, FrontendSettings};
use troupe_core::health::Readiness;

use super::{Service, bind, options};
use crate::api::serve;
use crate::platform::Part;

/// Start the console's server.
pub fn local(
    common: &CommonSettings,
    settings: &FrontendSettings,
    workers: usize,
) -> anyhow::Result<Service<()>> {
    let listener = bind(common.bind_address, settings.frontend_port, "FRONTEND_PORT")?;
    let routes = troupe_frontend::routes(troupe_frontend::ConsoleUrls {
        broker: settings.broker_url.to_string(),
        catcher: settings.catcher_url.to_string(),
    });
    let server = serve("frontend", listener, options(common, &Readiness::default(), &[], workers), routes)?;
    Ok(Service::new("frontend", (), vec![Part::Http(server)]))
}
