//! Per-client rate limits at the HTTP edge: who the client is (the peer address, or the
//! `X-Forwarded-For` entry a trusted proxy added), and the allowances of the broker's logins
//! (`LOGIN_RATE_PER_CLIENT`) and requests (`REQUEST_RATE_PER_CLIENT`) per client. (Auth's own
//! port is behind the broker in split mode, where every client would look like the broker;
//! it limits per e-mail instead.)
//! Over a limit the request is answered 429 with `Retry-After` before it does anything.

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::HttpRequest;
use troupe_core::ServiceError;
use troupe_core::config::CommonSettings;
use troupe_core::limits::{KeyedLimit, RateSpec, retry_after_secs};

use crate::api::ApiError;

/// The allowances of one server, shared by its workers; cheap to clone.
#[derive(Clone, Debug)]
pub struct ClientLimits {
    logins: KeyedLimit<IpAddr>,
    requests: KeyedLimit<IpAddr>,
    trusted_proxies: Arc<Vec<IpAddr>>,
}

impl Default for ClientLimits {
    /// No limits (tests that are not about them).
    fn default() -> Self {
        Self::new(RateSpec::OFF, RateSpec::OFF, Vec::new())
    }
}

impl ClientLimits {
    /// Limits as configured.
    pub fn new(logins: RateSpec, requests: RateSpec, trusted_proxies: Vec<IpAddr>) -> Self {
        Self {
            logins: KeyedLimit::new(logins),
            requests: KeyedLimit::new(requests),
            trusted_proxies: Arc::new(trusted_proxies),
        }
    }

    /// Limits from the process's settings.
    pub fn from_settings(common: &CommonSettings) -> Self {
        Self::new(
            common.login_rate_per_client,
            common.request_rate_per_client,
            common.trusted_proxies.clone(),
        )
    }

    /// The client of `req`: the peer, or, when the peer is a trusted proxy, the last
    /// `X-Forwarded-For` address that is not itself a trusted proxy.
    pub fn client(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        if !self.trusted_proxies.contains(&peer) {
            return Some(peer);
        }
        let forwarded = req.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok());
        let hops: Vec<IpAddr> =
            forwarded.flat_map(|v| v.split(',')).filter_map(|hop| hop.trim().parse().ok()).collect();
        Some(hops.into_iter().rev().find(|hop| !self.trusted_proxies.contains(hop)).unwrap_or(peer))
    }

    /// Take one login attempt from the client's allowance.
    pub fn login(&self, req: &HttpRequest) -> Result<(), ApiError> {
        self.check(&self.logins, req)
    }

    /// Take one request from the client's allowance.
    pub fn request(&self, req: &HttpRequest) -> Result<(), ApiError> {
        self.check(&self.requests, req)
    }

    /// Nothing at all (not even who the client is) when `limit` is off.
    fn check(&self, limit: &KeyedLimit<IpAddr>, req: &HttpRequest) -> Result<(), ApiError> {
        if !limit.is_on() {
            return Ok(());
        }
        let Some(client) = self.client(req) else { return Ok(()) };
        limit.check(&client).map_err(|wait| {
            tracing::debug!(%client, retry_in = ?wait, "client over its rate limit");
            ApiError(ServiceError::RateLimited(retry_after_secs(wait)))
        })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let proxy: IpAddr = [10, 0, 0, 1].into();
        let limits = ClientLimits::new(RateSpec::OFF, RateSpec::OFF, vec![proxy]);
        let via = |peer: [u8; 4], xff: &str| {
            TestRequest::default()
                .peer_addr((peer, 4000).into())
                .insert_header(("x-forwarded-for", xff))
                .to_http_request()
        };
        let spoofed = via([203, 0, 113, 9], "1.2.3.4");
        assert_eq!(limits.client(&spoofed), Some([203, 0, 113, 9].into()), "an untrusted peer is the client");
        let proxied = via([10, 0, 0, 1], "1.2.3.4, 198.51.100.7");
        assert_eq!(limits.client(&proxied), Some([198, 51, 100, 7].into()), "the hop the proxy saw");
    }
}
