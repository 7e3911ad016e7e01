//! The services this build knows: their default hosts, where their credentials come from, and their streams.

pub mod hubspot;
pub mod rest;
pub mod salesforce;
pub mod stripe;
pub mod zendesk;

use std::sync::Arc;

use connector_core::error::{Error, Result};
use url::Url;

use crate::config::{AuthSettings, SaasConfig, SecretSource};
use crate::stream::StreamReader;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Stripe,
    Hubspot,
    Zendesk,
    Salesforce,
    Rest,
}

impl Service {
    pub fn from_kind(kind: &str) -> Option<Self> {
        Some(match kind {
            stripe::KIND => Service::Stripe,
            hubspot::KIND => Service::Hubspot,
            zendesk::KIND => Service::Zendesk,
            salesforce::KIND => Service::Salesforce,
            rest::KIND => Service::Rest,
            _ => return None,
        })
    }

    pub fn kind(self) -> &'static str {
        match self {
            Service::Stripe => stripe::KIND,
            Service::Hubspot => hubspot::KIND,
            Service::Zendesk => zendesk::KIND,
            Service::Salesforce => salesforce::KIND,
            Service::Rest => rest::KIND,
        }
    }

    pub fn default_base_url(
        self,
        subdomain: Option<&str>,
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> Option<String> {
        match self {
            Service::Stripe => Some("https://api.stripe.com/".into()),
            Service::Hubspot => Some("https://api.hubapi.com/".into()),
            Service::Zendesk => subdomain
                .map(str::to_string)
                .or_else(|| environment("ZENDESK_SUBDOMAIN"))
                .map(|subdomain| format!("https://{subdomain}.zendesk.com/")),
            // Every org has its own host (My Domain); there is no shared API host to default to.
            Service::Salesforce => environment("SALESFORCE_INSTANCE_URL").filter(|url| !url.is_empty()),
            Service::Rest => None,
        }
    }

    /// What else gives the base URL when the profile has none, for the error saying it is missing.
    pub fn base_url_alternatives(self) -> &'static str {
        match self {
            Service::Zendesk => "`subdomain` (or ZENDESK_SUBDOMAIN)",
            Service::Salesforce => {
                "SALESFORCE_INSTANCE_URL to the org's My Domain URL (https://acme.my.salesforce.com; Setup > My Domain)"
            }
            _ => "the service's environment variable",
        }
    }

    /// The credentials the service's environment variables name, when the profile has no `auth`.
    pub fn auth_from_environment(
        self,
        base_url: &Url,
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<AuthSettings>> {
        let variable = |name: &str| environment(name).filter(|value| !value.is_empty());
        let secret = |name: &str| SecretSource::Environment { env: name.to_string() };
        Ok(match self {
            Service::Stripe => {
                variable("STRIPE_API_KEY").map(|_| AuthSettings::Bearer { token: secret("STRIPE_API_KEY") })
            }
            Service::Hubspot => {
                if variable("HUBSPOT_ACCESS_TOKEN").is_some() {
                    Some(AuthSettings::Bearer { token: secret("HUBSPOT_ACCESS_TOKEN") })
                } else if let (Some(client_id), Some(_), Some(_)) = (
                    variable("HUBSPOT_CLIENT_ID"),
                    variable("HUBSPOT_CLIENT_SECRET"),
                    variable("HUBSPOT_REFRESH_TOKEN"),
                ) {
                    Some(AuthSettings::Oauth2RefreshToken {
                        token_url: base_url.join("oauth/v1/token").map(String::from).unwrap_or_default(),
                        client_id,
                        client_secret: secret("HUBSPOT_CLIENT_SECRET"),
                        refresh_token: secret("HUBSPOT_REFRESH_TOKEN"),
                        state_file: variable("HUBSPOT_TOKEN_STATE_FILE").map(Into::into),
                    })
                } else {
                    None
                }
            }
            Service::Zendesk => {
                if variable("ZENDESK_OAUTH_TOKEN").is_some() {
                    Some(AuthSettings::Bearer { token: secret("ZENDESK_OAUTH_TOKEN") })
                } else {
                    match (variable("ZENDESK_EMAIL"), variable("ZENDESK_API_TOKEN")) {
                        (Some(email), Some(_)) => Some(AuthSettings::Basic {
                            username: format!("{email}/token"),
                            password: secret("ZENDESK_API_TOKEN"),
                        }),
                        (None, Some(_)) => {
                            return Err(Error::config(
                                "ZENDESK_API_TOKEN is set but ZENDESK_EMAIL is not; export both",
                            ));
                        }
                        _ => None,
                    }
                }
            }
            Service::Salesforce => salesforce_auth(base_url, &variable)?,
            Service::Rest => None,
        })
    }

    pub fn needs_credentials(self) -> bool {
        self != Service::Rest
    }

    pub fn credential_variables(self) -> &'static str {
        match self {
            Service::Stripe => "STRIPE_API_KEY",
            Service::Hubspot => {
                "HUBSPOT_ACCESS_TOKEN (or HUBSPOT_CLIENT_ID, HUBSPOT_CLIENT_SECRET and HUBSPOT_REFRESH_TOKEN)"
            }
            Service::Zendesk => "ZENDESK_EMAIL and ZENDESK_API_TOKEN (or ZENDESK_OAUTH_TOKEN)",
            Service::Salesforce => {
                "SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET (plus SALESFORCE_REFRESH_TOKEN for the \
                 refresh-token flow), or SALESFORCE_ACCESS_TOKEN"
            }
            Service::Rest => "an `auth` table",
        }
    }

    pub fn streams(self, config: &SaasConfig) -> Result<Vec<Arc<dyn StreamReader>>> {
        config
            .streams
            .iter()
            .map(|name| match self {
                Service::Stripe => stripe::stream(name),
                Service::Hubspot => hubspot::stream(name, config),
                Service::Zendesk => zendesk::stream(name),
                Service::Salesforce => salesforce::stream(name, config),
                Service::Rest => rest::stream(name, config),
            })
            .collect()
    }
}

/// Salesforce's connected app: the client-credentials flow with `SALESFORCE_CLIENT_ID` and
/// `SALESFORCE_CLIENT_SECRET`, the refresh-token flow when `SALESFORCE_REFRESH_TOKEN` is set too; otherwise a
/// session from `SALESFORCE_ACCESS_TOKEN` (which cannot be renewed when it expires).
fn salesforce_auth(base_url: &Url, variable: &dyn Fn(&str) -> Option<String>) -> Result<Option<AuthSettings>> {
    let secret = |name: &str| SecretSource::Environment { env: name.to_string() };
    let token_url = base_url.join("services/oauth2/token").map(String::from).unwrap_or_default();
    Ok(match (variable("SALESFORCE_CLIENT_ID"), variable("SALESFORCE_CLIENT_SECRET")) {
        (Some(client_id), Some(_)) => Some(match variable("SALESFORCE_REFRESH_TOKEN") {
            Some(_) => AuthSettings::Oauth2RefreshToken {
                token_url,
                client_id,
                client_secret: secret("SALESFORCE_CLIENT_SECRET"),
                refresh_token: secret("SALESFORCE_REFRESH_TOKEN"),
                state_file: variable("SALESFORCE_TOKEN_STATE_FILE").map(Into::into),
            },
            None => AuthSettings::Oauth2ClientCredentials {
                token_url,
                client_id,
                client_secret: secret("SALESFORCE_CLIENT_SECRET"),
                scopes: Vec::new(),
            },
        }),
        (Some(_), None) => {
            return Err(Error::config(
                "SALESFORCE_CLIENT_ID is set but SALESFORCE_CLIENT_SECRET is not; export both (the connected app's \
                 consumer key and secret)",
            ));
        }
        (None, Some(_)) => {
            return Err(Error::config(
                "SALESFORCE_CLIENT_SECRET is set but SALESFORCE_CLIENT_ID is not; export both (the connected app's \
                 consumer key and secret)",
            ));
        }
        (None, None) => variable("SALESFORCE_ACCESS_TOKEN")
            .map(|_| AuthSettings::Bearer { token: secret("SALESFORCE_ACCESS_TOKEN") }),
    })
}

/// The error for a stream name a service does not have.
pub fn unknown_stream(service: &str, name: &str, known: &[&str]) -> Error {
    Error::config(format!("{service} has no stream `{name}` (available: {})", known.join(", ")))
}

/// A state field, or an error saying the committed state is not this stream's.
pub fn state_error(stream: &str, cause: impl std::fmt::Display) -> Error {
    Error::state(format!(
        "stream `{stream}`: the committed cursor does not fit this stream ({cause}); resync the stream"
    ))
}

/// The error for an API answer without the shape the service documents.
pub fn unexpected_answer(service: &str, stream: &str, what: impl std::fmt::Display) -> Error {
    Error::new(
        connector_core::error::ErrorKind::Source,
        connector_core::error::Retry::No,
        format!("{service} stream `{stream}`: unexpected answer: {what}; is --base-url the {service} API?"),
    )
}
